"""`slm-swap report`: the evidence of a swap decision as one self-contained HTML page and as Markdown.

It reads only files the other commands wrote: `05_eval/verdict.json` (from `run`, when there), the
decision files `<track>_decision.json` / `<track>_ft_decision.json`, the run files they name and the
dataset splits those name. The page needs no network: styles, SVG charts and the small script that
filters the example browser are inline.
"""

from __future__ import annotations

from pathlib import Path

from slm_swap import settings
from slm_swap.files import atomic_writer, check_output
from slm_swap.report.data import LABELS, Pricing, TrackData, Written, costs, load, run_paths
from slm_swap.report.html import render_html
from slm_swap.report.markdown import render_markdown
from slm_swap.workspace import Workspace


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
        runs = zip(t.runs, run_paths(t), strict=True)
        inputs |= {f"the {t.track} {LABELS[side]} run": path for side, path in runs}
        inputs |= {f"the {t.track} {side} native run": d.hosted.path for side, d in t.formats.items()}
    check_output(html_path, inputs=inputs)
    check_output(md_path, f"{settings.OUT} (its Markdown twin)", inputs=inputs)
    with atomic_writer(html_path) as f:
        f.write(render_html(verdict, tracks, pricing))
    with atomic_writer(md_path) as f:
        f.write(render_markdown(verdict, tracks, pricing))
    return Written(html_path, md_path)


__all__ = ["Pricing", "TrackData", "Written", "costs", "load", "write_report"]
