"""The workspace layout of the spec, and every file name in it, in one place.

    02_dataset/{track}/{split}.jsonl, prepared.json     prepare
    04_ft/adapter_{track}/                              train
    05_eval/{track}_{kind}[_ft]_{split}.json            eval (run files, with .journal while running)
    05_eval/{track}_decision.json, {track}_ft_decision.json, verdict.json, report.html, report.md
    models/, logs/

A file or folder about to be replaced is set aside under a timestamped name first (`set_aside`).

All paths are relative to the folder the user runs from, unless a folder option says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from slm_swap import settings


@dataclass(frozen=True)
class Workspace:
    dataset_dir: Path = settings.DATASET_DIR.default
    ft_dir: Path = settings.FT_DIR.default
    eval_dir: Path = settings.EVAL_DIR.default
    logs_dir: Path = Path("logs")

    def split(self, track: str, split: str) -> Path:
        return self.dataset_dir / track / f"{split}.jsonl"

    def run_file(
        self, track: str, kind: str, split: str, *, fine_tuned: bool = False, native: bool = False
    ) -> Path:
        """The spec's run-file names, e.g. 05_eval/structured_slm_ft_test.json; with `native`, the run that
        `run --both-protocols` adds beside it, e.g. 05_eval/toolcall_slm_native_test.json."""
        return (
            self.eval_dir
            / f"{track}_{kind}{'_ft' if fine_tuned else ''}{'_native' if native else ''}_{split}.json"
        )

    def decision(self, track: str, *, fine_tuned: bool = False) -> Path:
        return self.eval_dir / f"{track}_{'ft_' if fine_tuned else ''}decision.json"

    def adapter(self, track: str) -> Path:
        return self.ft_dir / f"adapter_{track}"

    @property
    def verdict(self) -> Path:
        return self.eval_dir / "verdict.json"

    @property
    def report_html(self) -> Path:
        return self.eval_dir / "report.html"

    def log(self, name: str) -> Path:
        return self.logs_dir / name


def dataset_dir_of(split: Path) -> Path:
    """The dataset folder a split file lies in (`<dataset-dir>/{track}/{split}.jsonl`)."""
    return split.parent.parent


def set_aside(path: Path) -> Path:
    """Renames a file or folder that is about to be replaced to `<name>.<UTC time>` (before a file's
    suffix: `test.20261202T051500Z.jsonl`), so that nothing of it is lost; returns the new name."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    suffix = path.suffix if path.is_file() else ""
    stem = path.name.removesuffix(suffix) if suffix else path.name
    kept, n = path.with_name(f"{stem}.{stamp}{suffix}"), 1
    while kept.exists():  # twice in one second
        n += 1
        kept = path.with_name(f"{stem}.{stamp}-{n}{suffix}")
    path.rename(kept)
    return kept
