"""Sequential evaluation: test rows taken in rounds from a pool, stopped as soon as the answer is known.

`run --max-test-size N` prepares a test pool of N rows (in the seeded random order `prepare` gives them)
and evaluates both models on its first `--test-size` rows, then on twice as many, and so on up to N.
After each round, each core metric's paired difference hosted − SLM gets a confidence sequence: an
interval that holds at every round at once with probability 95%, so looking after each round and
stopping when the answer is known does not raise the error rate, as recomputing a fixed-n interval
after each round would. Evaluation stops when every core metric is settled (its sequence lies wholly
above delta, or wholly at or below it) or the pool is used up.

The sequence is the betting confidence sequence of Waudby-Smith and Ramdas ("Estimating means of bounded
random variables by betting", JRSS-B 2024), in its form for sampling without replacement from a finite
pool (Waudby-Smith and Ramdas, "Confidence sequences for sampling without replacement", NeurIPS 2020):
the differences d in [−1, 1] are mapped to x = (d + 1) / 2 in [0, 1]; for each candidate pool mean m, two
gamblers bet that the next row's x is above (or below) its mean under m given the rows seen so far,
(N·m − Σx) / (N − t + 1), with the predictable plug-in bet sizes of the paper; m leaves the sequence for
good once the hedged wealth reaches 1/α (Ville's inequality bounds the chance that the true m ever does
by α). The sequence targets the pool's own mean difference, which evaluating every row would give, and
it shrinks to that mean as the pool runs out. `bench/sequential.py` measures its error rate, its
agreement with evaluating every row and the rows it saves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from slm_swap.fileformats import Count, Flag, Number
from slm_swap.power import Interval

ALPHA = 0.05
GRID = 4001  # candidate pool means of x; the sequence is widened by one step each side (never narrower)
BET_CAP = 0.5  # the largest share of the wealth one row may stake (the paper's c)
RULE = (
    "betting confidence sequence for sampling without replacement (Waudby-Smith & Ramdas), 95% at every "
    "round at once; stop when every core metric's sequence lies wholly above delta or wholly at or below it"
)


def confidence_sequence(diff: np.ndarray, population: int, alpha: float = ALPHA) -> Interval:
    """The confidence sequence for the mean of `population` paired differences in [−1, 1], after seeing
    the first `diff.size` of them in a uniformly random order: the running intersection over every
    prefix, so it holds at every round at once."""
    x = (np.asarray(diff, dtype=np.float64) + 1.0) / 2.0
    n = int(x.size)
    if n > population:
        raise ValueError(f"{n} rows seen of a pool of {population}")
    m = np.linspace(0.0, 1.0, GRID)
    alive = np.ones(GRID, dtype=bool)
    log_up = np.zeros(GRID)
    log_down = np.zeros(GRID)
    threshold = math.log(1.0 / alpha)
    seen = 0.0  # Σ x of the rows before this one
    mean_hat, var_sum = 0.5, 0.25  # the plug-in estimates' running parts (the paper's 1/2 and 1/4 priors)
    for t in range(1, n + 1):
        remaining = population - t + 1
        mu = (population * m - seen) / remaining  # the next row's mean if the pool's mean is m
        alive &= (mu >= -1e-12) & (mu <= 1 + 1e-12)  # pool means the rows seen already rule out
        mu = np.clip(mu, 1e-12, 1 - 1e-12)
        sigma2 = var_sum / t
        bet = math.sqrt(2 * math.log(2 / alpha) / (sigma2 * t * math.log(t + 1)))
        up = np.minimum(bet, BET_CAP / mu)
        down = np.minimum(bet, BET_CAP / (1 - mu))
        xt = x[t - 1]
        log_up += np.log1p(up * (xt - mu))
        log_down += np.log1p(-down * (xt - mu))
        hedged = np.logaddexp(log_up, log_down) - math.log(2)  # ½K⁺ + ½K⁻, a martingale under m
        alive &= hedged < threshold
        var_sum += (xt - mean_hat) ** 2
        seen += xt
        mean_hat = (0.5 + seen) / (t + 1)
    if not alive.any():  # cannot happen for the true mean outside an α event; keep the estimate
        centre = float(diff.mean()) if n else 0.0
        return Interval(centre, centre)
    step = 1.0 / (GRID - 1)
    low_x, high_x = float(m[alive].min()) - step, float(m[alive].max()) + step
    return Interval(max(-1.0, 2 * low_x - 1), min(1.0, 2 * high_x - 1))


def rounds(first: int, pool: int) -> list[int]:
    """The rows evaluated by the end of each round: `first`, then twice as many each round, up to `pool`
    (doubling keeps the number of looks, and so the rounds' overhead, logarithmic in the pool)."""
    sizes = []
    rows = max(1, min(first, pool))
    while rows < pool:
        sizes.append(rows)
        rows *= 2
    return [*sizes, pool]


@dataclass(frozen=True)
class MetricSequence:
    """A core metric's confidence sequence after a round."""

    metric: str
    rows: Count  # the rows seen that have the metric
    population: Count  # the pool's rows that have it
    low: Number
    high: Number
    settled: Flag


@dataclass(frozen=True)
class Round:
    rows: Count  # test rows evaluated by the end of the round
    metrics: list[MetricSequence]

    @property
    def settled(self) -> bool:
        return all(m.settled for m in self.metrics)


@dataclass(frozen=True)
class SequentialRecord:
    """How a sequential evaluation went, as the decision file records it: the stopping rule, the pool,
    each round, the rows used and why it stopped (every core metric settled, or the pool used up)."""

    rule: str
    pool: Count  # --max-test-size: the rows it could have evaluated
    rounds: list[Round]
    rows_used: Count
    stopped: str

    @classmethod
    def of(cls, pool: int, rounds: list[Round]) -> SequentialRecord:
        used = rounds[-1].rows if rounds else 0
        early = bool(rounds) and rounds[-1].settled and used < pool
        return cls(RULE, pool, rounds, used, "settled" if early else "pool used up")


def metric_sequences(
    hosted: dict[str, dict[str, float]],
    slm: dict[str, dict[str, float]],
    order: list[str],
    populations: dict[str, int],
    delta: float,
) -> list[MetricSequence]:
    """Each core metric's sequence over the rows in `order` (ids) that have it on both sides; `hosted`
    and `slm` map an id to its metrics, `populations` a metric to the pool's rows that have it."""
    out = []
    for metric, population in populations.items():
        pairs = [
            hosted[i][metric] - slm[i][metric] for i in order if metric in hosted[i] and metric in slm[i]
        ]
        if not pairs:
            continue
        sequence = confidence_sequence(np.array(pairs), population)
        out.append(
            MetricSequence(
                metric,
                len(pairs),
                population,
                sequence.low,
                sequence.high,
                sequence.settled(delta),
            )
        )
    return out
