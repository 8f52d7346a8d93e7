"""`prepare`: source → `02_dataset/{structured,toolcall}/{train,val,test}.jsonl`, and `prepare --smoke`.

Both tracks are built from the same sampled rows, each rendered in its own answer format, so the two
tracks ask the same questions. Sampling is seeded and depends only on the source's content and the sizes.

The parts: where rows come from (`sources.py`), the two passes over them (`scan.py`: validate every
row, then convert the few chosen, so memory stays flat however large the source is), the rows whose
answer is no call (`nocall.py`), and the split files with their manifest (`splits.py`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.data.nocall import NoCallRules, made_counts, pick_removable
from slm_swap.data.rows import SourceRow
from slm_swap.data.scan import Scan, collect, not_enough, scan
from slm_swap.data.sources import Source
from slm_swap.data.splits import (
    MANIFEST,
    SplitSizes,
    check_outputs,
    train_val_ids,
    write_splits,
    write_test_splits,
)
from slm_swap.files import many_objects, one_writer
from slm_swap.types import Track

SMOKE_ROWS_PER_TRACK = 50
# prepare's defaults (frozen, so one instance serves every call): the specification's 32/8/8 rows, and the
# source's own no-call rows kept with none made.
DEFAULT_SIZES = SplitSizes()
DEFAULT_NO_CALL = NoCallRules()


def prepare_inputs(
    source: Source, sizes: SplitSizes, seed: int, skip_invalid: bool, no_call: NoCallRules = DEFAULT_NO_CALL
) -> dict[str, Any]:
    """What a set of splits is a function of: the source's content, the sizes, the seed, the row rules."""
    return {
        "source": source.identity(),
        "sizes": {"train": sizes.train, "val": sizes.val, "test": sizes.test},
        "seed": seed,
        "skip_invalid": skip_invalid,
        "no_call_rows": no_call.no_call_rows,
        "irrelevance_share": no_call.irrelevance_share,
        # How made rows are offered tools; recorded since it changed (splits made before are redone).
        **({"made_rows": "called tools removed, else a donor's tools"} if no_call.irrelevance_share else {}),
        # Recorded only when near, so that splits made before the setting existed still match.
        **({"irrelevance_donors": "near"} if no_call.irrelevance_share and no_call.near else {}),
    }


@dataclass(frozen=True)
class RowKinds:
    """A split's rows by the kind of their answer."""

    calls: int  # one or more tool calls
    no_call: int  # no call: the source's own, and those made
    made: int = 0  # of the no-call rows, those made from call rows (`--irrelevance-share`)

    @classmethod
    def of(cls, rows: list[SourceRow], made: int = 0) -> RowKinds:
        no_call = sum(1 for r in rows if not r.gold)
        return cls(len(rows) - no_call, no_call, made)


@dataclass(frozen=True)
class PrepareResult:
    files: list[Path]
    counts: dict[str, int]
    rows_read: int
    skipped: list[str]
    unknown_types: dict[str, int]
    kept: list[Path] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)
    rows: dict[str, list[SourceRow]] = field(default_factory=dict)  # per split, as written
    kinds: dict[str, RowKinds] = field(default_factory=dict)  # per split (per track for --smoke)

    @classmethod
    def of(
        cls,
        found: Scan,
        files: list[Path],
        written: dict[str, list[SourceRow]],
        kinds: dict[str, RowKinds],
        *,
        kept: list[Path] | None = None,
        rows: dict[str, list[SourceRow]] | None = None,
    ) -> PrepareResult:
        """The result of writing `written` (rows per split, or per track) from the scan `found`."""
        counts = {k: len(v) for k, v in written.items()}
        found_ = (found.rows_read, found.skipped, dict(found.unknown_types))
        return cls(files, counts, *found_, kept or [], dict(found.left_out), rows or {}, kinds)


