"""`slm-swap report`: the evidence of a swap decision as one self-contained HTML page and as Markdown.

It reads only files the other commands wrote: `05_eval/verdict.json` (from `run`, when there), the
decision files `<track>_decision.json` / `<track>_ft_decision.json`, the run files they name and the
dataset splits those name. The page needs no network: styles, SVG charts and the small script that
filters the example browser are inline.
"""

from __future__ import annotations

import html
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slm_swap import settings
from slm_swap.compare import ComparedRun, Decision, MetricComparison, agreement_note, compare, read_decision
from slm_swap.errors import InputError, SlmSwapError
from slm_swap.files import atomic_writer, check_output, read_examples
from slm_swap.runs import RunResult, read_run
from slm_swap.scoring.metrics import ABSTENTION, core_metrics
from slm_swap.types import TRACKS, Example
from slm_swap.verdict import (
    VERDICTS,
    RuleVerdict,
    VerdictHeader,
    VerdictName,
    read_verdict_header,
    verdict_of,
)
from slm_swap.workspace import Workspace

CORRECT = {"structured": "exact_match", "toolcall": "ast_match"}  # "a correct call" per track
LATENCY_BINS = 40
# The example browser shows at most this many rows: the disagreements first, then a seeded sample of the
# rest; the run files hold every example. Texts are cut at CUT characters.
EXAMPLES_SHOWN = 300
CUT = 1500
LABELS = {"hosted": "hosted", "slm": "SLM", "slm_ft": "SLM + adapter"}
COLORS = {"hosted": "#4c72b0", "slm": "#dd8452", "slm_ft": "#55a868"}


STANDIN_NOTE = (
    "No hosted model was reachable, so the hosted side was played by a {}. "
    "Its numbers are not those of a hosted LLM."
)


@dataclass(frozen=True)
class Pricing:
    """Hosted price per 1,000 tokens (prompt, completion), for cost per correct call."""

    input_per_1k: float = settings.PRICE_IN.default
    output_per_1k: float = settings.PRICE_OUT.default

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
    # `run --protocol both`: per side (hosted, slm), its native run against its prompt run, paired.
    formats: dict[str, Decision] = field(default_factory=dict)
    leaning: RuleVerdict | None = None  # not settled: what the delta rule says on these rows

    @property
    def says(self) -> str:
        leaning = f" (leaning: {VERDICTS[self.leaning]})" if self.leaning else ""
        return VERDICTS[self.verdict] + leaning


# --- loading ---------------------------------------------------------------------------------------------


def load(eval_dir: Path) -> tuple[VerdictHeader | None, list[TrackData]]:
    workspace = Workspace(eval_dir=eval_dir)
    verdict_path = workspace.verdict
    verdict = read_verdict_header(verdict_path) if verdict_path.is_file() else None
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
        ruling = verdict_of(decision, ft)  # the rule `run` applied to these same decisions
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
    """Where `run --protocol both` asked each side natively too: per side, the native run compared with
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
    for metric in _core(t):
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


def _format_cells(row: dict[str, Any]) -> list[str]:
    cells = []
    for side in ("hosted", "slm"):
        if side not in row:
            cells += ["—"] * 3
            continue
        prompt, native, difference, low, high = row[side]
        cells += [
            f"{prompt:.3f}",
            f"{native:.3f}",
            f"{_signed(difference)} [{_signed(low)}, {_signed(high)}]",
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
    for metric in _core(t):
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


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f} s"


def _signed(value: float) -> str:
    return f"{value + 0.0:+.3f}"  # + 0.0: no "-0.000"


def _core(t: TrackData) -> tuple[str, ...]:
    """The track's core metrics in these runs: abstention too where the split has no-call rows."""
    return core_metrics(t.runs["hosted"].meta.track, list(t.runs["hosted"].summary.metrics))


