"""The two passes over a source: `scan` validates every row and learns which are usable, `collect`
converts the few chosen. Each reads the source as a stream, so memory stays flat however large it is."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from slm_swap import settings
from slm_swap.data.rows import MADE_SUFFIX, RowError, RowLeftOut, SourceRow, names_of, no_call_offer
from slm_swap.data.sources import Source
from slm_swap.data.topics import words
from slm_swap.errors import InputError

NO_CALL_DROPPED = f"the answer is no call ({settings.NO_CALL_ROWS} drop)"


@dataclass
class Scan:
    """What a validation pass found."""

    usable: list[int] = field(default_factory=list)
    # Usable call rows that can become a no-call row (`rows.without_called_tools`) under an unused id:
    # by removing the called tools alone, or (`lonely`: row -> `rows.names_of`) with another row's tools.
    removable: set[int] = field(default_factory=set)
    lonely: dict[int, frozenset[str]] = field(default_factory=dict)
    offers: dict[int, frozenset[str]] = field(default_factory=dict)  # usable row -> its tools' names
    topics: dict[frozenset[str], frozenset[str]] = field(default_factory=dict)  # offer -> `topics.words`
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
    find_topics: bool = False,
) -> Scan:
    """Validates every row. A bad row raises InputError (file and row named) unless `skip_invalid`; a row
    whose answer is no call is left out (counted) unless `keep_no_call`. `find_removable` fills
    `Scan.removable` (only needed to make no-call rows, so a plain prepare pays nothing for it), and
    `find_topics` `Scan.topics` (only for near donors)."""
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
                if find_topics and row.tool_names not in result.topics:
                    result.topics[row.tool_names] = words(row.tools)
                offer = no_call_offer(row)
                if offer is not None:
                    made_ids[index] = f"{row.id}{MADE_SUFFIX}"
                if offer == "borrowed":
                    result.lonely[index] = names_of(row)
    unused = {i for i, made_id in made_ids.items() if made_id not in result.ids}
    result.removable = unused - set(result.lonely)
    result.lonely = {i: names for i, names in result.lonely.items() if i in unused}
    return result


def not_enough(source: Source, found: Scan, need: int, what: str) -> InputError:
    """The error for a source with fewer usable rows than `what` need."""
    left_out = f", {sum(found.left_out.values())} left out" if found.left_out else ""
    return InputError(
        source.label,
        None,
        f"has {len(found.usable)} usable rows ({found.rows_read} read, {len(found.skipped)} skipped"
        f"{left_out}); "
        f"{what} need {need}",
        f"use a larger file or smaller {settings.TRAIN_SIZE}/{settings.VAL_SIZE}/{settings.TEST_SIZE}",
    )


def collect(source: Source, indices: list[int]) -> dict[int, SourceRow]:
    """Converts the rows at `indices` (second pass)."""
    wanted = set(indices)
    return {i: convert() for i, (_, convert) in enumerate(source.rows()) if i in wanted}
