"""The fine-tune decision: the spec's delta rule, with paired evidence beside it.

Rule (the spec's): FINE_TUNE=1 when, on any core metric of the track, the hosted run's mean exceeds the
SLM's by more than `delta`.

Evidence (beside the rule, never flipping it): for each core metric, the paired difference hosted − SLM
over the same examples with its adjusted Wald 95% interval (`power.py`: the rows plus two pseudo-rows,
Bonett and Price's interval for 0/1 metrics), and for 0/1 metrics the exact McNemar p-value. A metric is
"settled" when the interval lies wholly above `delta` (surely trails) or wholly at or below it (surely
does not); otherwise the examples are too few to be sure. Beside each metric: the distance from delta
these rows can detect and the rows that would settle it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from slm_swap import settings
from slm_swap.errors import SlmSwapError
from slm_swap.fileformats import Count, FileForm, Flag, Number
from slm_swap.power import interval, power
from slm_swap.runs import RunResult
from slm_swap.scoring.metrics import core_metrics
from slm_swap.sequential import SequentialRecord
from slm_swap.tracing import Tracer
from slm_swap.types import Track

DECISION_FORMAT = "slm-swap.decision/1"
RULE = "FINE_TUNE=1 if hosted - slm > delta on any core metric"
INTERVAL = {
    "method": "adjusted Wald over the rows and two pseudo-rows (Bonett-Price for 0/1 metrics)",
    "power": "80% at two-sided 5% (detectable, rows_needed)",
}


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    hosted: Number
    slm: Number
    difference: Number  # hosted − slm
    trails: Flag  # difference > delta: the spec's rule for this metric
    ci_low: Number
    ci_high: Number
    mcnemar_p: Number | None  # None when the metric is not 0/1 per example
    hosted_only: Count  # examples right for the hosted model only (0/1 metrics)
    slm_only: Count
    settled: Flag
    rows: Count | None = None  # the examples that have the metric (abstention: the no-call rows); None: all
    # What these rows can tell (`power.py`); None in decisions written before the figures.
    detectable: Number | None = None  # distance from delta settled with 80% power at these rows
    rows_needed: Count | None = None  # rows that settle the metric at the observed difference (None: never)


@dataclass(frozen=True)
class ComparedRun:
    """One side of a comparison: its run file (None when compared in memory) and what the run was."""

    path: str | None
    model_kind: str
    model: str
    adapter: str | None
    constrained: Flag
    split: str
    dataset_sha256: str
    protocol: str = "prompt"  # how the model was asked (`protocol.py`); decisions made before it: prompt


@dataclass(frozen=True)
class Decision(FileForm):
    """The fine-tune decision, and the decision file's format (which adds the rule, the flags and the
    method of the intervals first, as written for people and other tools; `sequential` only after a
    sequential evaluation)."""

    track: Track
    delta: Number
    fine_tune: Flag
    examples: Count
    hosted: ComparedRun
    slm: ComparedRun
    metrics: list[MetricComparison]
    gold_by: str = ""  # the hosted model that labelled the split (`slm-swap label`), if it did
    # `run --max-test-size`: the rounds, and the confidence sequences that settle each metric instead
    sequential: SequentialRecord | None = None

    file_format = DECISION_FORMAT
    written: ClassVar[dict[str, str]] = {
        "rule": "rule",
        "core_metrics": "core_metrics",
        "FINE_TUNE": "signal",
        "too_few_examples_to_be_sure": "too_few",
        "confidence": "confidence",
        "interval": "interval",
        "gold": "gold",
    }
    left_out = ("sequential",)

    @property
    def rule(self) -> str:
        return RULE

    @property
    def core_metrics(self) -> list[str]:
        return [m.metric for m in self.metrics]

    @property
    def signal(self) -> int:
        """FINE_TUNE, as `compare` prints it: 1 to fine-tune, else 0."""
        return int(self.fine_tune)

    @property
    def too_few(self) -> bool:
        """True when some core metric's interval straddles `delta`: the data cannot settle it."""
        return not all(m.settled for m in self.metrics)

    @property
    def confidence(self) -> float:
        """The confidence of each metric's interval."""
        return 0.95

    @property
    def interval(self) -> dict[str, str]:
        """How the intervals are worked out, and the power of the rows figures."""
        return INTERVAL

    @property
    def gold(self) -> str:
        """What the gold answers are: the split's own, or the hosted model's (agreement)."""
        return agreement_note(self.gold_by) if self.gold_by else "the split's own gold answers"

    def with_sequence(self, record: SequentialRecord) -> Decision:
        """The decision of a sequential evaluation: each metric's interval and `settled` are its confidence
        sequence's at the last round (valid however many rounds were looked at; a fixed-n interval
        recomputed after each round is not), with the record beside them."""
        final = {m.metric: m for m in record.rounds[-1].metrics} if record.rounds else {}
        metrics = [
            replace(m, ci_low=s.low, ci_high=s.high, settled=s.settled) if (s := final.get(m.metric)) else m
            for m in self.metrics
        ]
        return replace(self, metrics=metrics, sequential=record)


