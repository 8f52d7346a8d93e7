"""The split files `prepare` writes: their sizes, their paths, the manifest of what they were made from
(`prepared.json`), and how they are written so that they never disagree with it.

    <out-dir>/{structured,toolcall}/{train,val,test}.jsonl, prepared.json
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.data.rows import MADE_SUFFIX, SourceRow
from slm_swap.data.sources import Source
from slm_swap.errors import ConfigError
from slm_swap.files import atomic_writer, check_output, jsonl_text, read_jsonl, sha256_text
from slm_swap.types import SPLITS, TRACKS, Track
from slm_swap.workspace import set_aside

MANIFEST = "prepared.json"  # in the dataset folder: what the splits were made from
MANIFEST_FORMAT = "slm-swap.prepared/1"


@dataclass(frozen=True)
class SplitSizes:
    train: int = settings.field(settings.TRAIN_SIZE)
    val: int = settings.field(settings.VAL_SIZE)
    test: int = settings.field(settings.TEST_SIZE)

    def __post_init__(self) -> None:
        for name in SPLITS:
            if getattr(self, name) < 0:
                raise ValueError(f"{settings.setting_of(self, name)} must be >= 0, got {getattr(self, name)}")

        if self.total == 0:
            raise ConfigError(
                f"{settings.TRAIN_SIZE}, {settings.VAL_SIZE} and {settings.TEST_SIZE} are all 0: the splits "
                f"would be empty, with nothing to train on or evaluate\n  fix: give at least one split rows"
            )

    @property
    def total(self) -> int:
        return self.train + self.val + self.test


def recorded_inputs(out_dir: Path) -> dict[str, Any] | None:
    """The inputs recorded beside existing splits by `prepare`, or None (absent or unreadable)."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    inputs = manifest.get("inputs")
    return inputs if isinstance(inputs, dict) else None


def split_paths(out_dir: Path) -> list[Path]:
    """The files `prepare` writes in `out_dir`: each track's splits, then the manifest."""
    return [*(out_dir / track / f"{split}.jsonl" for track in TRACKS for split in SPLITS), out_dir / MANIFEST]


def check_outputs(source: Source, out_dir: Path) -> None:
    """Stops before anything is read or written when a file `prepare` would write cannot be written or
    is the source it reads."""
    for path in split_paths(out_dir):
        check_output(path, settings.OUT_DIR, inputs={"the source": source.file})


@dataclass(frozen=True)
class Written:
    """The split files a write made, and the earlier ones it first kept as timestamped copies."""

    files: list[Path]
    kept: list[Path] = field(default_factory=list)


def write_splits(out_dir: Path, splits: dict[str, list[SourceRow]], inputs: dict[str, Any]) -> Written:
    """Writes all six files and the manifest to temporary names and renames them only once every one is
    written, so a failure leaves no split half-written or out of step with the others (and one process
    at a time writes them: `prepare` holds the manifest's lock)."""
    contents = {
        out_dir / track / f"{split}.jsonl": jsonl_text(r.to_example(track).to_json() for r in rows)
        for track in TRACKS
        for split, rows in splits.items()
    }
    manifest = {
        "format": MANIFEST_FORMAT,
        "inputs": inputs,
        "files": {str(p.relative_to(out_dir)): sha256_text(text) for p, text in contents.items()},
    }
    with ExitStack() as stack:
        for path, text in contents.items():
            stack.enter_context(atomic_writer(path)).write(text)
        stack.enter_context(atomic_writer(out_dir / MANIFEST)).write(json.dumps(manifest, indent=2) + "\n")
    return Written(list(contents))


def train_val_ids(out_dir: Path) -> frozenset[str]:
    """The ids of the rows in either track's train and val splits, and of the rows those made from
    another (`rows.MADE_SUFFIX`) were made from."""
    used: set[str] = set()
    for track in TRACKS:
        for split in ("train", "val"):
            path = out_dir / track / f"{split}.jsonl"
            if path.is_file():
                for _, row in read_jsonl(path, "a prepared split"):
                    row_id = str(row["id"])
                    used |= {row_id, row_id.removesuffix(MADE_SUFFIX)}
    return frozenset(used)


def write_test_splits(out_dir: Path, per_track: dict[Track, list[SourceRow]]) -> Written:
    """Writes each track's own test split (the smoke resampling), keeping a different earlier one as a
    timestamped copy first, and removes the manifest: the test splits are no longer what it says they
    were made from."""
    files: list[Path] = []
    kept: list[Path] = []
    for track, rows in per_track.items():
        target = out_dir / track / "test.jsonl"
        text = jsonl_text(r.to_example(track).to_json() for r in rows)
        if target.is_file() and target.read_text(encoding="utf-8") != text:
            kept.append(set_aside(target))
        with atomic_writer(target) as f:
            f.write(text)
        files.append(target)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    return Written(files, kept)
