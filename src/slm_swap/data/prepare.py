"""`prepare`: source file → `02_dataset/{structured,toolcall}/{train,val,test}.jsonl`.

Both tracks are built from the same sampled rows, each rendered in its own answer format, so the two
tracks ask the same questions. Sampling is seeded and depends only on the file's content and the sizes.

Rows whose answer is no tool call come two ways (`NoCallRules`): the source's own (a reply in text in a
team's traffic, BFCL's irrelevance categories), kept unless `--no-call-rows drop` leaves them out, and
rows made for the train and val splits with `--irrelevance-share` (see `prepare`).

The file is read twice as a stream: once to validate every row (and learn which are usable), once to
convert the few rows chosen. Memory stays flat however large the file is.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.data import bfcl, openai_chat, xlam
from slm_swap.data.rows import (
    MADE_SUFFIX,
    RowError,
    RowLeftOut,
    SourceRow,
    can_borrow,
    names_of,
    no_call_offer,
    without_called_tools,
)
from slm_swap.errors import ConfigError, InputError
from slm_swap.files import (
    atomic_writer,
    check_output,
    jsonl_text,
    many_objects,
    one_writer,
    read_jsonl,
    require_file,
    sha256_text,
)
from slm_swap.identity import file_digest
from slm_swap.tracing.config import LangfuseConfig
from slm_swap.types import SPLITS, TRACKS, Track
from slm_swap.workspace import set_aside

SMOKE_ROWS_PER_TRACK = 50


def sample_path() -> Path:
    """The xLAM-format sample shipped with the package (written by us; the real file is gated)."""
    return Path(str(files("slm_swap.data").joinpath("sample/xlam_sample.json")))


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


@dataclass(frozen=True)
class NoCallRules:
    """How rows whose answer is no tool call enter the splits: the source's own kept or dropped, and the
    share of the train and val rows made no-call rows (`prepare`). Validated on creation."""

    no_call_rows: str = settings.field(settings.NO_CALL_ROWS)
    irrelevance_share: float = settings.field(settings.IRRELEVANCE_SHARE)

    def __post_init__(self) -> None:
        if self.no_call_rows not in settings.NO_CALL_ROW_CHOICES:
            raise ConfigError(
                f"{settings.NO_CALL_ROWS} must be one of {', '.join(settings.NO_CALL_ROW_CHOICES)}, "
                f"got {self.no_call_rows!r}"
            )
        if not 0 <= self.irrelevance_share < 1:
            raise ConfigError(
                f"{settings.IRRELEVANCE_SHARE} must be in [0, 1), got {self.irrelevance_share}\n"
                f"  fix: give the share of the train and val rows to make no-call rows, e.g. "
                f"{settings.IRRELEVANCE_SHARE} 0.25"
            )

    @property
    def keep(self) -> bool:
        """Whether the source's own no-call rows can be sampled."""
        return self.no_call_rows == "keep"

    def made(self, size: int) -> int:
        """How many of a train or val split's `size` rows are made no-call rows: size × share rounded to
        the nearest whole number, a half rounding up (computed in decimal, so 10 × 0.35 is 4)."""
        exact = Decimal(repr(self.irrelevance_share)) * size
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


NO_CALL_DROPPED = f"the answer is no call ({settings.NO_CALL_ROWS} drop)"


@dataclass(frozen=True)
class Source:
    """Where rows come from: a re-iterable stream of (where, converter) pairs, and what identifies its
    content (for the identity rule: the same content under another path is the same source)."""

    label: str
    rows: Callable[[], Iterator[tuple[str, Callable[[], SourceRow]]]]
    identity: Callable[[], dict[str, Any]]
    file: Path | None = None  # the file it reads, where it is one: no output may be written over it


def xlam_source(path: Path) -> Source:
    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        for raw in xlam.iter_raw_rows(path):
            yield raw.where, partial(xlam.convert_row, raw.data)

    def identity() -> dict[str, Any]:
        require_file(path, f"pass the xLAM JSON file with {settings.DATASET_PATH}")
        return {"kind": "xlam", "sha256": file_digest(path)}

    return Source(str(path), rows, identity, path)


