"""How close two offers of tools are in topic, for no-call rows offered near-miss tools
(`--irrelevance-donors near`): the words of the tools' names and descriptions (`get_weather` and
"Current weather for a city" give weather, current, city), compared as sets (Jaccard), each word weighted
by how rare it is among the offers (`TopicIndex.similarity`).

Near is not the same: an offer whose words overlap the removed tools' by `SAME_TOOL` or more is taken for
the same function under another name (xLAM holds many) and never offered in their place, since a tool
that could serve the request would make the row's no-call answer wrong.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from slm_swap.types import ToolSpec

SAME_TOOL = 0.5  # a word overlap (weighted Jaccard) from which two offers are taken for the same function
NEAREST = 5  # a near donor is drawn from this many of the closest offers, so one row's donors vary
# A word found in more offers than this share of them (and at least `FEW` offers) says too little of their
# topic to look offers up by (they are still compared on it).
COMMON = 0.05
FEW = 100
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# Words that say nothing of a topic; words under three letters are dropped anyway.
_STOP = frozenset(
    "and are for from get given set that the this with use used returns return specified provided".split()  # noqa: SIM905 - a word list reads best as one string
)


def words(tools: Iterable[ToolSpec]) -> frozenset[str]:
    """The topic words of some tools: their names split at underscores, dots and case, and their
    descriptions' words, lower-cased, less stop words and words under three letters."""
    found: set[str] = set()
    for tool in tools:
        for text in (tool.name, tool.description):
            found.update(w.lower() for w in _WORD.findall(text))
    return frozenset(w for w in found if len(w) > 2 and w not in _STOP)


@dataclass
class TopicIndex:
    """The offers' words, and for each word the offers that have it (common words left out), so that the
    offers nearest one are found without comparing it with all of them."""

    topics: Mapping[frozenset[str], frozenset[str]]  # offer (its tools' names) -> its words
    postings: dict[str, list[frozenset[str]]]
    weights: dict[str, float]  # each word's inverse document frequency among the offers

    @classmethod
    def of(cls, topics: Mapping[frozenset[str], frozenset[str]]) -> TopicIndex:
        counts = Counter(w for t in topics.values() for w in t)
        limit = max(FEW, int(COMMON * len(topics)))
        postings: dict[str, list[frozenset[str]]] = {}
        for offer, topic in topics.items():
            for w in topic:
                if counts[w] <= limit:
                    postings.setdefault(w, []).append(offer)
        weights = {w: math.log((1 + len(topics)) / (1 + n)) + 1 for w, n in counts.items()}
        return cls(topics, postings, weights)

    def similarity(self, a: frozenset[str], b: frozenset[str]) -> float:
        """Jaccard similarity with each word weighted by how rare it is among the offers (its IDF), so
        that sharing "weather" says more than sharing "list" or "retrieves"."""
        union = sum(self.weights.get(w, 1.0) for w in a | b)
        return sum(self.weights.get(w, 1.0) for w in a & b) / union if union else 0.0

    def nearest(self, topic: frozenset[str], fits: Callable[[frozenset[str]], bool]) -> list[frozenset[str]]:
        """Up to `NEAREST` offers that `fits`, closest to `topic` first (ties in name order), none as close
        as `SAME_TOOL`; offers sharing no telling word with it are not near and are not listed."""
        shared = {o for w in topic for o in self.postings.get(w, ())}
        ranked = sorted(
            ((self.similarity(topic, self.topics[o]), sorted(o)) for o in shared), key=_closest_first
        )
        near = (frozenset(names) for score, names in ranked if score < SAME_TOOL)
        return list(itertools.islice((o for o in near if fits(o)), NEAREST))


def _closest_first(pair: tuple[float, list[str]]) -> tuple[float, list[str]]:
    return -pair[0], pair[1]
