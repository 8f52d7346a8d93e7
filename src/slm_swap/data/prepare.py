"""`prepare`: source file → `02_dataset/{structured,toolcall}/{train,val,test}.jsonl`.

Both tracks are built from the same sampled rows, each rendered in its own answer format, so the two
tracks ask the same questions. Sampling is seeded and depends only on the file's content and the sizes.

The file is read twice as a stream: once to validate every row (and learn which are usable), once to
convert the few rows chosen. Memory stays flat however large the file is.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.data import bfcl, openai_chat, xlam
from slm_swap.data.rows import RowError, RowLeftOut, SourceRow
from slm_swap.errors import InputError
from slm_swap.files import atomic_writer, check_output, jsonl_text, many_objects, read_jsonl, sha256_text
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

    @property
    def total(self) -> int:
        return self.train + self.val + self.test


@dataclass(frozen=True)
class Source:
    """Where rows come from: a re-iterable stream of (where, converter) pairs, and what identifies its
    content (for the identity rule: the same content under another path is the same source)."""

    label: str
    rows: Callable[[], Iterator[tuple[str, Callable[[], SourceRow]]]]
    identity: Callable[[], dict[str, Any]]


def xlam_source(path: Path) -> Source:
    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        for raw in xlam.iter_raw_rows(path):
            yield raw.where, partial(xlam.convert_row, raw.data)

    def identity() -> dict[str, Any]:
        if not path.is_file():
            raise InputError(
                path, None, "no such file", f"pass the xLAM JSON file with {settings.DATASET_PATH}"
            )
        return {"kind": "xlam", "sha256": file_digest(path)}

    return Source(str(path), rows, identity)


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
        if not path.is_file():
            raise InputError(
                path, None, "no such file", f"pass the JSON Lines file with {settings.DATASET_PATH}"
            )
        return {"kind": "openai", "sha256": file_digest(path)}

    return Source(str(path), rows, identity)


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


def prepare_inputs(source: Source, sizes: SplitSizes, seed: int, skip_invalid: bool) -> dict[str, Any]:
    """What a set of splits is a function of: the source's content, the sizes, the seed, the row rule."""
    return {
        "source": source.identity(),
        "sizes": {"train": sizes.train, "val": sizes.val, "test": sizes.test},
        "seed": seed,
        "skip_invalid": skip_invalid,
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
    ids: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)  # well-formed rows that make no example
    unknown_types: Counter[str] = field(default_factory=Counter)
    rows_read: int = 0


def scan(source: Source, *, skip_invalid: bool, exclude_ids: frozenset[str] = frozenset()) -> Scan:
    """Validates every row. A bad row raises InputError (file and row named) unless `skip_invalid`."""
    result = Scan()
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
        if row.id not in exclude_ids:
            result.usable.append(index)
    return result


def collect(source: Source, indices: list[int]) -> dict[int, SourceRow]:
    """Converts the rows at `indices` (second pass)."""
    wanted = set(indices)
    return {i: convert() for i, (_, convert) in enumerate(source.rows()) if i in wanted}


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


def _write_splits(out_dir: Path, splits: dict[str, list[SourceRow]], inputs: dict[str, Any]) -> list[Path]:
    """Writes all six files and the manifest to temporary names and renames them only once every one is
    written, so a failure leaves no split half-written or out of step with the others."""
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
    for path in [*contents, out_dir / MANIFEST]:  # all checked before any is written
        check_output(path, settings.OUT_DIR)
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


def prepare(
    source: Source,
    out_dir: Path,
    sizes: SplitSizes = SplitSizes(),
    *,
    seed: int = settings.SPLIT_SEED,
    skip_invalid: bool = False,
) -> PrepareResult:
    """Validates the source, samples disjoint train/val/test rows and writes both tracks' splits, with a
    manifest of what they were made from (`prepared.json`)."""
    with many_objects():  # 60,000 rows held at once
        inputs = prepare_inputs(source, sizes, seed, skip_invalid)
        found = scan(source, skip_invalid=skip_invalid)
        if len(found.usable) < sizes.total:
            raise _not_enough(source, found, sizes.total, "the splits")
        chosen = random.Random(seed).sample(found.usable, sizes.total)
        rows = collect(source, chosen)
        bounds = {
            "train": (0, sizes.train),
            "val": (sizes.train, sizes.train + sizes.val),
            "test": (sizes.train + sizes.val, sizes.total),
        }
        splits = {name: [rows[i] for i in chosen[a:b]] for name, (a, b) in bounds.items()}
        written = _write_splits(out_dir, splits, inputs)
        return PrepareResult(
            written,
            {k: len(v) for k, v in splits.items()},
            found.rows_read,
            found.skipped,
            dict(found.unknown_types),
            left_out=dict(found.left_out),
            rows=splits,
        )


def _ids_in(path: Path) -> set[str]:
    return {str(row["id"]) for _, row in read_jsonl(path, "a prepared split")} if path.is_file() else set()


def smoke_splits(
    source: Source,
    out_dir: Path,
    *,
    per_track: int = SMOKE_ROWS_PER_TRACK,
    seed: int = settings.SPLIT_SEED,
    skip_invalid: bool = False,
) -> PrepareResult:
    """The spec's smoke resampling: 2 x `per_track` fresh rows (in no train/val split of either track)
    become a separate test split for each track. A different existing test split is kept as a
    timestamped copy first; nothing is overwritten silently."""
    used: set[str] = set()
    for track in TRACKS:
        for split in ("train", "val"):
            used |= _ids_in(out_dir / track / f"{split}.jsonl")
    found = scan(source, skip_invalid=skip_invalid, exclude_ids=frozenset(used))
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
    )