def bfcl_source(location: Path, category: str) -> Source:
    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        for where, question, answer in bfcl.iter_category(location, category):
            yield where, partial(bfcl.convert_row, question, answer)

    def identity() -> dict[str, Any]:
        return {"kind": "bfcl", "category": category, "sha256": bfcl.content_digest(location, category)}

    return Source(f"{location} [{category}]", rows, identity)


def openai_source(path: Path) -> Source:
    """A team's own conversations in OpenAI's chat format (`openai_chat.py`)."""

    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        for where, data in openai_chat.iter_lines(path):
            yield where, partial(openai_chat.convert_row, data, where)

    def identity() -> dict[str, Any]:
        require_file(path, f"pass the JSON Lines file with {settings.DATASET_PATH}")
        return {"kind": "openai", "sha256": file_digest(path)}

    return Source(str(path), rows, identity, path)


def langfuse_source(name: str, langfuse: LangfuseConfig) -> Source:
    """The items of a Langfuse dataset (`langfuse_datasets.py`) in the project `langfuse` names, fetched
    once, at the first read (where a missing key is refused)."""
    from slm_swap.data import langfuse_datasets

    fetched: list[Any] = []

    def items() -> list[Any]:
        if not fetched:
            fetched.append(langfuse_datasets.fetch_items(name, langfuse_datasets.client(langfuse)))
        return list(fetched[0])

    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        yield from langfuse_datasets.rows(name, items())

    def identity() -> dict[str, Any]:
        return {"kind": "langfuse", "dataset": name, "sha256": langfuse_datasets.content_digest(items())}

    return Source(f"langfuse dataset {name!r}", rows, identity)


def source_for(
    kind: str,
    path: Path | None,
    bfcl_category: str,
    langfuse_dataset: str | None = None,
    langfuse: LangfuseConfig | None = None,
) -> Source:
    """The source a command's source, dataset path, BFCL category and Langfuse dataset settings
    name. xLAM defaults to the shipped sample, BFCL to the bfcl-eval wheel (fetched once); an
    OpenAI-format file and a Langfuse dataset must be named. A Langfuse dataset is read with the
    configuration `langfuse` (None: nothing configured)."""
    if kind == "langfuse":
        if not langfuse_dataset:
            raise InputError(
                f"{settings.SOURCE} langfuse",
                None,
                "needs a dataset",
                f"pass {settings.LANGFUSE_DATASET} NAME",
            )
        return langfuse_source(langfuse_dataset, langfuse or LangfuseConfig())
    if kind == "bfcl":
        return bfcl_source(path or bfcl.fetch_wheel(), bfcl_category)
    if kind == "openai":
        if path is None:
            raise InputError(
                f"{settings.SOURCE} openai",
                None,
                "needs a file",
                f"pass the JSON Lines file with {settings.DATASET_PATH}",
            )
        return openai_source(path)
    return xlam_source(path or sample_path())


MANIFEST = "prepared.json"  # in the dataset folder: what the splits were made from
MANIFEST_FORMAT = "slm-swap.prepared/1"


def prepare_inputs(
    source: Source, sizes: SplitSizes, seed: int, skip_invalid: bool, no_call: NoCallRules = NoCallRules()
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
    }


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


@dataclass
class Scan:
    """What a validation pass found."""

    usable: list[int] = field(default_factory=list)
    # Usable call rows that can become a no-call row (`rows.without_called_tools`) under an unused id:
    # by removing the called tools alone, or (`lonely`: row -> `rows.names_of`) with another row's tools.
    removable: set[int] = field(default_factory=set)
    lonely: dict[int, frozenset[str]] = field(default_factory=dict)
    offers: dict[int, frozenset[str]] = field(default_factory=dict)  # usable row -> its tools' names
    ids: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)  # well-formed rows that make no example
    unknown_types: Counter[str] = field(default_factory=Counter)
    rows_read: int = 0


