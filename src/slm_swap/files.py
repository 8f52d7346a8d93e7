"""Reading and writing the workspace's files: atomically, and with messages that name file and line."""

from __future__ import annotations

import gc
import hashlib
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

from slm_swap import settings
from slm_swap.errors import InputError, SlmSwapError
from slm_swap.fileformats import FormatError, checked
from slm_swap.schemas import schema_problem as schema_problem
from slm_swap.schemas import tool_schema_problem
from slm_swap.types import Example

T = TypeVar("T")


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same path once links are resolved, or two hard links."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there
        return False


def _within(path: Path, folder: Path) -> bool:
    return os.path.realpath(path).startswith(os.path.realpath(folder) + os.sep)


def refuse_inputs(
    output: Path,
    inputs: Mapping[str, Path | str | None],
    flag: object = settings.OUT,
    *,
    folder: bool = False,
) -> None:
    """Stops, `--force` or not, when the output `output` is one of the command's `inputs` (what each input
    is, for the message → its path; None where not given) or lies in an input that is a folder (a model,
    an adapter): writing it would destroy what the command reads (a paid run, a split, the predictions).
    With `folder`, `output` is a folder the command writes into, refused also when it holds an input."""
    for what, given in inputs.items():
        if given is None:
            continue
        source = Path(given)
        if same_file(output, source):
            where = "is"
        elif source.is_dir() and _within(output, source):
            where = "is in"
        elif folder and _within(source, output):
            where = "holds"
        else:
            continue
        raise SlmSwapError(
            f"{flag} {output} {where} {what} ({source}), which this command reads; writing it would "
            f"destroy it\n  fix: choose another {flag}"
        )