def _correct(result: Any, track: str) -> float:
    """1 for a right answer: the correct call (`CORRECT`), or on a no-call row, no call."""
    return float(result.metrics.get(CORRECT[track], result.metrics.get(ABSTENTION, 0.0)))


def _outcome(result: Any, track: str) -> str:
    if _correct(result, track) >= 1:
        return "correct"
    return result.error_category or "partly right"


# --- SVG charts ------------------------------------------------------------------------------------------


def bar_chart(t: TrackData) -> str:
    metrics = list(_core(t))
    labels = list(t.runs)
    width, height, left, bottom = 640, 240, 40, 40
    group = (width - left - 10) / len(metrics)
    bar = min(28.0, (group - 12) / len(labels))
    parts = [
        f'<svg class="chart" role="img" aria-label="core metrics per model" viewBox="0 0 {width} {height}">'
    ]
    for tick in (0, 0.5, 1):
        y = height - bottom - tick * (height - bottom - 10)
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    for i, metric in enumerate(metrics):
        x0 = left + i * group + (group - bar * len(labels)) / 2
        for j, label in enumerate(labels):
            value = t.runs[label].summary.metrics.get(metric, 0.0)
            h = value * (height - bottom - 10)
            x = x0 + j * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{height - bottom - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
                f'fill="{COLORS[label]}"><title>{LABELS[label]} {metric}: {value:.3f}</title></rect>'
            )
        parts.append(
            f'<text x="{left + i * group + group / 2:.1f}" y="{height - bottom + 16}" text-anchor="middle">'
            f"{html.escape(metric)}</text>"
        )
    parts.append(_legend(labels, left, height - 8))
    parts.append("</svg>")
    return "".join(parts)


def failure_chart(t: TrackData) -> str:
    counts = {
        label: Counter(r.error_category or "correct" for r in run.results) for label, run in t.runs.items()
    }
    categories = sorted(
        {c for counter in counts.values() for c in counter}, key=lambda c: (c != "correct", c)
    )
    palette = [
        "#55a868",
        "#c44e52",
        "#8172b3",
        "#937860",
        "#da8bc3",
        "#8c8c8c",
        "#ccb974",
        "#64b5cd",
        "#4c72b0",
    ]
    color = {c: palette[i % len(palette)] for i, c in enumerate(categories)}
    width, row_h, left = 640, 30, 110
    height = row_h * len(counts) + 60
    parts = [f'<svg class="chart" role="img" aria-label="outcomes per model" viewBox="0 0 {width} {height}">']
    for i, (label, counter) in enumerate(counts.items()):
        total = sum(counter.values()) or 1
        y = 10 + i * row_h
        parts.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end">{LABELS[label]}</text>')
        x = float(left)
        for category in categories:
            n = counter.get(category, 0)
            w = n / total * (width - left - 10)
            if n:
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row_h - 8}" '
                    f'fill="{color[category]}">'
                    f"<title>{LABELS[label]}: {html.escape(category)} {n}/{total}</title></rect>"
                )
            x += w
    y = 20 + len(counts) * row_h
    x = float(left)
    for category in categories:
        parts.append(f'<rect x="{x:.0f}" y="{y}" width="10" height="10" fill="{color[category]}"/>')
        parts.append(f'<text x="{x + 14:.0f}" y="{y + 9}">{html.escape(category)}</text>')
        x += 24 + 7 * len(category)
        if x > width - 80:
            x, y = float(left), y + 16
    parts.append("</svg>")
    return "".join(parts)