def scan(
    source: Source,
    *,
    skip_invalid: bool,
    exclude_ids: frozenset[str] = frozenset(),
    keep_no_call: bool = True,
    find_removable: bool = False,
) -> Scan:
    """Validates every row. A bad row raises InputError (file and row named) unless `skip_invalid`; a row
    whose answer is no call is left out (counted) unless `keep_no_call`. `find_removable` fills
    `Scan.removable` (only needed to make no-call rows, so a plain prepare pays nothing for it)."""
    result = Scan()
    made_ids: dict[int, str] = {}  # removable row -> the id its no-call row would have
    for index, (where, convert) in enumerate(source.rows()):
        result.rows_read += 1
        try:
            try:
                row = convert()
            except RowLeftOut as e:
                result.left_out[e.reason] += 1
                continue
            except RowError:
                raise
            except (TypeError, KeyError, AttributeError, ValueError) as e:
                # A field of the wrong JSON type deep inside a row: bad input, not a bug of ours.
                raise RowError(f"malformed row ({type(e).__name__}: {str(e)[:120]})") from e
            if row.id in result.ids:
                raise RowError(
                    f"id {row.id!r} also appears at row {result.ids[row.id]}",
                    "ids must be unique within a file",
                )
        except RowError as e:
            if not skip_invalid:
                fix = e.fix or f"fix the row, or pass {settings.SKIP_INVALID} to leave bad rows out"
                raise InputError(source.label, where, e.problem, fix) from e
            result.skipped.append(f"{where}: {e.problem}")
            continue
        result.ids[row.id] = index
        result.unknown_types.update(row.unknown_types)
        if not row.gold and not keep_no_call:
            result.left_out[NO_CALL_DROPPED] += 1
        elif row.id not in exclude_ids:
            result.usable.append(index)
            if find_removable:
                result.offers[index] = row.tool_names
                offer = no_call_offer(row)
                if offer is not None:
                    made_ids[index] = f"{row.id}{MADE_SUFFIX}"
                if offer == "borrowed":
                    result.lonely[index] = names_of(row)
    unused = {i for i, made_id in made_ids.items() if made_id not in result.ids}
    result.removable = unused - set(result.lonely)
    result.lonely = {i: names for i, names in result.lonely.items() if i in unused}
    return result


def collect(source: Source, indices: list[int]) -> dict[int, SourceRow]:
    """Converts the rows at `indices` (second pass)."""
    wanted = set(indices)
    return {i: convert() for i, (_, convert) in enumerate(source.rows()) if i in wanted}


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


def split_paths(out_dir: Path) -> list[Path]:
    """The files `prepare` writes in `out_dir`: each track's splits, then the manifest."""
    return [*(out_dir / track / f"{split}.jsonl" for track in TRACKS for split in SPLITS), out_dir / MANIFEST]


def check_outputs(source: Source, out_dir: Path) -> None:
    """Stops before anything is read or written when a file `prepare` would write cannot be written or
    is the source it reads."""
    for path in split_paths(out_dir):
        check_output(path, settings.OUT_DIR, inputs={"the source": source.file})


def _write_splits(out_dir: Path, splits: dict[str, list[SourceRow]], inputs: dict[str, Any]) -> list[Path]:
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
    return list(contents)


def _not_enough(source: Source, found: Scan, need: int, what: str) -> InputError:
    left_out = f", {sum(found.left_out.values())} left out" if found.left_out else ""
    return InputError(
        source.label,
        None,
        f"has {len(found.usable)} usable rows ({found.rows_read} read, {len(found.skipped)} skipped"
        f"{left_out}); "
        f"{what} need {need}",
        f"use a larger file or smaller {settings.TRAIN_SIZE}/{settings.VAL_SIZE}/{settings.TEST_SIZE}",
    )


