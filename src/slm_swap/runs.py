"""Run files (`05_eval/<name>.json`) and their journals.

A run file holds run metadata, summary metrics and per-example results; `compare` and `report` read
nothing else. While a run is going, each scored example is appended to `<name>.json.journal` and
flushed, so an interrupted run resumes with no example lost or scored twice. The journal's first line
names what it belongs to; a journal for other inputs is never mixed in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from slm_swap import __version__
from slm_swap.errors import InputError
from slm_swap.fileformats import CLOSED, FileForm, Flag, FormatError, checked
from slm_swap.files import atomic_writer, loads, many_objects, parse_json, read_bytes, sha256_text
from slm_swap.scoring.metrics import Summary, core_metrics, error_counts, summarize
from slm_swap.types import ExampleResult, Track

RUN_FORMAT = "slm-swap.run/1"


@dataclass(frozen=True)
class RunMeta:
    """What a run was: on which split, with which model and settings, when."""

    track: Track
    split: str
    dataset: str
    dataset_sha256: str
    model_kind: str
    model: str
    adapter: str | None = None
    constrained: Flag = False
    protocol: str = "prompt"  # how the model was asked (`protocol.py`); runs made before it: prompt
    settings: dict[str, Any] = field(default_factory=dict)
    # What changes the outputs (identity.py): checkpoint/adapter/predictions digests, decoding settings.
    inputs: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    # The hosted model whose answers are the split's gold (`slm-swap label`); "" for independent gold.
    gold_by: str = ""
    versions: dict[str, str] = field(
        default_factory=lambda: {"slm_swap": __version__, "python": platform.python_version()}
    )

    __pydantic_config__: ClassVar[dict[str, str]] = CLOSED

    def identity(self) -> dict[str, Any]:
        """What must match for a run file to be kept or a journal resumed (the identity rule): the split's
        content and what changes the model's outputs, never paths, names or client settings such as
        concurrency and timeouts."""
        return {
            "track": self.track,
            "split": self.split,
            "dataset_sha256": self.dataset_sha256,
            "model_kind": self.model_kind,
            **self.inputs,
        }


@dataclass(frozen=True)
class RunResult(FileForm):
    """A run: its metadata and its results. Also the run file's format, which holds the summary, core
    metrics and error counts first, as written for people and other tools (they are worked out again
    from the results when a run file is read)."""

    meta: RunMeta
    results: list[ExampleResult]

    file_format = RUN_FORMAT
    written: ClassVar[dict[str, str]] = {
        "summary": "summary",
        "core_metrics": "core_metrics",
        "error_counts": "error_counts",
    }

    @functools.cached_property
    def summary(self) -> Summary:
        """The run-level means and counts, computed once (a run's results are not changed once it is
        made)."""
        return summarize(self.meta.track, self.results)

    @property
    def core_metrics(self) -> tuple[str, ...]:
        """The metrics the decision rests on, in this run (`scoring.metrics.core_metrics`)."""
        return core_metrics(self.meta.track, list(self.summary.metrics))

    @property
    def error_counts(self) -> dict[str, int]:
        """How many results fell in each error category (`scoring.metrics.error_counts`)."""
        return error_counts(self.results)


def write_run(path: Path, run: RunResult) -> None:
    """Writes the run file atomically, as a stream (a 60,000-example run is 45 MB of text), ending with
    `"sha256"`: the SHA-256 of the file as it would be without that member (closed just before it), so
    that a copy can be checked whole."""
    digest = hashlib.sha256()
    encoder = json.JSONEncoder(ensure_ascii=False, indent=2, allow_nan=False)
    held: list[str] = []  # the text not yet written: the last characters, "\n}", are replaced
    size = 0
    with atomic_writer(path) as f:

        def write(text: str) -> None:
            f.write(text)
            digest.update(text.encode("utf-8"))

        for chunk in encoder.iterencode(run.to_json()):
            held.append(chunk)
            size += len(chunk)
            if size > 1 << 16:
                text = "".join(held)
                write(text[: -len(_END)])
                held, size = [text[-len(_END) :]], len(_END)
        text = "".join(held)
        write(text[: -len(_END)])
        digest.update(_END.encode())
        f.write(_TRAILER.format(digest.hexdigest()))


_END = "\n}"  # how json.dumps(..., indent=2) ends an object
_TRAILER = ',\n  "sha256": "{}"\n}}\n'


def read_run(path: Path) -> RunResult:
    """Loads a run file, checked field by field, with a message naming the file when it is not one. Every
    result is checked, whatever the file's digest says: at 60,000 results the check costs no more than
    making the results unchecked did."""
    with many_objects():
        return _read_run(path)


def _read_run(path: Path) -> RunResult:
    what = "a run file written by `slm-swap eval`"
    data = parse_json(read_bytes(path, what), path, what)
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise InputError(
            path,
            None,
            f"not a run file (format is not {RUN_FORMAT!r})",
            "pass a metrics file written by `slm-swap eval`",
        )
    try:
        run = checked(data, RunResult)
    except FormatError as e:
        raise InputError(path, None, f"run file is damaged ({e})", "re-run `slm-swap eval`") from e
    if len({r.id for r in run.results}) != len(run.results):
        raise InputError(
            path, None, "run file is damaged (an example id appears twice)", "re-run `slm-swap eval`"
        )
    return run


SYNC_SECONDS = 1.0  # how often a journal reaches the disk


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".journal")


class Journal:
    """Append-only record of scored examples for one run."""

    def __init__(self, out: Path, meta: RunMeta):
        self.path = journal_path(out)
        self.identity = meta.identity()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = None
        self._synced = time.monotonic()

    def load(self) -> dict[str, ExampleResult]:
        """Results already journaled for these same inputs; a journal for other inputs is set aside."""
        if not self.path.is_file():
            return {}
        done: dict[str, ExampleResult] = {}
        lines = self.path.read_bytes().splitlines()
        header = _journal_line(lines[0]) if lines else None
        if header != {"journal": self.identity}:
            self.path.replace(self.path.with_name(self.path.name + ".stale"))
            return {}
        for line in lines[1:]:
            entry = _journal_line(line)
            if not isinstance(entry, dict) or entry.get("sha256") != _line_digest(entry.get("result")):
                break  # a line cut short by a crash, or damaged: everything before it is good
            try:
                result = checked(entry["result"], ExampleResult)
            except FormatError:
                break
            done[result.id] = result
        return done

    def resume(self, ids: Iterable[str], *, fresh: bool = False) -> dict[str, ExampleResult]:
        """The journaled results for `ids` (none when `fresh`), the journal restarted with just those."""
        wanted = set(ids)
        done = {} if fresh else {k: v for k, v in self.load().items() if k in wanted}
        self.rewrite(done)
        return done

    def rewrite(self, done: dict[str, ExampleResult]) -> None:
        """Starts the journal afresh with the header and the results kept (drops a torn last line)."""
        self.close()
        with atomic_writer(self.path) as f:
            f.write(json.dumps({"journal": self.identity}) + "\n")
            for result in done.values():
                f.write(_entry(result))

    def append(self, result: ExampleResult) -> None:
        """Adds a result. Each is handed to the OS at once (a crash of this process loses none); it reaches
        the disk at least once a second (a power cut loses at most that), not at every example: a replay
        of 60,000 stored outputs is then not 60,000 disk syncs."""
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(_entry(result))
        self._file.flush()
        now = time.monotonic()
        if now - self._synced >= SYNC_SECONDS:
            os.fsync(self._file.fileno())
            self._synced = now

    def close(self) -> None:
        if self._file is not None:
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def settle(self, held: Iterable[str]) -> None:
        """Removes a journal of these same inputs whose run file, holding the results `held` (ids), is
        already written: a run killed between writing the run file and removing its journal leaves one,
        and the run file holds it all. A journal of other inputs is left for the run it belongs to, and so
        is one holding results the run file has not (a sequential evaluation's next round, interrupted)."""
        if not self.path.is_file():
            return
        with self.path.open("rb") as f:
            header = _journal_line(f.readline())
        if header == {"journal": self.identity} and set(self.load()) <= set(held):
            self.path.unlink(missing_ok=True)


def _line_digest(result: Any) -> str:
    return sha256_text(json.dumps(result, sort_keys=True, ensure_ascii=False))


def _entry(result: ExampleResult) -> str:
    """One journal line: the result and its digest, so a damaged line is never taken for a result."""
    data = result.to_json()
    return (
        json.dumps({"result": data, "sha256": _line_digest(data)}, ensure_ascii=False, allow_nan=False) + "\n"
    )


def _journal_line(line: bytes) -> Any:
    try:
        return loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