def read_decision(path: Path) -> Decision:
    """A decision file written by `compare`, checked field by field."""
    from slm_swap.files import read_as

    return read_as(
        path,
        "a decision file written by `slm-swap compare`",
        Decision,
        "rerun `slm-swap compare`",
        file_format=DECISION_FORMAT,
    )


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar test: twice the binomial(b + c, 1/2) tail at min(b, c), at most 1.

    In floating point and log space: the tail's terms C(n, k) / 2^n, from k = min(b, c) down, start from
    C(n, min(b, c)) (log-gamma) and follow by the running sum of log(k / (n - k + 1)). Terms more than
    10 sqrt(n) + 100 below min(b, c) are below e^-200 of the largest and are left out, so a million
    discordant pairs take a millisecond (the sum of exact integer coefficients took minutes from
    ten thousand on)."""
    n, m = b + c, min(b, c)
    if 2 * m >= n:  # b == c (or none): the tail holds at least half
        return 1.0
    low = max(0, m - int(10 * math.sqrt(n)) - 100)
    top = math.lgamma(n + 1) - math.lgamma(m + 1) - math.lgamma(n - m + 1)  # log C(n, m)
    k = np.arange(m, low, -1, dtype=np.float64)  # each step goes from C(n, k) to C(n, k - 1)
    log_terms = top + np.concatenate(([0.0], np.cumsum(np.log(k / (n - k + 1)))))
    log_tail = top + math.log(float(np.exp(log_terms - top).sum())) - n * math.log(2)
    return min(1.0, 2 * math.exp(log_tail))


def _describe(run: RunResult, path: Path | None) -> ComparedRun:
    meta = run.meta
    return ComparedRun(
        path=str(path) if path else None,
        model_kind=meta.model_kind,
        model=meta.model,
        adapter=meta.adapter,
        constrained=meta.constrained,
        split=meta.split,
        dataset_sha256=meta.dataset_sha256,
        protocol=meta.protocol,
    )


def compare(
    hosted: RunResult,
    slm: RunResult,
    delta: float,
    *,
    hosted_path: Path | None = None,
    slm_path: Path | None = None,
    track: str | None = None,
) -> Decision:
    """Decides whether to fine-tune the SLM, from two runs on the same examples."""
    if delta < 0:
        raise SlmSwapError(f"{settings.DELTA} must be >= 0, got {delta}")
    track = track or hosted.meta.track
    for label, run, path in ((settings.HOSTED_RUN, hosted, hosted_path), (settings.SLM_RUN, slm, slm_path)):
        if run.meta.track != track:
            raise SlmSwapError(
                f"{path or label} is a {run.meta.track} run, but {settings.TRACK} is {track}\n"
                "  fix: pass runs of the same track"
            )
    if hosted.meta.dataset_sha256 != slm.meta.dataset_sha256:
        # Same ids can hide a changed gold answer or tool: the pairs would not be the same questions.
        raise SlmSwapError(
            f"the runs were made on different contents of the split: {hosted_path or settings.HOSTED_RUN} "
            f"on {hosted.meta.dataset_sha256[:12]}, {slm_path or settings.SLM_RUN} on "
            f"{slm.meta.dataset_sha256[:12]} (dataset_sha256)\n"
            "  fix: evaluate both models on the same split file (rerun `slm-swap eval` for the older run)"
        )
    hosted_ids = [r.id for r in hosted.results]
    slm_by_id = {r.id: r for r in slm.results}
    if sorted(hosted_ids) != sorted(slm_by_id):
        only_h = sorted(set(hosted_ids) - set(slm_by_id))
        only_s = sorted(set(slm_by_id) - set(hosted_ids))
        raise SlmSwapError(
            f"the runs are on different examples ({len(only_h)} only in "
            f"{hosted_path or settings.HOSTED_RUN}, e.g. {only_h[:3]}; {len(only_s)} only in "
            f"{slm_path or settings.SLM_RUN}, e.g. {only_s[:3]})\n"
            "  fix: evaluate both models on the same split file"
        )
    if not hosted_ids:
        raise SlmSwapError("the runs hold no examples; nothing to compare")
    n = len(hosted_ids)
    comparisons = []
    present = {m for r in hosted.results for m in r.metrics}
    # Abstention too, where the split has no-call rows.
    for metric in core_metrics(hosted.meta.track, sorted(present)):
        # Paired over the rows that have the metric on both sides (all of them but for abstention).
        rows = [r for r in hosted.results if metric in r.metrics and metric in slm_by_id[r.id].metrics]
        if not rows:
            continue
        h = np.array([r.metrics[metric] for r in rows])
        s = np.array([slm_by_id[r.id].metrics[metric] for r in rows])
        diff = h - s
        ci = interval(diff)
        binary = bool(np.isin(h, (0.0, 1.0)).all() and np.isin(s, (0.0, 1.0)).all())
        b = int(((h == 1) & (s == 0)).sum()) if binary else 0
        c = int(((h == 0) & (s == 1)).sum()) if binary else 0
        difference = float(diff.mean())
        planned = power(diff, delta)
        comparisons.append(
            MetricComparison(
                metric=metric,
                hosted=float(h.mean()),
                slm=float(s.mean()),
                difference=difference,
                trails=difference > delta + 1e-12,
                ci_low=ci.low,
                ci_high=ci.high,
                mcnemar_p=mcnemar_exact(b, c) if binary else None,
                hosted_only=b,
                slm_only=c,
                settled=ci.settled(delta),
                rows=len(rows) if len(rows) != n else None,
                detectable=planned.detectable,
                rows_needed=planned.rows_needed,
            )
        )
    return Decision(
        track=hosted.meta.track,  # the track asked for, as the check above made sure
        delta=delta,
        fine_tune=any(m.trails for m in comparisons),
        examples=n,
        hosted=_describe(hosted, hosted_path),
        slm=_describe(slm, slm_path),
        metrics=comparisons,
        gold_by=hosted.meta.gold_by or slm.meta.gold_by,
    )


def agreement_note(labelled_by: str) -> str:
    """What a comparison on a split labelled by the hosted model measures."""
    return (
        f"the gold answers were written by the hosted model {labelled_by} (slm-swap label): the hosted side "
        "scores its own answers, and the SLM is measured as agreement with the hosted model, not against "
        "independent gold"
    )


def decide(
    track: str,
    hosted_path: Path,
    slm_path: Path,
    delta: float,
    decision_path: Path,
    tracer: Tracer,
    *,
    session_id: str | None = None,
    sequential: SequentialRecord | None = None,
) -> Decision:
    """`compare` on two run files, the decision written to `decision_path` and traced (as the `compare`
    command and `slm-swap run` do); after a sequential evaluation, settled by its confidence sequences."""
    from slm_swap.files import check_output, write_json
    from slm_swap.runs import read_run

    check_output(decision_path, inputs={"the hosted run": hosted_path, "the SLM run": slm_path})
    decision = compare(
        read_run(hosted_path),
        read_run(slm_path),
        delta,
        hosted_path=hosted_path,
        slm_path=slm_path,
        track=track,
    )
    if sequential is not None:
        decision = decision.with_sequence(sequential)
    write_json(decision_path, decision.to_json())
    with tracer.run(
        f"compare {track}",
        input={"hosted": str(hosted_path), "slm": str(slm_path)},
        metadata={"track": track, "delta": delta, "decision_path": str(decision_path)},
        session_id=session_id,
    ) as trace:
        trace.event("decision", decision.to_json())
        trace.score("FINE_TUNE", float(decision.fine_tune))
    return decision
