"""The live view: several models on the same examples, side by side in the terminal.

Each model runs `evaluate()` in its own thread (the local model computes while hosted requests wait on
the network); the main thread redraws a rich table with each model's progress, running core metrics,
the gap of every other model to the first one, and the latest per-example outcomes. With `save`, each
model's run file lands where `eval` would write it; without, in a temporary folder that is removed.
"""

from __future__ import annotations

import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from slm_swap.backends.config import ModelConfig
from slm_swap.evaluate import EvalOutcome, evaluate, open_evaluation
from slm_swap.scoring.metrics import METRICS, core_metrics
from slm_swap.tracing import Tracer
from slm_swap.types import Example, ExampleResult, Track


@dataclass
class Lane:
    """One model's progress."""

    label: str
    total: int
    results: list[ExampleResult] = field(default_factory=list)
    outcome: EvalOutcome | None = None
    error: BaseException | None = None

    def mean(self, metric: str) -> float | None:
        """The metric's mean over the results so far that have it (abstention: the no-call rows)."""
        values = [r.metrics[metric] for r in self.results if metric in r.metrics]
        return sum(values) / len(values) if values else None


def _render(track: Track, lanes: list[Lane], recent: deque[str]) -> Group:
    core = core_metrics(track, [*METRICS[track], *(m for r in lanes[0].results for m in r.metrics)])
    table = Table(title=f"live · {track}", expand=False)
    table.add_column("model")
    table.add_column("done", justify="right")
    for metric in core:
        table.add_column(metric, justify="right")
    lead = lanes[0]
    for lane in lanes:
        cells = []
        for metric in core:
            value = lane.mean(metric)
            cell = "—" if value is None else f"{value:.3f}"
            base = lead.mean(metric)
            if lane is not lead and value is not None and base is not None:
                cell += f" ({value - base:+.3f})"
            cells.append(cell)
        status = "error" if lane.error else f"{len(lane.results)}/{lane.total}"
        table.add_row(lane.label, status, *cells)
    gaps = Text(f"gaps are each model minus {lead.label} on the examples each has finished", style="dim")
    return Group(table, gaps, Text("\n".join(recent) or "waiting for the first answers…"))


def run_live(
    track: Track,
    split: str,
    dataset: Path,
    examples: Sequence[Example],
    models: list[tuple[str, ModelConfig]],
    tracer: Tracer,
    console: Console,
    *,
    save: bool,
    force: bool,
    out_for: Callable[[str], Path],
    session_id: str | None = None,
) -> list[Lane]:
    """Runs every model over `examples` at once and shows them live. `models` pairs a label with the
    model's configuration (each loads in its own thread); `out_for(label)` is the run file when saving."""
    lanes = [Lane(label, len(examples)) for label, _ in models]
    recent: deque[str] = deque(maxlen=8)
    lock = threading.Lock()
    scratch = None if save else tempfile.TemporaryDirectory(prefix="slm-swap-live-")

    def work(lane: Lane, config: ModelConfig) -> None:
        def on_result(result: ExampleResult) -> None:
            mark = "✓" if result.error_category is None else f"✗ {result.error_category}"
            with lock:
                lane.results.append(result)
                recent.append(f"{lane.label:>10}  {result.id:<28} {mark}")

        try:
            out = out_for(lane.label) if scratch is None else Path(scratch.name) / f"{lane.label}.json"
            with open_evaluation(config, track, split, dataset, examples) as (backend, meta):
                lane.outcome = evaluate(
                    examples,
                    backend,
                    meta,
                    out,
                    tracer,
                    force=force,
                    tags=("mode=live",),
                    session_id=session_id,
                    on_result=on_result,
                )
        except BaseException as e:
            lane.error = e

    threads = [
        threading.Thread(target=work, args=(lane, options), daemon=True)
        for lane, (_, options) in zip(lanes, models, strict=True)
    ]
    try:
        with Live(_render(track, lanes, recent), console=console, refresh_per_second=4) as live:
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.25)
                with lock:
                    live.update(_render(track, lanes, recent))
            live.update(_render(track, lanes, recent))
    finally:
        if scratch is not None:
            scratch.cleanup()
    for lane in lanes:
        if lane.error is not None:
            raise lane.error
    return lanes
