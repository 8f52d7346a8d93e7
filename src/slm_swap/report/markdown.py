"""The report in Markdown."""

from __future__ import annotations

import html
from collections import Counter
from typing import Any

from slm_swap.compare import agreement_note
from slm_swap.report.data import (
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
    seconds_text,
    sequential_note,
    signed_text,
)
from slm_swap.verdict import (
    VerdictHeader,
)

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
    if asked := asked_line(verdict):
        lines += [_md(asked), ""]
    for track, labelled_by in labelled_tracks(tracks):
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
                cells.append(f"{signed_text(diff)} [{signed_text(-high)}, {signed_text(-low)}]{mark}")
            cells += [row[f"{label}_settling"] for label in t.decisions]
            lines.append("| " + " | ".join(cells) + " |")
        if t.formats:
            lines += ["", "Asked two ways: prompt and native.", ""]
            lines += ["| " + " | ".join(FORMAT_HEADER) + " |", "|" + "---|" * len(FORMAT_HEADER)]
            lines += ["| " + " | ".join([row["metric"], *format_cells(row)]) + " |" for row in format_rows(t)]
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
                f"{seconds_text(c['seconds_per_correct'])} | {per if 'cost' in c else 'local'}"
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
