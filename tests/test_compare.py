"""The fine-tune decision: the spec's delta rule, paired intervals, power figures and McNemar."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from slm_swap.compare import ComparedRun, Decision, MetricComparison, compare, mcnemar_exact
from slm_swap.errors import SlmSwapError
from slm_swap.runs import RunMeta, RunResult, write_run
from slm_swap.scoring.metrics import CORE_METRICS, METRICS
from slm_swap.types import ExampleResult, Usage
from slm_swap.verdict import Ruling, verdict_of
from tests.cli import cli


def make_run(
    track: str, values: dict[str, list[float]], *, kind: str = "replay", ids: list[str] | None = None
) -> RunResult:
    n = len(next(iter(values.values())))
    ids = ids or [f"ex-{i}" for i in range(n)]
    results = []
    for i, key in enumerate(ids):
        metrics = {m: values.get(m, values[next(iter(values))])[i] for m in METRICS[track]}
        results.append(
            ExampleResult(
                id=key,
                output="",
                calls=None,
                metrics=metrics,
                error_category=None,
                error_detail=None,
                latency_s=0.0,
                usage=Usage(),
            )
        )
    meta = RunMeta(
        track=track,
        split="test",
        dataset="d.jsonl",
        dataset_sha256="0" * 64,  # type: ignore[arg-type]
        model_kind=kind,
        model=kind,
    )
    return RunResult(meta, results)


def test_mcnemar_exact_known_values() -> None:
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 0) == pytest.approx(2 / 32)  # 2 * 0.5**5
    assert mcnemar_exact(10, 2) == pytest.approx(0.0385742, abs=1e-6)  # binomial, two-sided
    assert mcnemar_exact(3, 3) == 1.0


def test_trailing_by_more_than_delta_fine_tunes() -> None:
    hosted = make_run("toolcall", {"x": [1.0] * 40})
    slm = make_run("toolcall", {"x": [1.0] * 20 + [0.0] * 20})
    decision = compare(hosted, slm, 0.01)
    assert decision.fine_tune
    ast = next(m for m in decision.metrics if m.metric == "ast_match")
    assert ast.difference == pytest.approx(0.5)
    assert ast.hosted_only == 20 and ast.slm_only == 0
    assert ast.mcnemar_p == pytest.approx(2 * 0.5**20)
    assert 0.3 < ast.ci_low < 0.5 < ast.ci_high < 0.7
    assert ast.settled and not decision.too_few


def test_equal_runs_do_not_fine_tune_but_40_agreeing_rows_do_not_settle_a_1_point_delta() -> None:
    """Rows that all agree do not show that the models never disagree: the interval keeps a width (the
    bootstrap's collapsed to the point 0), and about 395 rows of agreement would settle delta 0.01, as
    0 disagreements in n rows bound the disagreement rate near 3/n."""
    run = make_run("structured", {"x": [1.0, 0.0] * 20})
    decision = compare(run, run, 0.01)
    assert not decision.fine_tune and decision.too_few
    for m in decision.metrics:
        assert m.difference == 0 and m.mcnemar_p == 1.0 and not m.settled
        assert m.ci_low == pytest.approx(-m.ci_high) and 0.05 < m.ci_high < 0.08
        assert m.detectable == pytest.approx(0.0943, abs=1e-3) and m.rows_needed == 395
    assert [m.metric for m in decision.metrics] == list(CORE_METRICS["structured"])


def test_small_samples_are_flagged_but_do_not_flip_the_rule() -> None:
    hosted = make_run("toolcall", {"x": [1.0, 1.0, 0.0, 1.0]})
    slm = make_run("toolcall", {"x": [1.0, 0.0, 0.0, 1.0]})
    decision = compare(hosted, slm, 0.01)
    assert decision.fine_tune  # 0.25 > 0.01, as the spec's rule says
    assert decision.too_few  # but the interval includes values at or below delta
    assert decision.to_json()["too_few_examples_to_be_sure"] is True


def test_delta_is_strictly_more_than() -> None:
    hosted = make_run("toolcall", {"x": [1.0] * 10})
    slm = make_run("toolcall", {"x": [1.0] * 9 + [0.0]})
    assert not compare(hosted, slm, 0.1).fine_tune  # trails by exactly delta
    assert compare(hosted, slm, 0.09).fine_tune


def test_decisions_are_deterministic() -> None:
    hosted = make_run("toolcall", {"x": [1.0, 0.0, 1.0, 1.0, 0.0, 1.0] * 5})
    slm = make_run("toolcall", {"x": [0.0, 0.0, 1.0, 0.0, 1.0, 1.0] * 5})
    assert compare(hosted, slm, 0.01).to_json() == compare(hosted, slm, 0.01).to_json()


def test_refuses_different_examples_or_tracks() -> None:
    hosted = make_run("toolcall", {"x": [1.0, 1.0]})
    with pytest.raises(SlmSwapError, match="different examples"):
        compare(hosted, make_run("toolcall", {"x": [1.0, 1.0]}, ids=["a", "b"]), 0.01)
    with pytest.raises(SlmSwapError, match="is a structured run"):
        compare(hosted, make_run("structured", {"x": [1.0, 1.0]}), 0.01)


def write_pair(
    tmp: Path, hosted_values: list[float], slm_values: list[float], track: str = "toolcall"
) -> tuple[Path, Path]:
    hosted, slm = tmp / "05_eval" / f"{track}_azure_test.json", tmp / "05_eval" / f"{track}_slm_test.json"
    write_run(hosted, make_run(track, {"x": hosted_values}, kind="azure"))
    write_run(slm, make_run(track, {"x": slm_values}, kind="slm"))
    return hosted, slm


def test_cli_prints_decision_and_exits_10(workspace: Path) -> None:
    hosted, slm = write_pair(workspace, [1.0] * 30, [1.0] * 10 + [0.0] * 20)
    result = cli(
        ["compare", "--track", "toolcall", "--azure", str(hosted), "--slm", str(slm), "--delta", "0.01"]
    )
    assert result.exit_code == 10, result.output
    assert result.output.strip().splitlines()[-1] == "FINE_TUNE=1"
    assert "95% CI" in result.output and "McNemar p" in result.output
    assert re.search(r"ast_match +1.000 +0.333 +\+0.667 +\[\+0.\d+, \+0.\d+\] +1.91e-06 +yes", result.output)
    decision = json.loads((workspace / "05_eval" / "toolcall_decision.json").read_text())
    assert decision["FINE_TUNE"] == 1 and decision["examples"] == 30
    assert {m["metric"] for m in decision["metrics"]} == set(CORE_METRICS["toolcall"])


def test_cli_no_fine_tune_exits_0_and_hosted_alias(workspace: Path) -> None:
    hosted, slm = write_pair(workspace, [1.0] * 30, [1.0] * 30)
    result = cli(
        ["compare", "--track", "toolcall", "--hosted", str(hosted), "--slm", str(slm), "--out", "d.json"],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "FINE_TUNE=0"
    assert json.loads(Path("d.json").read_text())["fine_tune"] is False


def test_cli_errors_exit_2(workspace: Path) -> None:
    hosted, _ = write_pair(workspace, [1.0] * 3, [1.0] * 3)
    missing = cli(["compare", "--track", "toolcall", "--azure", str(hosted), "--slm", "nope.json"])
    assert missing.exit_code == 2 and "nope.json: no such file" in missing.output
    wrong_track = cli(["compare", "--track", "structured", "--azure", str(hosted), "--slm", str(hosted)])
    assert wrong_track.exit_code == 2 and "is a toolcall run" in wrong_track.output
    Path("junk.json").write_text("{not json")
    junk = cli(["compare", "--track", "toolcall", "--azure", "junk.json", "--slm", str(hosted)])
    assert junk.exit_code == 2 and "junk.json:1: not valid JSON" in junk.output
    assert not Path("05_eval/toolcall_decision.json").exists()


def test_cli_refuses_without_tracing_configuration(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosted, slm = write_pair(workspace, [1.0] * 3, [1.0] * 3)
    monkeypatch.delenv("LANGFUSE_DISABLED")
    result = cli(["compare", "--track", "toolcall", "--azure", str(hosted), "--slm", str(slm)])
    assert result.exit_code == 2
    assert "LANGFUSE_PUBLIC_KEY" in result.output and "LANGFUSE_DISABLED=1" in result.output


def test_verdicts_follow_the_two_decisions() -> None:

    def decision(trailing: list[str]) -> Decision:
        side = ComparedRun("run.json", "replay", "m", None, False, "test", "0" * 64)
        metrics = [
            MetricComparison(m, 1.0, 0.5, 0.5, m in trailing, 0.4, 0.6, None, 0, 0, True)
            for m in ("format_valid", "ast_match")
        ]
        return Decision("toolcall", 0.01, bool(trailing), 30, side, side, metrics)

    assert verdict_of(decision([]), None).verdict == "swap_now"
    ruling = verdict_of(decision(["ast_match"]), decision([]))
    assert ruling.verdict == "swap_after_fine_tune" and "ast_match" in ruling.reason
    ruling = verdict_of(decision(["ast_match", "format_valid"]), decision(["ast_match"]))
    assert ruling.verdict == "keep_hosted" and ruling.reason.endswith("still trails on ast_match")
    ruling = verdict_of(decision(["ast_match"]), None)
    assert (ruling.verdict, ruling.reason) == (
        "keep_hosted",
        "the SLM trails by more than 0.01 on ast_match; no fine-tuned run",
    )
    assert ruling.leaning is None and ruling.rows_needed is None


def _ruling(hosted: list[float], slm: list[float], ft: list[float] | None = None) -> Ruling:
    h, s = make_run("toolcall", {"x": hosted}), make_run("toolcall", {"x": slm})
    decision = compare(h, s, 0.01)
    return verdict_of(decision, None if ft is None else compare(h, make_run("toolcall", {"x": ft}), 0.01))


def test_a_verdict_on_unsettled_metrics_is_not_settled_and_leans_to_the_rule() -> None:
    # 8 rows, the SLM right on 6 of the hosted model's 8: the rule says keep, the rows cannot settle it.
    ruling = _ruling([1.0] * 8, [1.0] * 6 + [0.0] * 2)
    assert ruling.verdict == "not_settled" and ruling.rule == ruling.leaning == "keep_hosted"
    assert ruling.rows_needed is not None and 8 < ruling.rows_needed < 200
    assert f"about {ruling.rows_needed:,} rows would settle" in ruling.reason
    assert "The rule leans to keep the hosted model" in ruling.reason
    # 8 rows that all agree: "swap now" rests on every metric being within delta, which 8 rows cannot show.
    ruling = _ruling([1.0, 0.0] * 4, [1.0, 0.0] * 4)
    assert ruling.verdict == "not_settled" and ruling.leaning == "swap_now" and ruling.rows_needed == 395
    # 40 rows where the SLM is wrong on 20: one surely trailing metric settles "keep the hosted model".
    assert _ruling([1.0] * 40, [1.0] * 20 + [0.0] * 20).verdict == "keep_hosted"
    # After fine-tuning, "swap after fine-tune" rests on the adapter's run being within delta everywhere.
    ruling = _ruling([1.0] * 40, [1.0] * 20 + [0.0] * 20, [1.0] * 40)
    assert ruling.verdict == "not_settled" and ruling.leaning == "swap_after_fine_tune"


def test_old_decisions_without_the_figures_still_give_a_verdict() -> None:
    side = ComparedRun("run.json", "replay", "m", None, False, "test", "0" * 64)
    unsettled = MetricComparison("ast_match", 1.0, 0.9, 0.1, True, -0.1, 0.3, None, 1, 0, False)
    ruling = verdict_of(Decision("toolcall", 0.01, True, 8, side, side, [unsettled]), None)
    assert ruling.verdict == "not_settled" and "rerun `slm-swap compare`" in ruling.reason