def _made_counts(sizes: SplitSizes, no_call: NoCallRules) -> dict[str, int]:
    """How many no-call rows to make for the train and val splits. Raises ConfigError where a split
    would hold no source rows."""
    made = {"train": no_call.made(sizes.train), "val": no_call.made(sizes.val)}
    for split, n in made.items():
        size = getattr(sizes, split)
        if size and n >= size:
            raise ConfigError(
                f"{settings.IRRELEVANCE_SHARE} {no_call.irrelevance_share} makes all {size} rows of the "
                f"{split} split no-call rows, leaving no call rows\n"
                f"  fix: give a smaller {settings.IRRELEVANCE_SHARE} or a larger "
                f"{settings.setting_of(sizes, split)}"
            )
    return made


def prepare(
    source: Source,
    out_dir: Path,
    sizes: SplitSizes = SplitSizes(),
    *,
    seed: int = settings.SPLIT_SEED,
    skip_invalid: bool = False,
    no_call: NoCallRules = NoCallRules(),
) -> PrepareResult:
    """Validates the source, samples disjoint train/val/test rows and writes both tracks' splits, with a
    manifest of what they were made from (`prepared.json`).

    With an irrelevance share, `made(size)` of the train and of the val split's rows (size × share,
    rounded to the nearest whole number, a half up: 32 × 0.25 = 8 of 32) are no-call rows made the way
    Hammer's xlam-irrelevance set was: a call row of the source that is in no split, with every tool its
    gold calls removed from its offer (`rows.without_called_tools`; a row that offers only the tools it
    calls is offered instead those of a donor row in no split, `_pick_removable`), under its id plus
    `-nocall`. The rest are the source's rows, sampled as without a share. One
    generator seeded with `seed` samples the source rows, then the rows to make no-call ones from, then
    shuffles each augmented split. The test split is never augmented. A share that leaves a train or val
    split no source row, or a source without enough unused call rows, is a ConfigError / InputError
    before anything is written."""
    check_outputs(source, out_dir)
    with one_writer(out_dir / MANIFEST), many_objects():  # many_objects: 60,000 rows held at once
        inputs = prepare_inputs(source, sizes, seed, skip_invalid, no_call)
        made = _made_counts(sizes, no_call)
        found = scan(
            source,
            skip_invalid=skip_invalid,
            keep_no_call=no_call.keep,
            find_removable=any(made.values()),
        )
        need = sizes.total - sum(made.values())
        if len(found.usable) < need:
            raise _not_enough(source, found, need, "the splits")
        rng = random.Random(seed)
        chosen = rng.sample(found.usable, need)
        picked, donors = _pick_removable(source, found, set(chosen), sum(made.values()), no_call, rng)
        rows = collect(source, chosen + picked + list(donors.values()))
        train, val = sizes.train - made["train"], sizes.val - made["val"]
        bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, need)}
        splits = {name: [rows[i] for i in chosen[a:b]] for name, (a, b) in bounds.items()}
        # Never None: every picked row can be made, and a lonely one has a fit donor (`_pick_removable`).
        made_rows = [
            m
            for i in picked
            if (m := without_called_tools(rows[i], rows[donors[i]] if i in donors else None)) is not None
        ]
        for split, extra in (("train", made_rows[: made["train"]]), ("val", made_rows[made["train"] :])):
            if extra:
                splits[split] += extra
                rng.shuffle(splits[split])
        written = _write_splits(out_dir, splits, inputs)
        return PrepareResult(
            written,
            {k: len(v) for k, v in splits.items()},
            found.rows_read,
            found.skipped,
            dict(found.unknown_types),
            left_out=dict(found.left_out),
            rows=splits,
            kinds={k: RowKinds.of(v, made.get(k, 0)) for k, v in splits.items()},
        )


