"""Reading and writing the workspace's files: atomically, and with messages that name file and line."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from slm_swap.errors import InputError
from slm_swap.types import Example


@contextmanager
def atomic_writer(path: Path) -> Iterator[IO[str]]:
    """Opens a temporary file beside `path` and renames it over `path` only if the block succeeds, so a
    reader never sees a half-written file and a failure leaves the old file as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    with atomic_writer(path) as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")


def jsonl_text(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def read_json(path: Path, what: str) -> Any:
    """Loads a whole JSON file; `what` says what the file should be, for the message."""
    if not path.is_file():
        raise InputError(path, None, f"no such file (expected {what})")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(
            path, f"{e.lineno}", f"not valid JSON ({e.msg}, column {e.colno})", f"expected {what}"
        ) from e


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, Any]]:
    """Yields (line number, decoded row) for each non-blank line."""
    if not path.is_file():
        raise InputError(path, None, f"no such file (expected {what})")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(
                    path,
                    str(lineno),
                    f"not valid JSON ({e.msg}, column {e.colno})",
                    f"expected {what}; was the file truncated?",
                ) from e


def read_examples(path: Path) -> list[Example]:
    """Loads a prepared split (02_dataset/<track>/<split>.jsonl)."""
    examples = []
    for lineno, row in read_jsonl(path, "a split written by `slm-swap prepare`"):
        try:
            examples.append(Example.from_json(row))
        except (KeyError, TypeError, AttributeError) as e:
            raise InputError(
                path,
                str(lineno),
                f"not a prepared example ({type(e).__name__}: {e})",
                "regenerate the split with `slm-swap prepare`",
            ) from e
    if not examples:
        raise InputError(path, None, "the split is empty", "regenerate it with `slm-swap prepare`")
    return examples


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