def prepare(
    source: Source,
    out_dir: Path,
    sizes: SplitSizes = DEFAULT_SIZES,
    *,
    seed: int = settings.SPLIT_SEED,
    skip_invalid: bool = False,
    no_call: NoCallRules = DEFAULT_NO_CALL,
) -> PrepareResult:
    """Validates the source, samples disjoint train/val/test rows and writes both tracks' splits, with a
    manifest of what they were made from (`prepared.json`).

    With an irrelevance share, `made(size)` of the train and of the val split's rows (size × share,
    rounded to the nearest whole number, a half up: 32 × 0.25 = 8 of 32) are no-call rows made the way
    Hammer's xlam-irrelevance set was: a call row of the source that is in no split, with every tool its
    gold calls removed from its offer (`rows.without_called_tools`; a row that offers only the tools it
    calls is offered instead those of a donor row in no split, `nocall.pick_removable`), under its id
    plus `-nocall`. The rest are the source's rows, sampled as without a share. One
    generator seeded with `seed` samples the source rows, then the rows to make no-call ones from, then
    shuffles each augmented split. The test split is never augmented. A share that leaves a train or val
    split no source row, or a source without enough unused call rows, is a ConfigError / InputError
    before anything is written."""
    check_outputs(source, out_dir)
    with one_writer(out_dir / MANIFEST), many_objects():  # many_objects: 60,000 rows held at once
        inputs = prepare_inputs(source, sizes, seed, skip_invalid, no_call)
        made = made_counts(sizes, no_call)
        found = scan(
            source,
            skip_invalid=skip_invalid,
            keep_no_call=no_call.keep,
            find_removable=any(made.values()),
            find_topics=any(made.values()) and no_call.near,
        )
        need = sizes.total - sum(made.values())
        if len(found.usable) < need:
            raise not_enough(source, found, need, "the splits")
        rng = random.Random(seed)
        chosen = rng.sample(found.usable, need)
        picked = pick_removable(source, found, set(chosen), sum(made.values()), no_call, rng)
        rows = collect(source, chosen + picked.indices)
        train, val = sizes.train - made["train"], sizes.val - made["val"]
        bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, need)}
        splits = {name: [rows[i] for i in chosen[a:b]] for name, (a, b) in bounds.items()}
        made_rows = picked.made_rows(rows)
        for split, extra in (("train", made_rows[: made["train"]]), ("val", made_rows[made["train"] :])):
            if extra:
                splits[split] += extra
                rng.shuffle(splits[split])
        written = write_splits(out_dir, splits, inputs)
        kinds = {k: RowKinds.of(v, made.get(k, 0)) for k, v in splits.items()}
        return PrepareResult.of(found, written.files, splits, kinds, rows=splits)


def smoke_splits(
    source: Source,
    out_dir: Path,
    *,
    per_track: int = SMOKE_ROWS_PER_TRACK,
    seed: int = settings.SPLIT_SEED,
    skip_invalid: bool = False,
    keep_no_call: bool = True,
) -> PrepareResult:
    """The spec's smoke resampling: 2 x `per_track` fresh rows (in no train/val split of either track,
    neither as themselves nor as a no-call row made from them) become a separate test split for each
    track. A different existing test split is kept as a timestamped copy first; nothing is overwritten
    silently."""
    check_outputs(source, out_dir)
    with one_writer(out_dir / MANIFEST):
        used = train_val_ids(out_dir)
        found = scan(source, skip_invalid=skip_invalid, exclude_ids=used, keep_no_call=keep_no_call)
        if len(found.usable) < 2 * per_track:
            raise not_enough(source, found, 2 * per_track, "the smoke splits (rows in no train/val split)")
        chosen = random.Random(seed).sample(found.usable, 2 * per_track)
        rows = collect(source, chosen)
        per_track_rows: dict[Track, list[SourceRow]] = {
            "structured": [rows[i] for i in chosen[:per_track]],
            "toolcall": [rows[i] for i in chosen[per_track:]],
        }
        written = write_test_splits(out_dir, per_track_rows)
        by_track: dict[str, list[SourceRow]] = {str(t): r for t, r in per_track_rows.items()}
        kinds = {t: RowKinds.of(r) for t, r in by_track.items()}
        return PrepareResult.of(found, written.files, by_track, kinds, kept=written.kept)
