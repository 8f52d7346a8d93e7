"""The report's data: what it reads (`load`) and the numbers its pages show."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.compare import ComparedRun, Decision, MetricComparison, compare, read_decision
from slm_swap.errors import InputError, SlmSwapError
from slm_swap.files import read_examples
from slm_swap.runs import RunResult, read_run
from slm_swap.scoring.metrics import ABSTENTION, core_metrics
from slm_swap.types import TRACKS, Example
from slm_swap.verdict import (
    VERDICTS,
    RuleVerdict,
    Verdict,
    VerdictHeader,
    VerdictName,
    read_verdict,
    verdict_of,
)
from slm_swap.workspace import Workspace

CORRECT = {"structured": "exact_match", "toolcall": "ast_match"}  # "a correct call" per track
# The example browser shows at most this many rows: the disagreements first, then a seeded sample of the
# rest; the run files hold every example. Texts are cut at CUT characters.
EXAMPLES_SHOWN = 300
CUT = 1500
LABELS = {"hosted": "hosted", "slm": "SLM", "slm_ft": "SLM + adapter"}


STANDIN_NOTE = (
    "No hosted model was reachable, so the hosted side was played by a {}. "
    "Its numbers are not those of a hosted LLM."
)


@dataclass(frozen=True)
class Pricing:
    """Hosted price per 1,000 tokens (prompt, completion), for cost per correct call."""

    input_per_1k: float = settings.field(settings.PRICE_IN)
    output_per_1k: float = settings.field(settings.PRICE_OUT)

    def batched(self) -> Pricing:
        """The price through the provider's Batch API (`--hosted-batch`): OpenAI's and Azure's global
        batch both charge half the price of one request at a time."""
        return Pricing(self.input_per_1k * BATCH_SHARE, self.output_per_1k * BATCH_SHARE)


BATCH_SHARE = 0.5  # what a request costs through the Batch API, as a share of its price one at a time


@dataclass(frozen=True)
class Written:
    html: Path
    markdown: Path


@dataclass
class TrackData:
    track: str
    verdict: VerdictName
    reason: str
    runs: dict[str, RunResult]  # hosted, slm, slm_ft (when fine-tuned)
    decisions: dict[str, Decision]  # "slm" and "slm_ft": each vs hosted
    examples: dict[str, Example]  # those the example browser shows (`shown`)
    shown: Shown | None = None
    # `run --both-protocols`: per side (hosted, slm), its native run against its prompt run, paired.
    formats: dict[str, Decision] = field(default_factory=dict)
    leaning: RuleVerdict | None = None  # not settled: what the delta rule says on these rows

    @property
    def says(self) -> str:
        leaning = f" (leaning: {VERDICTS[self.leaning]})" if self.leaning else ""
        return VERDICTS[self.verdict] + leaning


# --- loading ---------------------------------------------------------------------------------------------


def load(eval_dir: Path) -> tuple[VerdictHeader | None, list[TrackData]]:
    """The verdict of `run` (None without one) and, per track that has a decision file, its runs and
    decisions. Each track's verdict is the verdict file's; a track it does not name (a decision made by
    `compare` alone), or a verdict file of format /1, gets the verdict worked out from the decisions by
    the rule `run` applies."""
    workspace = Workspace(eval_dir=eval_dir)
    verdict_path = workspace.verdict
    verdict = read_verdict(verdict_path) if verdict_path.is_file() else None
    given = verdict.tracks if isinstance(verdict, Verdict) else {}
    tracks = []
    for track in TRACKS:
        path = workspace.decision(track)
        if not path.is_file():
            continue
        decision = read_decision(path)
        ft_path = workspace.decision(track, fine_tuned=True)
        ft = read_decision(ft_path) if ft_path.is_file() and decision.fine_tune else None
        runs = {
            "hosted": read_run(_run_path(decision.hosted, path)),
            "slm": read_run(_run_path(decision.slm, path)),
        }
        decisions = {"slm": decision}
        if ft is not None:
            runs["slm_ft"] = read_run(_run_path(ft.slm, ft_path))
            decisions["slm_ft"] = ft
        ruling = given.get(track) or verdict_of(decision, ft)
        data = TrackData(track, ruling.verdict, ruling.reason, runs, decisions, {}, leaning=ruling.leaning)
        data.formats = _formats(workspace, runs)
        data.shown = shown_examples(data)
        dataset = Path(runs["hosted"].meta.dataset)
        if dataset.is_file():  # the prompts and gold answers of the examples the page shows
            data.examples = {e.id: e for e in read_examples(dataset, set(data.shown.ids))}
        tracks.append(data)
    if not tracks:
        raise SlmSwapError(
            f"nothing to report in {eval_dir}: no <track>_decision.json there\n"
            "  fix: run `slm-swap run`, or `slm-swap compare` for a track first"
        )
    return verdict, tracks


def _formats(workspace: Workspace, runs: dict[str, RunResult]) -> dict[str, Decision]:
    """Where `run --both-protocols` asked each side natively too: per side, the native run compared with
    the prompt run on the same examples (difference: native − prompt, paired)."""
    native = {
        side: workspace.run_file(run.meta.track, run.meta.model_kind, run.meta.split, native=True)
        for side, run in runs.items()
        if side in ("hosted", "slm")
    }
    if not all(path.is_file() for path in native.values()):
        return {}
    return {
        side: compare(read_run(path), runs[side], 0.0, hosted_path=path, track=runs[side].meta.track)
        for side, path in native.items()
    }


def format_rows(t: TrackData) -> list[dict[str, Any]]:
    """Per core metric, each side asked both ways and the format effect (native − prompt, 95% CI)."""
    rows = []
    for metric in core_of(t):
        row: dict[str, Any] = {"metric": metric}
        for side, decision in t.formats.items():
            m = next((m for m in decision.metrics if m.metric == metric), None)
            if m is not None:
                row[side] = (m.slm, m.hosted, m.difference, m.ci_low, m.ci_high)
        rows.append(row)
    return rows


FORMAT_NOTE = (
    "Each side asked in slm-swap's own prompt format and natively (the API's tools, the model's own chat "
    "template); the verdict is decided under prompt. Format effect: native − prompt, paired 95% "
    "interval over the same examples."
)


def format_cells(row: dict[str, Any]) -> list[str]:
    cells = []
    for side in ("hosted", "slm"):
        if side not in row:
            cells += ["—"] * 3
            continue
        prompt, native, difference, low, high = row[side]
        cells += [
            f"{prompt:.3f}",
            f"{native:.3f}",
            f"{signed_text(difference)} [{signed_text(low)}, {signed_text(high)}]",
        ]
    return cells


FORMAT_HEADER = (
    "metric",
    "hosted prompt",
    "hosted native",
    "format effect (95% CI)",
    "SLM prompt",
    "SLM native",
    "format effect (95% CI)",
)


def _run_path(side: ComparedRun, decision_path: Path) -> Path:
    """The run file a decision names for one side (a decision made in memory names none)."""
    if side.path is None:
        raise InputError(decision_path, None, "names no run file", "rerun `slm-swap compare` on run files")
    return Path(side.path)


# --- numbers ---------------------------------------------------------------------------------------------


def metric_rows(t: TrackData) -> list[dict[str, Any]]:
    """Per core metric: each model's mean and, for the SLMs, the paired difference and CI vs hosted."""
    rows = []
    for metric in core_of(t):
        row: dict[str, Any] = {"metric": metric}
        for label, run in t.runs.items():
            row[label] = run.summary.metrics.get(metric, 0.0)
        for label, decision in t.decisions.items():
            m = next(m for m in decision.metrics if m.metric == metric)
            row[f"{label}_ci"] = (m.ci_low, m.ci_high)
            row[f"{label}_trails"] = m.trails
            row[f"{label}_settling"] = settling(m)
        rows.append(row)
    return rows


