"""Run files (`05_eval/<name>.json`) and their journals.

A run file holds run metadata, summary metrics and per-example results; `compare` and `report` read
nothing else. While a run is going, each scored example is appended to `<name>.json.journal` and
flushed, so an interrupted run resumes with no example lost or scored twice. The journal's first line
names what it belongs to; a journal for other inputs is never mixed in.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap import __version__
from slm_swap.errors import InputError
from slm_swap.files import read_json, write_json
from slm_swap.scoring.metrics import CORE_METRICS, error_counts, summarize
from slm_swap.types import TRACKS, ExampleResult, Track

RUN_FORMAT = "slm-swap.run/1"


@dataclass(frozen=True)
class RunMeta:
    track: Track
    split: str
    dataset: str
    dataset_sha256: str
    model_kind: str
    model: str
    adapter: str | None = None
    constrained: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    # What changes the outputs (identity.py): checkpoint/adapter/predictions digests, decoding settings.
    inputs: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    finished_at: str = ""
    versions: dict[str, str] = field(
        default_factory=lambda: {"slm_swap": __version__, "python": platform.python_version()}
    )

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
class RunResult:
    meta: RunMeta
    results: list[ExampleResult]

    @property
    def summary(self) -> dict[str, float]:
        return summarize(self.meta.track, self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": RUN_FORMAT,
            "meta": self.meta.__dict__,
            "summary": self.summary,
            "core_metrics": list(CORE_METRICS[self.meta.track]),
            "error_counts": error_counts(self.results),
            "results": [r.to_json() for r in self.results],
        }


def default_run_path(
    track: str, kind: str, split: str, adapter: Path | None, eval_dir: Path = Path("05_eval")
) -> Path:
    """<eval_dir>/<track>_<kind>[_ft]_<split>.json, the spec's names (e.g. structured_slm_ft_test.json)."""
    return eval_dir / f"{track}_{kind}{'_ft' if adapter else ''}_{split}.json"


def write_run(path: Path, run: RunResult) -> None:
    write_json(path, run.to_json())


def read_run(path: Path) -> RunResult:
    """Loads a run file, with a message naming the file when it is not one."""
    data = read_json(path, "a run file written by `slm-swap eval`")
    if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
        raise InputError(
            path,
            None,
            f"not a run file (format is not {RUN_FORMAT!r})",
            "pass a metrics file written by `slm-swap eval`",
        )
    try:
        meta = RunMeta(**data["meta"])
        if meta.track not in TRACKS:
            raise ValueError(f"unknown track {meta.track!r}")
        results = [ExampleResult.from_json(r) for r in data["results"]]
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(path, None, f"run file is damaged ({e})", "re-run `slm-swap eval`") from e
    return RunResult(meta, results)


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".journal")


class Journal:
    """Append-only record of scored examples for one run."""

    def __init__(self, out: Path, meta: RunMeta):
        self.path = journal_path(out)
        self.identity = meta.identity()
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def load(self) -> dict[str, ExampleResult]:
        """Results already journaled for these same inputs; a journal for other inputs is set aside."""
        if not self.path.is_file():
            return {}
        done: dict[str, ExampleResult] = {}
        lines = self.path.read_text(encoding="utf-8").splitlines()
        try:
            header = json.loads(lines[0]) if lines else None
        except json.JSONDecodeError:
            header = None
        if header != {"journal": self.identity}:
            self.path.replace(self.path.with_name(self.path.name + ".stale"))
            return {}
        for line in lines[1:]:
            try:
                result = ExampleResult.from_json(json.loads(line))
            except (json.JSONDecodeError, TypeError, KeyError):
                break  # a line cut short by a crash: everything before it is good
            done[result.id] = result
        return done

    def rewrite(self, done: dict[str, ExampleResult]) -> None:
        """Starts the journal afresh with the header and the results kept (drops a torn last line)."""
        with self.path.open("w", encoding="utf-8") as f:
            f.write(json.dumps({"journal": self.identity}) + "\n")
            for result in done.values():
                f.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def append(self, result: ExampleResult) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(result.to_json(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
