"""The report's charts, as inline SVG (no plotting library, no network)."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence

import numpy as np

from slm_swap.report.data import LABELS, TrackData, core_of

COLORS = {"hosted": "#4c72b0", "slm": "#dd8452", "slm_ft": "#55a868"}

LATENCY_BINS = 40

# --- SVG charts ------------------------------------------------------------------------------------------


def bar_chart(t: TrackData) -> str:
    metrics = list(core_of(t))
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
