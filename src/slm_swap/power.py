"""The paired interval of a fixed number of rows, what those rows can detect, and how many would settle.

**The interval.** For each core metric, the paired differences d = hosted − SLM (one per row, in
[−1, 1]) are summed with two pseudo-rows, one on which only the hosted model is right (+1) and one on
which only the SLM is (−1); the interval is the adjusted Wald interval of their mean,

    centre = Σd / (n + 2),   σ̃² = (Σd² + 2) / (n + 2) − centre²,   centre ± 1.96 · σ̃ / √(n + 2).

For a 0/1 metric this is Bonett and Price's adjusted Wald interval for a difference of paired
proportions (2012), whose coverage stays near 95% down to a handful of rows; the percentile bootstrap it
replaces collapsed to a single point whenever no pair disagreed (8 rows that all agree "proved" a
difference of exactly 0). For a score such as arg_f1 it is the same construction on bounded
differences. `bench/sequential.py` measures its coverage by simulation.

**What the rows can detect, and how many would settle.** A metric is settled when its interval lies
wholly on one side of `delta`. With z = z₀.₉₇₅ + z₀.₈ = 2.80 (two-sided 5%, 80% power):

* `detectable`: the smallest distance between the true difference and delta that the current n rows
  settle four times in five, z · σ̃ / √(n + 2);
* `rows_needed`: the rows N that settle the metric four times in five if the true difference is the one
  observed, N + 2 = (z · σ̃_N / |difference − delta|)², where σ̃_N is σ̃ with the two pseudo-rows weighed
  against N rows instead of n (solved by bisection); None when the observed difference sits on delta
  (or needs more than ten million rows): no evaluation a team would run settles it then.

A 0/1 metric's σ̃ comes from its discordant share (σ̃² = discordant share − difference², guarded), so
the figures follow the observed discordance, as a paired design's should.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

Z_CI = 1.959963984540054  # two-sided 95%
Z = Z_CI + 0.8416212335729143  # and 80% power
MAX_ROWS = 10_000_000


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def settled(self, delta: float) -> bool:
        """Whether the interval lies wholly above delta (surely trails) or wholly at or below it."""
        return self.low > delta or self.high <= delta


@dataclass(frozen=True)
class Power:
    detectable: float  # the distance from delta that the rows in hand settle with 80% power
    rows_needed: int | None  # rows that settle the metric at the observed difference (None: never)


def _moments(total: float, squares: float, n: float) -> tuple[float, float]:
    """The guarded centre and standard deviation of n rows whose differences sum to `total` and whose
    squares sum to `squares` (plus the two pseudo-rows)."""
    centre = total / (n + 2)
    variance = (squares + 2) / (n + 2) - centre**2
    return centre, math.sqrt(max(variance, 0.0))


def interval(diff: np.ndarray) -> Interval:
    """The adjusted Wald 95% interval of the mean paired difference (see above), within [−1, 1]."""
    low, high = bounds(diff.sum(), (diff**2).sum(), diff.size)
    return Interval(float(low), float(high))


def bounds(total: Any, squares: Any, n: Any) -> tuple[Any, Any]:
    """The interval's bounds from n rows whose differences sum to `total` and whose squares sum to
    `squares`, element by element on arrays too: for a 0/1 metric, `total` = b − c and `squares` = b + c
    (b rows where only the hosted model is right, c where only the SLM is), so that a simulation can take
    100,000 evaluations at once."""
    centre = np.asarray(total, dtype=np.float64) / (np.asarray(n) + 2)
    sd = np.sqrt(np.maximum((np.asarray(squares) + 2) / (np.asarray(n) + 2) - centre**2, 0.0))
    half = Z_CI * sd / np.sqrt(np.asarray(n) + 2)
    return np.maximum(-1.0, centre - half), np.minimum(1.0, centre + half)


def power(diff: np.ndarray, delta: float) -> Power:
    """What the paired differences `diff` can detect against `delta`, and the rows that would settle
    the metric at the difference observed (see above)."""
    n = float(diff.size)
    mean, mean_square = float(diff.mean()), float((diff**2).mean())
    _, sd = _moments(float(diff.sum()), float((diff**2).sum()), n)
    detectable = Z * sd / math.sqrt(n + 2)
    if abs(mean - delta) < 1e-12:
        return Power(detectable, None)

    def wanted(rows: float) -> float:
        """The rows that settle four times in five if N = `rows` were evaluated: decreasing in N, since
        the pseudo-rows weigh less (infinite while they still pull the centre across delta)."""
        centre, sd_n = _moments(mean * rows, mean_square * rows, rows)
        if (centre - delta) * (mean - delta) <= 0:
            return math.inf
        return (Z * sd_n / abs(centre - delta)) ** 2 - 2

    low, high = 1.0, float(MAX_ROWS)
    if wanted(high) > high:
        return Power(detectable, None)
    for _ in range(80):  # bisection in log space on wanted(N) = N, where N meets what it needs
        middle = math.sqrt(low * high)
        low, high = (middle, high) if wanted(middle) > middle else (low, middle)
    rows = high
    return Power(detectable, max(1, math.ceil(rows)))
