"""Rows whose answer is no tool call, on the way into the splits.

They come two ways (`NoCallRules`): the source's own (a reply in text in a team's traffic, BFCL's
irrelevance categories), kept unless `--no-call-rows drop` leaves them out (`scan`), and rows made for
the train and val splits with `--irrelevance-share`, the way Hammer's xlam-irrelevance set was: a call
row in no split with every tool its gold calls removed from its offer (`rows.without_called_tools`), or,
where it offers only those, offered a donor row's tools instead (`pick_removable`).
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import partial

from slm_swap import settings
from slm_swap.data.rows import SourceRow, can_borrow, without_called_tools
from slm_swap.data.scan import Scan
from slm_swap.data.sources import Source
from slm_swap.data.splits import SplitSizes
from slm_swap.data.topics import TopicIndex
from slm_swap.errors import ConfigError, InputError


@dataclass(frozen=True)
class NoCallRules:
    """How rows whose answer is no tool call enter the splits: the source's own kept or dropped, and the
    share of the train and val rows made no-call rows (`prepare`). Validated on creation."""

    no_call_rows: str = settings.field(settings.NO_CALL_ROWS)
    irrelevance_share: float = settings.field(settings.IRRELEVANCE_SHARE)
    irrelevance_donors: str = settings.field(settings.IRRELEVANCE_DONORS)

    def __post_init__(self) -> None:
        if self.no_call_rows not in settings.NO_CALL_ROW_CHOICES:
            raise ConfigError(
                f"{settings.NO_CALL_ROWS} must be one of {', '.join(settings.NO_CALL_ROW_CHOICES)}, "
                f"got {self.no_call_rows!r}"
            )
        if self.irrelevance_donors not in settings.DONORS:
            raise ConfigError(
                f"{settings.IRRELEVANCE_DONORS} must be one of {', '.join(settings.DONORS)}, "
                f"got {self.irrelevance_donors!r}"
            )
        if not 0 <= self.irrelevance_share < 1:
            raise ConfigError(
                f"{settings.IRRELEVANCE_SHARE} must be in [0, 1), got {self.irrelevance_share}\n"
                f"  fix: give the share of the train and val rows to make no-call rows, e.g. "
                f"{settings.IRRELEVANCE_SHARE} 0.25"
            )

    @property
    def near(self) -> bool:
        """Whether a made row's donor is the closest in topic (`topics.py`), not any at random."""
        return self.irrelevance_donors == "near"

    @property
    def keep(self) -> bool:
        """Whether the source's own no-call rows can be sampled."""
        return self.no_call_rows == "keep"

    def made(self, size: int) -> int:
        """How many of a train or val split's `size` rows are made no-call rows: size × share rounded to
        the nearest whole number, a half rounding up (computed in decimal, so 10 × 0.35 is 4)."""
        exact = Decimal(repr(self.irrelevance_share)) * size
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def made_counts(sizes: SplitSizes, no_call: NoCallRules) -> dict[str, int]:
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


@dataclass(frozen=True)
class Picked:
    """The rows to make no-call rows from, and the donor of each of them that offers only the tools its
    answer calls (row -> donor row)."""

    rows: list[int]
    donors: dict[int, int]

    @property
    def indices(self) -> list[int]:
        """Every row the made rows need converted: the picked rows, then their donors."""
        return self.rows + list(self.donors.values())

    def made_rows(self, converted: dict[int, SourceRow]) -> list[SourceRow]:
        """The no-call rows made from the picked rows (`converted` holds at least `indices`), in order."""
        donor = {i: converted[d] for i, d in self.donors.items()}
        # Never None: every picked row can be made, and a lonely one has a fit donor (`pick_removable`).
        return [m for i in self.rows if (m := without_called_tools(converted[i], donor.get(i))) is not None]


def pick_removable(
    source: Source, found: Scan, chosen: set[int], count: int, no_call: NoCallRules, rng: random.Random
) -> Picked:
    """`count` rows in no split to make no-call rows from, and for each of them that offers only the
    tools its answer calls, its donor: a row in no split whose tools bear none of its tool names, drawn
    at random (seeded by `rng`, like the rows) or, with near donors, from the offers closest to its own in
    topic (`topics.TopicIndex.nearest`; at random where none is near). Raises InputError when there are
    too few."""
    if not count:
        return Picked([], {})
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
    index = TopicIndex.of({o: found.topics[o] for o in offers}) if no_call.near else None
    donors: dict[int, int] = {}
    for i in picked:
        if i in found.lonely:
            names = found.lonely[i]
            fits = partial(can_borrow, names)
            near = [] if index is None else index.nearest(found.topics[found.offers[i]], fits)
            if near:
                offer = rng.choice(near)
            else:  # from a random offer on, the first that fits
                start = rng.randrange(len(offers))
                turn = itertools.chain(range(start, len(offers)), range(start))
                offer = next(offers[k] for k in turn if can_borrow(names, offers[k]))
            donors[i] = rng.choice(by_offer[offer])
    return Picked(picked, donors)