def latency_chart(t: TrackData) -> str:
    """Each model's per-example latencies as a histogram (a row of bars per model, the same bins for
    all, the last bin holding everything beyond the 99th percentile), with the median marked: the same
    size for 8 examples or 100,000."""
    width, row_h, left, bins = 640, 46, 110, LATENCY_BINS
    height = row_h * len(t.runs) + 40
    everything = np.array([r.latency_s for run in t.runs.values() for r in run.results], dtype=float)
    top = float(np.percentile(everything, 99)) if everything.size else 1.0
    top = top or float(everything.max(initial=0.0)) or 1.0
    span = width - left - 20
    step = span / bins
    parts = [
        f'<svg class="chart" role="img" aria-label="latency per example" viewBox="0 0 {width} {height}">'
    ]
    for i, (label, run) in enumerate(t.runs.items()):
        base = 20 + i * row_h + 30  # the row's baseline
        parts.append(f'<text x="{left - 8}" y="{base - 4}" text-anchor="end">{LABELS[label]}</text>')
        latencies = np.array([r.latency_s for r in run.results], dtype=float)
        counts = np.bincount(np.minimum((latencies / top * bins).astype(int), bins - 1), minlength=bins)
        tallest = int(counts.max(initial=0)) or 1
        for b, count in enumerate(counts.tolist()):
            if count:
                h = max(1.0, count / tallest * 28)
                x = left + b * step
                parts.append(
                    f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{step - 1:.1f}" height="{h:.1f}" '
                    f'fill="{COLORS[label]}" fill-opacity="0.75"><title>{count} examples</title></rect>'
                )
        if latencies.size:
            median = float(np.median(latencies))
            x = left + min(median / top, 1.0) * span
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base - 32}" y2="{base + 2}" class="median">'
                f"<title>median {median:.2f} s</title></line>"
            )
    axis_y = height - 12
    for tick in (0, top / 2, top):
        x = left + tick / top * span
        mark = "+" if tick == top else ""
        parts.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle">{tick:.1f} s{mark}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(labels: Sequence[str], x: float, y: float) -> str:
    parts = []
    for label in labels:
        parts.append(f'<rect x="{x:.0f}" y="{y - 9}" width="10" height="10" fill="{COLORS[label]}"/>')
        parts.append(f'<text x="{x + 14:.0f}" y="{y}">{LABELS[label]}</text>')
        x += 30 + 7 * len(LABELS[label])
    return "".join(parts)


