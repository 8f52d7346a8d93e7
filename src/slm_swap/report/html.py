"""The report as one self-contained HTML page: styles, charts and the example browser's script inline."""

from __future__ import annotations

import html
from typing import Any

from slm_swap import settings
from slm_swap.compare import agreement_note
from slm_swap.report.charts import bar_chart, failure_chart, latency_chart
from slm_swap.report.data import (
    CORRECT,
    CUT,
    FORMAT_HEADER,
    FORMAT_NOTE,
    LABELS,
    STANDIN_NOTE,
    Pricing,
    TrackData,
    asked_line,
    costs,
    format_cells,
    format_rows,
    labelled_tracks,
    metric_rows,
    outcome_of,
    run_paths,
    seconds_text,
    sequential_note,
    shown_examples,
    signed_text,
)
from slm_swap.verdict import (
    VerdictHeader,
)

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


def _e(value: Any) -> str:
    return html.escape(str(value))


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
    if asked := asked_line(verdict):
        out.append(f"<p id='protocols'>{_e(asked)}</p>")
    for track, labelled_by in labelled_tracks(tracks):
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
            cells.append(f"<td{cls}>{signed_text(diff)} [{signed_text(-high)}, {signed_text(-low)}]</td>")
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
            cells = [row["metric"], *format_cells(row)]
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
            f"<td>{c['seconds']:.1f} s</td><td>{seconds_text(c['seconds_per_correct'])}</td>"
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


def _examples_html(t: TrackData) -> str:
    labels = list(t.runs)
    table_id = f"examples-{t.track}"
    by_label = {label: {r.id: r for r in run.results} for label, run in t.runs.items()}
    found = t.shown or shown_examples(t)
    shown, disagreeing = found.ids, found.disagreeing
    total = len(t.runs["hosted"].results)
    out = ["<h3>Examples</h3>"]
    if len(shown) < total:
        files = ", ".join(f"<code>{_e(path)}</code>" for path in run_paths(t))
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
        outcomes = [outcome_of(x, t.track) for x in results]
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
