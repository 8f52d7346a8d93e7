"""The confidence sequence behind `run --max-test-size` (`sequential.py`), checked by simulation: over
random orderings of fixed pools, how often it ever misses the pool's mean at any round."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from slm_swap.sequential import confidence_sequence, rounds
from slm_swap.types import Example


def pool(n: int, hosted_only: float, slm_only: float) -> np.ndarray:
    """Paired 0/1 differences: +1 where only the hosted model is right, −1 where only the SLM is."""
    k12, k21 = round(n * hosted_only), round(n * slm_only)
    return np.array([1.0] * k12 + [-1.0] * k21 + [0.0] * (n - k12 - k21))


def test_the_schedule_doubles_up_to_the_pool() -> None:
    assert rounds(8, 100) == [8, 16, 32, 64, 100]
    assert rounds(8, 8) == [8] and rounds(8, 20) == [8, 16, 20] and rounds(50, 20) == [20]


@pytest.mark.parametrize(("hosted_only", "slm_only"), [(0.15, 0.10), (0.4, 0.4), (0.3, 0.0)])
def test_the_sequence_misses_the_pool_mean_at_any_round_at_most_alpha_of_the_time(
    hosted_only: float, slm_only: float
) -> None:
    """150 orderings of a 120-row pool, looked at after every round: the share of orderings in which the
    sequence ever excludes the pool's mean stays within α = 5% up to simulation error (≤ 9%: 5% plus 2.5
    standard errors of 150 orderings)."""
    rng = np.random.default_rng(11)
    values = pool(120, hosted_only, slm_only)
    truth = float(values.mean())
    missed = 0
    for _ in range(150):
        order = rng.permutation(values)
        missed += any(
            not (s.low <= truth <= s.high)
            for s in (confidence_sequence(order[:k], values.size) for k in rounds(8, values.size))
        )
    assert missed / 150 <= 0.09


def test_the_sequence_shrinks_as_rows_come_and_is_the_pool_mean_at_the_end() -> None:
    rng = np.random.default_rng(5)
    values = rng.permutation(pool(200, 0.3, 0.1))
    widths = [confidence_sequence(values[:k], 200) for k in (16, 64, 200)]
    assert widths[0].high - widths[0].low > widths[1].high - widths[1].low > widths[2].high - widths[2].low
    assert widths[2].low <= values.mean() <= widths[2].high and widths[2].high - widths[2].low < 0.02


def test_rows_that_all_disagree_settle_a_1_point_delta_early_and_agreeing_rows_do_not() -> None:
    trails = confidence_sequence(np.ones(16), 400)
    assert trails.settled(0.01) and trails.low > 0.3
    agree = confidence_sequence(np.zeros(64), 400)
    assert not agree.settled(0.01) and agree.low < 0 < 0.01 < agree.high


def test_an_interrupted_round_keeps_its_results_for_the_rerun(prepared: list[Example]) -> None:
    """Round 1 wrote a run file of 4 rows; round 2 (all rows) was interrupted after answering some more.
    The rerun finds round 1 finished, keeps the journal (it holds rows the run file has not), and round 2
    asks only the rows still unanswered."""
    from slm_swap.backends.config import ReplayConfig
    from slm_swap.backends.replay import ReplayBackend
    from slm_swap.evaluate import evaluate, run_meta
    from slm_swap.protocol import Request
    from slm_swap.runs import journal_path
    from slm_swap.tracing.null import NullTracer
    from slm_swap.types import Completion

    Path("p.jsonl").write_text(
        "".join(json.dumps({"id": e.id, "output": e.completion}) + "\n" for e in prepared)
    )
    split, out = Path("02_dataset/toolcall/test.jsonl"), Path("05_eval/run.json")

    class Counting(ReplayBackend):  # a replay that counts what it is asked, and can be cut off
        asked: ClassVar[list[str]] = []
        stop_after: ClassVar[int | None] = None

        def generate(self, requests: Sequence[Request]) -> list[Completion]:
            if self.stop_after is not None and len(self.asked) >= self.stop_after:
                raise KeyboardInterrupt
            self.asked.extend(r.id for r in requests)
            return super().generate(requests)

    backend = Counting(ReplayConfig(Path("p.jsonl")))
    meta = run_meta("toolcall", "test", split, backend, examples=prepared)
    evaluate(prepared[:4], backend, meta, out, NullTracer())
    Counting.stop_after = 6  # round 2 answers two more rows, then is interrupted
    with pytest.raises(KeyboardInterrupt):
        evaluate(prepared, backend, meta, out, NullTracer())
    assert journal_path(out).is_file()

    Counting.stop_after, Counting.asked = None, []
    assert evaluate(prepared[:4], backend, meta, out, NullTracer()).reused  # round 1, found again
    assert journal_path(out).is_file()  # not removed: it holds round 2's answers
    outcome = evaluate(prepared, backend, meta, out, NullTracer())  # round 2 again
    assert [r.id for r in outcome.run.results] == [e.id for e in prepared]
    assert Counting.asked == [e.id for e in prepared[6:]]  # only the rows no round had answered
    assert not journal_path(out).exists()