# --- HTML ------------------------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:24px;color:#222}
h1{font-size:22px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.verdict{display:inline-block;padding:4px 10px;border-radius:4px;font-weight:600;color:#fff}
.swap_now{background:#2e7d32}.swap_after_fine_tune{background:#1565c0}.keep_hosted{background:#b23c17}.not_settled{background:#6d6d6d}
.standin{background:#fff4d6;border:1px solid #e0c36c;padding:8px 12px;border-radius:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border-bottom:1px solid #e4e4e4;padding:4px 8px;
text-align:right;vertical-align:top}td:first-child,th:first-child{text-align:left}
.chart{width:100%;max-width:640px;display:block;margin:8px 0}.chart text{font-size:11px;fill:#333}
.grid{stroke:#e4e4e4}.median{stroke:#000;stroke-width:2}
.examples td{text-align:left;font-size:12px}.examples pre{white-space:pre-wrap;word-break:break-word;
margin:0;max-width:330px}.correct{color:#2e7d32;font-weight:600}.wrong{color:#b23c17;font-weight:600}
.trails{color:#b23c17}#verdicts th:last-child{text-align:left}.note{color:#666;font-size:12px}
"""

# Each filter box keeps the rows whose data-<its data-keep> is 1; checked boxes combine.
NO_CALL_ROW = " data-nocall='1'"  # a browser row whose right answer is no call
SCRIPT = """
document.querySelectorAll('input.filter').forEach(function (box) {
  box.addEventListener('change', function () {
    var table = document.getElementById(box.dataset.table);
    var boxes = document.querySelectorAll("input.filter[data-table='" + box.dataset.table + "']:checked");
    table.querySelectorAll('tbody tr').forEach(function (row) {
      row.hidden = Array.prototype.some.call(boxes, function (b) {
        return row.dataset[b.dataset.keep] !== '1';
      });
    });
    table.dataset.filtered = boxes.length ? '1' : '0';
  });
});
"""


def _labelled(tracks: list[TrackData]) -> list[tuple[str, str]]:
    """The tracks whose gold was written by the hosted model, and by which."""
    found = []
    for t in tracks:
        by = next((run.meta.gold_by for run in t.runs.values() if run.meta.gold_by), "")
        if by:
            found.append((t.track, by))
    return found


def _e(value: Any) -> str:
    return html.escape(str(value))


def _asked(verdict: VerdictHeader | None) -> str:
    """How each side was asked, when not both in slm-swap's own prompt format (`protocol.py`)."""
    if verdict is None or set(verdict.protocols.values()) == {"prompt"}:
        return ""
    sides = ", ".join(f"the {side} {protocol}" for side, protocol in verdict.protocols.items())
    return f"Asked: {sides} (native: through the API's tools or the model's own chat template)."


def render_html(verdict: VerdictHeader | None, tracks: list[TrackData], pricing: Pricing) -> str:
    out = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>slm-swap report</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>Can the small model replace the hosted one?</h1>",
    ]
    hosted = verdict.hosted if verdict else None
    if hosted and hosted.stand_in:
        out.append(f"<p class='standin'><b>Note:</b> {_e(STANDIN_NOTE.format(hosted.description))}</p>")
    elif hosted:
        out.append(f"<p>Hosted model: {_e(hosted.description)}</p>")
    if asked := _asked(verdict):
        out.append(f"<p id='protocols'>{_e(asked)}</p>")
    for track, labelled_by in _labelled(tracks):
        note = _e(agreement_note(labelled_by))
        out.append(f"<p class='standin' id='agreement-{track}'><b>{track}:</b> {note}.</p>")
    out.append("<table id='verdicts'><tr><th>track</th><th>verdict</th><th>why</th></tr>")
    for t in tracks:
        out.append(
            f"<tr><td>{t.track}</td><td><span class='verdict {t.verdict}'>{t.says}</span></td>"
            f"<td style='text-align:left'>{_e(t.reason)}</td></tr>"
        )
    out.append("</table>")
    if verdict:
        out.append(
            f"<p class='note'>Delta {verdict.delta} (the spec's rule: fine-tune when the SLM trails on "
            "any "
            f"core metric by more than delta). Langfuse session <code>{_e(verdict.session_id)}</code>; "
            f"the run took {verdict.seconds:.0f} s, finished {_e(verdict.finished_at)}.</p>"
        )
    for t in tracks:
        out.append(_track_html(t, pricing))
    out.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(out)


def _track_html(t: TrackData, pricing: Pricing) -> str:
    labels = list(t.runs)
    n = len(t.runs["hosted"].results)
    out = [
        f"<section id='track-{t.track}'><h2>{t.track}</h2>",
        f"<p><span class='verdict {t.verdict}'>{t.says}</span> {_e(t.reason)}. {n} paired examples.</p>",
    ]
    if note := sequential_note(t, pricing):
        out.append(f"<p class='note' id='sequential-{t.track}'>{_e(note)}</p>")
    out.append("<h3>Metrics</h3><table class='metrics'><tr><th>metric</th>")
    out += [f"<th>{LABELS[label]}</th>" for label in labels]
    out += [f"<th>{LABELS[label]} − hosted (95% CI)</th>" for label in t.decisions]
    out += [f"<th>{LABELS[label]}: settled?</th>" for label in t.decisions]
    out.append("</tr>")
    for row in metric_rows(t):
        cells = [f"<td>{row['metric']}</td>"] + [f"<td>{row[label]:.3f}</td>" for label in labels]
        for label in t.decisions:
            low, high = row[f"{label}_ci"]
            diff = row[label] - row["hosted"]
            cls = " class='trails'" if row[f"{label}_trails"] else ""
            cells.append(f"<td{cls}>{_signed(diff)} [{_signed(-high)}, {_signed(-low)}]</td>")
        cells += [f"<td>{_e(row[f'{label}_settling'])}</td>" for label in t.decisions]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append(
        "</table><p class='note'>Red: trails the hosted model by more than delta. Intervals are paired "
        "95% intervals over the same examples (adjusted Wald, docs/scoring.md). A metric is settled when "
        "its interval lies wholly on one side of delta; otherwise the table gives the distance from delta "
        "these rows detect with 80% power and about how many rows would settle it at the difference "
        "observed.</p>"
    )
    if t.formats:
        out.append(
            "<h3>Asked two ways: prompt and native</h3><table class='metrics' id='formats-" + t.track + "'>"
        )
        out.append("<tr>" + "".join(f"<th>{_e(h)}</th>" for h in FORMAT_HEADER) + "</tr>")
        for row in format_rows(t):
            cells = [row["metric"], *_format_cells(row)]
            out.append("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>")
        out.append(f"</table><p class='note'>{_e(FORMAT_NOTE)}</p>")
    out.append("<h3>Core metrics per model</h3>" + bar_chart(t))
    out.append("<h3>Outcomes and failure categories</h3>" + failure_chart(t))
    out.append("<h3>Latency per example</h3>" + latency_chart(t))
    out.append(
        "<p class='note'>Hosted: each request's time, waiting included (requests run concurrently). "
        "Local: its batch's time divided by the batch size. The line marks the median.</p>"
    )
    out.append(
        "<h3>Cost and latency per correct call</h3><table><tr><th>model</th><th>correct</th>"
        "<th>wall time</th><th>time per correct call</th><th>tokens in / out</th><th>cost</th>"
        "<th>cost per correct call</th></tr>"
    )
    for c in costs(t, pricing):
        at_least = "≥ " if c["unknown_tokens"] else ""  # rows of unknown counts are not in the sums
        cost = f"{at_least}${c['cost']:.4f}" if "cost" in c else "local (time only)"
        cost += " (batch)" if c.get("route") == "batch" else ""
        per = (
            (f"{at_least}${c['cost_per_correct']:.4f}" if c.get("cost_per_correct") is not None else "—")
            if "cost" in c
            else "—"
        )
        unknown = f" (unknown for {c['unknown_tokens']} rows)" if c["unknown_tokens"] else ""
        out.append(
            f"<tr><td>{LABELS[c['model']]} ({_e(c['name'])})</td><td>{c['correct']}/{c['examples']}</td>"
            f"<td>{c['seconds']:.1f} s</td><td>{_seconds(c['seconds_per_correct'])}</td>"
            f"<td>{c['tokens'][0]} / {c['tokens'][1]}{unknown}</td><td>{cost}</td><td>{per}</td></tr>"
        )
    out.append(
        f"</table><p class='note'>Hosted cost at ${pricing.input_per_1k}/1k prompt and "
        f"${pricing.output_per_1k}/1k completion tokens (set with {settings.PRICE_IN}/-output), a run "
        f"through the Batch API ({settings.HOSTED_BATCH}: marked batch) at half those prices; "
        "a correct call is one whose " + CORRECT[t.track] + " is 1 (on a no-call row, no call). Local cost "
        "is compute time.</p>"
    )
    out.append(_examples_html(t))
    out.append("</section>")
    return "\n".join(out)


def _cut(text: str) -> str:
    return text if len(text) <= CUT else text[:CUT] + f"… ({len(text) - CUT:,} more characters)"


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
    disagree = [i for i in ids if len({_outcome(b[i], t.track) == "correct" for b in by_label}) > 1]
    chosen = set(disagree[:EXAMPLES_SHOWN])
    rest = [i for i in ids if i not in chosen]
    room = EXAMPLES_SHOWN - len(chosen)
    chosen |= set(random.Random(settings.REPORT_SEED).sample(rest, min(room, len(rest))))
    return Shown([i for i in ids if i in chosen], len(disagree))


def _examples_html(t: TrackData) -> str:
    labels = list(t.runs)
    table_id = f"examples-{t.track}"
    by_label = {label: {r.id: r for r in run.results} for label, run in t.runs.items()}
    found = t.shown or shown_examples(t)
    shown, disagreeing = found.ids, found.disagreeing
    total = len(t.runs["hosted"].results)
    out = ["<h3>Examples</h3>"]
    if len(shown) < total:
        files = ", ".join(f"<code>{_e(path)}</code>" for path in _run_paths(t))
        out.append(
            f"<p class='note'>Showing {len(shown):,} of {total:,} examples: the "
            f"{min(disagreeing, len(shown)):,} where the models disagree first ({disagreeing:,} in all), "
            f"then a sample of the rest. Every example is in the run files: {files}.</p>"
        )
    no_call = {i for i, e in t.examples.items() if not e.gold}
    out += [
        f"<label><input type='checkbox' class='filter disagree' data-table='{table_id}' "
        "data-keep='disagree'> show only examples where the models disagree</label>",
        *(
            [
                f" <label><input type='checkbox' class='filter nocall' data-table='{table_id}' "
                "data-keep='nocall'> show only rows whose right answer is no call</label>"
            ]
            if no_call
            else []
        ),
        f"<table class='examples' id='{table_id}'><thead><tr><th>example</th><th>prompt</th><th>gold</th>",
    ]
    out += [f"<th>{LABELS[label]}</th>" for label in labels]
    out.append("</tr></thead><tbody>")
    for example_id in shown:
        results = [by_label[label][example_id] for label in labels]
        outcomes = [_outcome(x, t.track) for x in results]
        disagree = len({o == "correct" for o in outcomes}) > 1
        example = t.examples.get(example_id)
        prompt = (
            f"<details><summary>prompt</summary><pre>{_e(_cut(example.prompt))}</pre></details>"
            if example
            else ""
        )
        gold = f"<pre>{_e(_cut(example.completion))}</pre>" if example else ""
        cells = [f"<td>{_e(example_id)}</td><td>{prompt}</td><td>{gold}</td>"]
        for x, outcome in zip(results, outcomes, strict=True):
            cls = "correct" if outcome == "correct" else "wrong"
            cells.append(f"<td><span class='{cls}'>{_e(outcome)}</span><pre>{_e(_cut(x.output))}</pre></td>")
        out.append(
            f"<tr data-disagree='{int(disagree)}'{NO_CALL_ROW if example_id in no_call else ''}>"
            + "".join(cells)
            + "</tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def _run_paths(t: TrackData) -> list[str]:
    paths = [t.decisions["slm"].hosted.path, t.decisions["slm"].slm.path]
    if "slm_ft" in t.decisions:
        paths.append(t.decisions["slm_ft"].slm.path)
    return [str(p) for p in paths]


# --- Markdown --------------------------------------------------------------------------------------------


def _md(value: Any) -> str:
    """Text for a Markdown table cell or line: no table breaks, no HTML, no emphasis or links."""
    text = html.escape(" ".join(str(value).split()), quote=False)  # &, < and > as entities
    for character in "\\`*_[]|":
        text = text.replace(character, "\\" + character)
    return text


def render_markdown(verdict: VerdictHeader | None, tracks: list[TrackData], pricing: Pricing) -> str:
    lines = ["# slm-swap report", ""]
    hosted = verdict.hosted if verdict else None
    if hosted and hosted.stand_in:
        lines += [
            f"> **Note:** {_md(STANDIN_NOTE.format(hosted.description))}",
            "",
        ]
    elif hosted:
        lines += [f"Hosted model: {_md(hosted.description)}", ""]
    if asked := _asked(verdict):
        lines += [_md(asked), ""]
    for track, labelled_by in _labelled(tracks):
        lines += [f"> **{track}:** {_md(agreement_note(labelled_by))}.", ""]
    lines += ["| track | verdict | why |", "|---|---|---|"]
    lines += [f"| {t.track} | **{t.says}** | {_md(t.reason)} |" for t in tracks]
    for t in tracks:
        labels = list(t.runs)
        lines += ["", f"## {t.track}", "", f"{len(t.runs['hosted'].results)} paired examples.", ""]
        if note := sequential_note(t, pricing):
            lines += [_md(note), ""]
        header = [
            "metric",
            *(LABELS[label] for label in labels),
            *(f"{LABELS[lb]} − hosted (95% CI)" for lb in t.decisions),
            *(f"{LABELS[lb]}: settled?" for lb in t.decisions),
        ]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in metric_rows(t):
            cells = [row["metric"], *(f"{row[label]:.3f}" for label in labels)]
            for label in t.decisions:
                low, high = row[f"{label}_ci"]
                mark = " ⚠" if row[f"{label}_trails"] else ""
                diff = row[label] - row["hosted"]
                cells.append(f"{_signed(diff)} [{_signed(-high)}, {_signed(-low)}]{mark}")
            cells += [row[f"{label}_settling"] for label in t.decisions]
            lines.append("| " + " | ".join(cells) + " |")
        if t.formats:
            lines += ["", "Asked two ways: prompt and native.", ""]
            lines += ["| " + " | ".join(FORMAT_HEADER) + " |", "|" + "---|" * len(FORMAT_HEADER)]
            lines += [
                "| " + " | ".join([row["metric"], *_format_cells(row)]) + " |" for row in format_rows(t)
            ]
            lines += ["", FORMAT_NOTE]
        lines += [
            "",
            "| model | correct | time per correct call | cost per correct call |",
            "|---|---|---|---|",
        ]
        for c in costs(t, pricing):
            at_least = "≥ " if c["unknown_tokens"] else ""
            per = f"{at_least}${c['cost_per_correct']:.4f}" if c.get("cost_per_correct") is not None else "—"
            lines.append(
                f"| {LABELS[c['model']]} ({_md(c['name'])}) | {c['correct']}/{c['examples']} | "
                f"{_seconds(c['seconds_per_correct'])} | {per if 'cost' in c else 'local'}"
                f"{' (batch)' if c.get('route') == 'batch' else ''} |"
            )
        failures = {
            label: Counter(r.error_category for r in run.results if r.error_category)
            for label, run in t.runs.items()
        }
        lines += [
            "",
            "Failure categories: "
            + "; ".join(
                f"{LABELS[label]}: " + (", ".join(f"{_md(k)} {v}" for k, v in sorted(c.items())) or "none")
                for label, c in failures.items()
            ),
        ]
    lines.append("")
    return "\n".join(lines)


def write_report(eval_dir: Path, pricing: Pricing, out: Path | None = None) -> Written:
    """Writes `<eval_dir>/report.html` (or `out`) and the Markdown beside it, atomically."""
    verdict, tracks = load(eval_dir)
    workspace = Workspace(eval_dir=eval_dir)
    html_path = out or workspace.report_html
    md_path = html_path.with_suffix(".md")
    inputs: dict[str, Path | str | None] = {"the verdict": workspace.verdict}
    for t in tracks:
        inputs[f"the {t.track} decision"] = workspace.decision(t.track)
        inputs[f"the {t.track} decision after fine-tuning"] = workspace.decision(t.track, fine_tuned=True)
        inputs[f"the {t.track} split"] = t.runs["hosted"].meta.dataset
        runs = zip(t.runs, _run_paths(t), strict=True)
        inputs |= {f"the {t.track} {LABELS[side]} run": path for side, path in runs}
        inputs |= {f"the {t.track} {side} native run": d.hosted.path for side, d in t.formats.items()}
    check_output(html_path, inputs=inputs)
    check_output(md_path, f"{settings.OUT} (its Markdown twin)", inputs=inputs)
    with atomic_writer(html_path) as f:
        f.write(render_html(verdict, tracks, pricing))
    with atomic_writer(md_path) as f:
        f.write(render_markdown(verdict, tracks, pricing))
    return Written(html_path, md_path)