def sequential_note(t: TrackData, pricing: Pricing) -> str | None:
    """For a sequential evaluation (`run --max-test-size`): the rounds, why it stopped, and the rows,
    hosted tokens and hosted cost it saved against evaluating the whole pool (at the hosted run's mean
    tokens per row)."""
    record = t.decisions["slm"].sequential
    if record is None:
        return None
    hosted = t.runs["hosted"]
    known = [r.usage for r in hosted.results if r.usage.known]
    saved = record.pool - record.rows_used
    said = (
        f"Evaluated in {len(record.rounds)} rounds ({', '.join(str(r.rows) for r in record.rounds)} rows), "
        f"stopped at {record.rows_used} of a pool of {record.pool} rows ({record.stopped}): "
        f"{saved:,} rows ({saved / record.pool:.0%}) not evaluated"
    )
    if known and hosted.meta.model_kind in ("azure", "openai"):
        prompt = sum(u.prompt_tokens for u in known) / len(known) * saved
        completion = sum(u.completion_tokens for u in known) / len(known) * saved
        price = pricing.batched() if hosted.meta.settings.get("route") == "batch" else pricing
        usd = prompt / 1000 * price.input_per_1k + completion / 1000 * price.output_per_1k
        said += f", about {prompt + completion:,.0f} hosted tokens and ${usd:.4f} saved"
    return said + ". Each metric's interval is its confidence sequence, valid at every round at once."


def settling(m: MetricComparison) -> str:
    """Whether the rows settle a metric against delta, and if not what they can detect and how many
    rows would (`power.py`)."""
    if m.settled:
        return "settled"
    if m.detectable is None:  # a decision written before the figures
        return "not settled"
    more = f"≈{m.rows_needed:,} rows would" if m.rows_needed is not None else "no number of rows would"
    return f"not settled: detects ±{m.detectable:.2f}; {more}"