def check_output(
    path: Path, flag: object = settings.OUT, *, inputs: Mapping[str, Path | str | None] | None = None
) -> None:
    """Stops, before anything is written, when the file `path` could not be written: it is one of the
    command's `inputs` (`refuse_inputs`), it is a folder, a file stands where one of its folders would
    be, or its nearest existing folder refuses a new file (read-only, not ours). Nothing is created by
    the check."""
    if inputs:
        refuse_inputs(path, inputs, flag)
    fix = f"choose another {flag}"
    if path.is_dir():
        raise SlmSwapError(
            f"{path} is a folder; {flag} names the file to write\n  fix: e.g. {flag} {path / 'name.json'}"
        )
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise SlmSwapError(f"{folder} is a file, so {path} cannot be written under it\n  fix: {fix}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".slm-swap-write-check.", dir=folder)
    except OSError as e:
        raise SlmSwapError(f"{path}: cannot write in {folder} ({e.strerror})\n  fix: {fix}") from e
    os.close(fd)
    os.unlink(probe)


def _umask() -> int:
    mask = os.umask(0)  # reading it means setting it: put it back at once (at import, one thread)
    os.umask(mask)
    return mask


_UMASK = _umask()


def readable_weights(folder: Path) -> None:
    """Gives the safetensors files under `folder` the mode any other file made here gets (0644 under the
    usual umask): safetensors writes its files 0600, which left a checkpoint's weights unreadable to those
    who can read the rest of it (a shared model folder, a server running as another user)."""
    for path in folder.rglob("*.safetensors"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o666 & ~_UMASK)


@contextmanager
def many_objects() -> Iterator[None]:
    """For a block that makes hundreds of thousands of objects and no reference cycle (reading a run
    file, preparing 60,000 rows): the cycle collector, which would walk them again and again as they are
    made (the cost then grows faster than the rows), waits until the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def atomic_writer(path: Path) -> Iterator[IO[str]]:
    """Opens a temporary file beside `path` and renames it over `path` only if the block succeeds, so a
    reader never sees a half-written file and a failure leaves the old file as it was. A path that cannot
    be written is a SlmSwapError naming it (commands call `check_output` first, before a long run)."""
    try:
        if path.is_dir():
            raise IsADirectoryError(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError:
        check_output(path, "the output path")  # says why, with the fix
        raise
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would leave the file readable by its owner alone
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def one_writer(path: Path) -> Iterator[None]:
    """Holds `path`'s lock (`<path>.lock`, an OS lock that dies with its process) while the block writes
    it: a second slm-swap writing the same output stops at once, naming the first, instead of both
    finishing and one silently winning. Check what `path` holds after taking the lock, not before.
    Folders made for the lock are removed again if nothing was written in them."""
    lock = path.with_name(path.name + ".lock")
    made = [f for f in (lock.parent, *lock.parent.parents) if not f.exists()]
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = _lock(lock, path)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            lock.unlink(missing_ok=True)
            os.close(fd)
    finally:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # something was written in it
                break


def _lock(lock: Path, path: Path) -> int:
    """The descriptor of `lock`, locked, or a SlmSwapError naming the process that holds it."""
    import fcntl

    while True:
        fd = _open_lock(lock)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SlmSwapError(
                f"{path} is being written by another slm-swap (pid {holder})\n"
                "  fix: wait for it to finish (then rerun: finished work is kept), or choose another output"
            ) from e
        # The holder may have removed the file just before we locked it: a lock on a file no longer at
        # `lock` guards nothing, so take the one there now.
        try:
            if os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


_PID = re.compile(rb"\d{0,10}\n?")


def _open_lock(lock: Path) -> int:
    """Opens (or makes) a lock file without following a link, and only if what is there is a lock file:
    a regular file of one name holding at most a pid, so that writing our pid into it can never change
    another file (a link planted at `<path>.lock`, or a file of the user's by that name)."""
    fix = f"  fix: remove {lock} if it is not a file you need (slm-swap makes it anew), then rerun"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except OSError as e:
        what = "a symbolic link" if lock.is_symlink() else e.strerror
        raise SlmSwapError(f"{lock}, the lock slm-swap takes before writing, is {what}\n{fix}") from e
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1 or not _PID.fullmatch(os.pread(fd, 64, 0)):
        os.close(fd)
        raise SlmSwapError(
            f"{lock}, the lock slm-swap takes before writing, holds something else (not a pid, or a link "
            f"to another file)\n{fix}"
        )
    return fd


def write_json(path: Path, data: Any) -> None:
    with atomic_writer(path) as f:
        json.dump(data, f, ensure_ascii=False, indent=2, allow_nan=False)
        f.write("\n")


def jsonl_text(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n" for row in rows)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (JSON has no NaN or Infinity)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is beyond the range of a number")
    return value


def _surrogate(value: Any) -> str | None:
    """The first lone UTF-16 surrogate in the strings of `value` (not text: it cannot be written as
    UTF-8), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"\\u{ord(value[e.start]):04x}"
        return None
    if isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        children = value
    else:
        return None
    for child in children:
        found = _surrogate(child)
        if found:
            return found
    return None


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str, *, check_floats: bool = True) -> Any:
    """Standard JSON, strictly: NaN, Infinity and numbers beyond a float's range are errors (Python's
    json module takes them, other parsers do not), and so is a lone surrogate escape such as \\ud800
    (it decodes to no text). Errors are ValueErrors."""
    # Looking at every float costs a Python call each (most of a second for a million), so a whole file
    # is read with `check_floats=False` and its schema's bounds keep its numbers in range instead.
    value = json.loads(text, parse_constant=_no_constant, parse_float=_finite if check_floats else None)
    if _SURROGATE_ESCAPE.search(text):  # only then is the value walked
        found = _surrogate(value)
        if found:
            raise ValueError(f"{found} is a lone surrogate, not text")
    return value


def _not_utf8(path: object, where: str | None, error: UnicodeDecodeError, what: str) -> InputError:
    return InputError(
        path,
        where,
        f"not UTF-8 text (byte 0x{error.object[error.start]:02x} at offset {error.start})",
        f"expected {what}, saved as UTF-8",
    )


def read_json(path: Path, what: str) -> Any:
    """Loads a whole JSON file; `what` says what the file should be, for the message."""
    return parse_json(read_bytes(path, what), path, what)


def not_a_file(path: Path) -> str:
    """What stands at `path` instead of a regular file, said as a message says it: reading a folder, a
    named pipe or a device as a file would fail or never end (/dev/zero)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    for test, what in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return f"is {what}, not a file"
    return "not a regular file"


def require_file(path: Path, fix: str) -> None:
    """An InputError naming what `path` is when it is not a regular file (`not_a_file`), with `fix`."""
    if not path.is_file():
        raise InputError(path, None, not_a_file(path), fix)


def read_bytes(path: Path, what: str) -> bytes:
    require_file(path, f"expected {what}")
    return path.read_bytes()


def parse_json(data: bytes, path: Path, what: str) -> Any:
    """The JSON value of a file's bytes (`loads`); an error names the file and the line."""
    try:
        return loads(data.decode("utf-8"), check_floats=False)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _not_utf8(path, str(line), e, what) from e
    except json.JSONDecodeError as e:
        raise InputError(
            path, f"{e.lineno}", f"not valid JSON ({e.msg}, column {e.colno})", f"expected {what}"
        ) from e
    except ValueError as e:
        raise InputError(path, None, f"not valid JSON ({e})", f"expected {what}") from e
    except RecursionError as e:
        raise InputError(path, None, "JSON nested too deeply", f"expected {what}") from e


def read_as(path: Path, what: str, kind: type[T], fix: str, *, file_format: str | None = None) -> T:
    """Loads a JSON file of the format `kind` (`fileformats`), tagged `"format": file_format` when given;
    the message names the file and the first field that is not of the format."""
    data = read_json(path, what)
    try:
        if file_format is not None and (not isinstance(data, dict) or data.get("format") != file_format):
            raise FormatError(f"format is not {file_format!r}")
        return checked(data, kind)
    except FormatError as e:
        raise InputError(path, None, f"not {what} ({e})", fix) from e


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
            yield lineno, loads(line)
        except json.JSONDecodeError as e:
            raise InputError(
                label,
                str(lineno),
                f"not valid JSON ({e.msg}, column {e.colno})",
                f"expected {what}; was the file truncated?",
            ) from e
        except ValueError as e:
            raise InputError(label, str(lineno), f"not valid JSON ({e})", f"expected {what}") from e
        except RecursionError as e:
            raise InputError(label, str(lineno), "JSON nested too deeply", f"expected {what}") from e


def read_jsonl(path: Path, what: str) -> Iterator[tuple[int, Any]]:
    """Yields (line number, decoded row) for each non-blank line of a JSON Lines file."""
    require_file(path, f"expected {what}")
    with path.open("rb") as f:
        yield from json_lines(f, path, what)


def read_examples(path: Path, ids: set[str] | None = None) -> list[Example]:
    """Loads a prepared split (02_dataset/<track>/<split>.jsonl), each row checked field by field; with
    `ids`, only the rows of those ids (the rest are skipped unread where their id can be seen first, as
    `prepare` writes it, so that a report on 60,000 examples reads the few hundred it shows)."""
    require_file(path, f"expected {SPLIT_WHAT}")
    examples = []
    seen: set[str] = set()
    with path.open("rb") as f, many_objects():
        for lineno, row in json_lines(_wanted(f, ids), path, SPLIT_WHAT):
            try:
                example = checked(row, Example)
            except FormatError as e:
                raise _not_an_example(path, lineno, str(e)) from e
            problem = next(
                filter(None, (tool_schema_problem(t.name, t.parameters) for t in example.tools)), None
            )
            if problem is None and example.id in seen:
                problem = f"id {example.id!r} appears twice"
            if problem is not None:
                raise _not_an_example(path, lineno, problem)
            seen.add(example.id)
            if ids is None or example.id in ids:
                examples.append(example)
    if not examples and ids is None:
        raise InputError(path, None, "the split is empty", "regenerate it with `slm-swap prepare`")
    return examples


def _not_an_example(path: Path, lineno: int, problem: str) -> InputError:
    return InputError(
        path,
        str(lineno),
        f"not a prepared example ({problem})",
        "regenerate the split with `slm-swap prepare`",
    )


SPLIT_WHAT = "a split written by `slm-swap prepare`"
_ID_FIRST = b'{"id": '


def _wanted(lines: Iterable[bytes], ids: set[str] | None) -> Iterator[bytes]:
    """The lines to read (each line is yielded, a skipped one as a blank line so that line numbers hold):
    all, or those whose leading id is among `ids` (a line whose id does not come first is read)."""
    if ids is None:
        yield from lines
        return
    decoder = json.JSONDecoder()
    for line in lines:
        if line.startswith(_ID_FIRST):
            head = line[len(_ID_FIRST) : len(_ID_FIRST) + 400].decode("utf-8", "replace")
            try:
                found, _ = decoder.raw_decode(head)
            except ValueError:  # not a string, or longer than the head: read the line
                found = None
            if isinstance(found, str) and found not in ids:
                yield b"\n"
                continue
        yield line


def sha256_text(text: str) -> str:
    # surrogatepass: a model's answer may hold a lone surrogate; its digest must not fail the run.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
