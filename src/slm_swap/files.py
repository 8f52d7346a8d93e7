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
from slm_swap.types import EXAMPLE_SCHEMA, Example


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


def _not_utf8(path: object, where: str | None, error: UnicodeDecodeError, what: str) -> InputError:
    return InputError(
        path,
        where,
        f"not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})",
        f"expected {what}, saved as UTF-8",
    )


def read_json(path: Path, what: str) -> Any:
    """Loads a whole JSON file; `what` says what the file should be, for the message."""
    if not path.is_file():
        raise InputError(path, None, f"no such file (expected {what})")
    data = path.read_bytes()
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _not_utf8(path, str(line), e, what) from e
    except json.JSONDecodeError as e:
        raise InputError(
            path, f"{e.lineno}", f"not valid JSON ({e.msg}, column {e.colno})", f"expected {what}"
        ) from e
    except RecursionError as e:
        raise InputError(path, None, "JSON nested too deeply", f"expected {what}") from e


def read_validated(path: Path, what: str, schema: dict[str, Any], fix: str) -> Any:
    """Loads a JSON file that must satisfy `schema` (JSON Schema); the message names the file and the
    first field that does not."""
    data = read_json(path, what)
    problem = schema_problem(data, schema)
    if problem is not None:
        raise InputError(path, None, f"not {what} ({problem})", fix)
    return data


def text_lines(lines: Iterable[bytes], label: object, what: str) -> Iterator[tuple[int, str]]:
    """Decodes lines of bytes as UTF-8, yielding (line number, text); a line that is not UTF-8 is an
    InputError naming `label` and the line."""
    for lineno, raw in enumerate(lines, start=1):
        try:
            yield lineno, raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _not_utf8(label, str(lineno), e, what) from e


def json_lines(lines: Iterable[bytes], label: object, what: str) -> Iterator[tuple[int, Any]]:
    """Yields (line number, decoded value) for each non-blank line of JSON Lines given as bytes."""
    for lineno, line in text_lines(lines, label, what):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(
                label,
                str(lineno),
                f"not valid JSON ({e.msg}, column {e.colno})",
                f"expected {what}; was the file truncated?",
            ) from e
        except RecursionError as e:
            raise InputError(label, str(lineno), "JSON nested too deeply", f"expected {what}") from e


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, Any]]:
    """Yields (line number, decoded row) for each non-blank line of a JSON Lines file."""
    if not path.is_file():
        raise InputError(path, None, f"no such file (expected {what})")
    with path.open("rb") as f:
        yield from json_lines(f, path, what)


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """Why `value` does not satisfy the JSON Schema `schema` (its first field that does not), or None."""
    import jsonschema

    key = json.dumps(schema, sort_keys=True)
    if key not in _validators:
        _validators[key] = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(_validators[key].iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "the top level"
    return f"at {where}: {error.message[:200]}"


_validators: dict[str, Any] = {}


def tool_schema_problem(name: str, parameters: dict[str, Any]) -> str | None:
    """Why a tool's parameters are not a JSON Schema, or None (checked once per schema)."""
    import jsonschema

    key = json.dumps(parameters, sort_keys=True)
    if key not in _tool_problems:
        try:
            jsonschema.Draft202012Validator.check_schema(parameters)
            _tool_problems[key] = None
        except jsonschema.SchemaError as e:
            _tool_problems[key] = f"parameters are not a JSON Schema ({e.message[:160]})"
    problem = _tool_problems[key]
    return None if problem is None else f"tool {name!r}: {problem}"


_tool_problems: dict[str, str | None] = {}


def read_examples(path: Path) -> list[Example]:
    """Loads a prepared split (02_dataset/<track>/<split>.jsonl), each row checked field by field."""
    examples = []
    seen: set[str] = set()
    for lineno, row in read_jsonl(path, "a split written by `slm-swap prepare`"):
        problem = schema_problem(row, EXAMPLE_SCHEMA)
        if problem is None:
            problem = next(
                filter(None, (tool_schema_problem(t["name"], t["parameters"]) for t in row["tools"])), None
            )
        if problem is None and str(row["id"]) in seen:
            problem = f"id {row['id']!r} appears twice"
        if problem is not None:
            raise InputError(
                path,
                str(lineno),
                f"not a prepared example ({problem})",
                "regenerate the split with `slm-swap prepare`",
            )
        seen.add(str(row["id"]))
        examples.append(Example.from_json(row))
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