def costs(t: TrackData, pricing: Pricing) -> list[dict[str, Any]]:
    """Per model: correct calls, the run's wall time and time per correct call, and cost (hosted: price;
    local: time). Rows whose token counts are unknown are left out of the sums and counted
    (`unknown_tokens`): the cost is then a lower bound."""
    out = []
    for label, run in t.runs.items():
        correct = sum(_correct(r, t.track) for r in run.results)
        seconds = _wall_seconds(run)
        prompt = sum(r.usage.prompt_tokens for r in run.results)
        completion = sum(r.usage.completion_tokens for r in run.results)
        row: dict[str, Any] = {
            "model": label,
            "name": run.meta.model,
            "correct": int(correct),
            "examples": len(run.results),
            "seconds": seconds,
            "seconds_per_correct": seconds / correct if correct else None,
            "tokens": (prompt, completion),
            "unknown_tokens": sum(not r.usage.known for r in run.results),
        }
        if label == "hosted":
            batch = run.meta.settings.get("route") == "batch"  # `backends/batch.py`
            price = pricing.batched() if batch else pricing
            cost = prompt / 1000 * price.input_per_1k + completion / 1000 * price.output_per_1k
            row["route"] = "batch" if batch else "live"
            row["cost"] = cost
            row["cost_per_correct"] = cost / correct if correct else None
        out.append(row)
    return out


def _wall_seconds(run: RunResult) -> float:
    """The run's wall time from its start and end stamps (requests in flight together overlap, so their
    latencies do not add up to it); the sum of latencies when the stamps are missing."""
    from datetime import datetime

    try:
        start = datetime.fromisoformat(run.meta.started_at)
        end = datetime.fromisoformat(run.meta.finished_at)
        return max((end - start).total_seconds(), 0.0)
    except ValueError:
        return sum(r.latency_s for r in run.results)


def seconds_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def signed_text(value: float) -> str:
    return f"{value + 0.0:+.3f}"  # + 0.0: no "-0.000"


def core_of(t: TrackData) -> tuple[str, ...]:
    """The track's core metrics in these runs: abstention too where the split has no-call rows."""
    return core_metrics(t.runs["hosted"].meta.track, list(t.runs["hosted"].summary.metrics))


def _correct(result: Any, track: str) -> float:
    """1 for a right answer: the correct call (`CORRECT`), or on a no-call row, no call."""
    return float(result.metrics.get(CORRECT[track], result.metrics.get(ABSTENTION, 0.0)))


def outcome_of(result: Any, track: str) -> str:
    if _correct(result, track) >= 1:
        return "correct"
    return result.error_category or "partly right"


@dataclass(frozen=True)
class Shown:
    """The examples the browser shows, in run order, and how many disagree in all."""

    ids: list[str]
    disagreeing: int


def shown_examples(t: TrackData) -> Shown:
    """At most EXAMPLES_SHOWN examples: every disagreement first, then a seeded sample of the rest."""
    runs = list(t.runs.values())
    by_label = [{r.id: r for r in run.results} for run in runs]
    ids = [r.id for r in runs[0].results]
    disagree = [i for i in ids if len({outcome_of(b[i], t.track) == "correct" for b in by_label}) > 1]
    chosen = set(disagree[:EXAMPLES_SHOWN])
    rest = [i for i in ids if i not in chosen]
    room = EXAMPLES_SHOWN - len(chosen)
    chosen |= set(random.Random(settings.REPORT_SEED).sample(rest, min(room, len(rest))))
    return Shown([i for i in ids if i in chosen], len(disagree))


def run_paths(t: TrackData) -> list[str]:
    paths = [t.decisions["slm"].hosted.path, t.decisions["slm"].slm.path]
    if "slm_ft" in t.decisions:
        paths.append(t.decisions["slm_ft"].slm.path)
    return [str(p) for p in paths]


def labelled_tracks(tracks: list[TrackData]) -> list[tuple[str, str]]:
    """The tracks whose gold was written by the hosted model, and by which."""
    found = []
    for t in tracks:
        by = next((run.meta.gold_by for run in t.runs.values() if run.meta.gold_by), "")
        if by:
            found.append((t.track, by))
    return found


def asked_line(verdict: VerdictHeader | None) -> str:
    """How each side was asked, when not both in slm-swap's own prompt format (`protocol.py`)."""
    if verdict is None or set(verdict.protocols.values()) == {"prompt"}:
        return ""
    sides = ", ".join(f"the {side} {protocol}" for side, protocol in verdict.protocols.items())
    return f"Asked: {sides} (native: through the API's tools or the model's own chat template)."