def _pick_removable(
    source: Source, found: Scan, chosen: set[int], count: int, no_call: NoCallRules, rng: random.Random
) -> tuple[list[int], dict[int, int]]:
    """`count` rows in no split to make no-call rows from, and for each of them that offers only the
    tools its answer calls, its donor: a row in no split whose tools bear none of its tool names, drawn
    at random (seeded by `rng`, like the rows). Raises InputError when there are too few."""
    if not count:
        return [], {}
    pool = [i for i in found.usable if i not in chosen]
    by_offer: dict[frozenset[str], list[int]] = {}  # each distinct offer of the pool -> its rows
    for i in pool:
        by_offer.setdefault(found.offers[i], []).append(i)
    offers = list(by_offer)
    everywhere = {n for n, k in Counter(n for offer in offers for n in offer).items() if k == len(offers)}
    fit: dict[frozenset[str], bool] = {}  # the rows of one tool share their names: asked once

    def has_donor(names: frozenset[str]) -> bool:
        if names not in fit:  # a name every offer bears rules all out at once (a tool offered always)
            fit[names] = names.isdisjoint(everywhere) and any(can_borrow(names, o) for o in offers)
        return fit[names]

    candidates = [
        i for i in pool if i in found.removable or (i in found.lonely and has_donor(found.lonely[i]))
    ]
    if len(candidates) < count:
        raise InputError(
            source.label,
            None,
            f"has {len(candidates)} call rows in no split that can become no-call rows (a row needs a tool "
            f"left once the tools its answer calls are removed, or another row in no split offering "
            f"other tools to borrow); {settings.IRRELEVANCE_SHARE} {no_call.irrelevance_share} needs "
            f"{count}",
            f"use a larger file, a smaller {settings.IRRELEVANCE_SHARE}, or smaller "
            f"{settings.TRAIN_SIZE}/{settings.VAL_SIZE}/{settings.TEST_SIZE}",
        )
    picked = rng.sample(candidates, count)
    donors: dict[int, int] = {}
    for i in picked:
        if i in found.lonely:
            start = rng.randrange(len(offers))  # from a random offer on, the first that fits
            turn = itertools.chain(range(start, len(offers)), range(start))
            offer = next(offers[k] for k in turn if can_borrow(found.lonely[i], offers[k]))
            donors[i] = rng.choice(by_offer[offer])
    return picked, donors


def _ids_in(path: Path) -> set[str]:
    return {str(row["id"]) for _, row in read_jsonl(path, "a prepared split")} if path.is_file() else set()


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
        return _smoke_splits(source, out_dir, per_track, seed, skip_invalid, keep_no_call)


def _smoke_splits(
    source: Source, out_dir: Path, per_track: int, seed: int, skip_invalid: bool, keep_no_call: bool
) -> PrepareResult:
    used: set[str] = set()
    for track in TRACKS:
        for split in ("train", "val"):
            for row_id in _ids_in(out_dir / track / f"{split}.jsonl"):
                used |= {row_id, row_id.removesuffix(MADE_SUFFIX)}
    found = scan(source, skip_invalid=skip_invalid, exclude_ids=frozenset(used), keep_no_call=keep_no_call)
    if len(found.usable) < 2 * per_track:
        raise _not_enough(source, found, 2 * per_track, "the smoke splits (rows in no train/val split)")
    chosen = random.Random(seed).sample(found.usable, 2 * per_track)
    rows = collect(source, chosen)
    per_track_rows: dict[Track, list[SourceRow]] = {
        "structured": [rows[i] for i in chosen[:per_track]],
        "toolcall": [rows[i] for i in chosen[per_track:]],
    }
    kept: list[Path] = []
    written: list[Path] = []
    for track, track_rows in per_track_rows.items():
        target = out_dir / track / "test.jsonl"
        text = jsonl_text(r.to_example(track).to_json() for r in track_rows)
        if target.is_file() and target.read_text(encoding="utf-8") != text:
            kept.append(set_aside(target))
        with atomic_writer(target) as f:
            f.write(text)
        written.append(target)
    # The test splits are no longer what the manifest says they were made from.
    (out_dir / MANIFEST).unlink(missing_ok=True)
    return PrepareResult(
        written,
        {t: len(r) for t, r in per_track_rows.items()},
        found.rows_read,
        found.skipped,
        dict(found.unknown_types),
        kept,
        dict(found.left_out),
        kinds={t: RowKinds.of(r) for t, r in per_track_rows.items()},
    )
