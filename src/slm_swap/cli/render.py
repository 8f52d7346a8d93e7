"""What commands print (consoles, the progress bar, run summaries, decisions), and the tracer a command
runs under."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from slm_swap import settings

if TYPE_CHECKING:
    from slm_swap.compare import Decision
    from slm_swap.pipeline import RunOutcome
    from slm_swap.run_config import RunConfig
    from slm_swap.runs import RunResult
    from slm_swap.tracing import Tracer
    from slm_swap.types import AnswerTally

EXIT_FINE_TUNE = 10
EXIT_NOT_SETTLED = 3  # `run`: a track's verdict is not settled by the rows evaluated

# markup off: messages carry user text (paths, JSON) whose brackets are not rich markup.
stdout = Console(highlight=False, soft_wrap=True, markup=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


@contextmanager
def progress(label: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A progress bar on stderr with rate and time left; yields the callback that advances it by one
    (`total=` sets the length instead, for a stage that learns it only as it starts)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("eta"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=stderr, transient=False) as progress:
        task = progress.add_task(label, total=total, rate="")

        shown = [0.0]  # when the rate was last worked out

        def advance(_: object = None, *, total: int | None = None) -> None:
            if total is not None:
                progress.update(task, total=total)
                return
            progress.advance(task)
            # rich's speed sums every step of the last 30 s: at thousands of steps a second (a replay),
            # working it out at each step costs more than the step; a few times a second is enough to read.
            now = time.monotonic()
            if now - shown[0] >= 0.25:
                shown[0] = now
                speed = progress.tasks[task].speed
                progress.update(task, rate=f"{speed:.2f} ex/s" if speed else "")

        yield advance


@contextmanager
def traced() -> Iterator[Tracer]:
    """A tracer for one command (refusing to start without Langfuse configuration or the bypass), flushed
    and closed at the end; undelivered traces are a warning, never a changed result."""
    from slm_swap.tracing import make_tracer

    tracer = make_tracer(os.environ)
    try:
        yield tracer
    finally:
        report = tracer.flush()
        tracer.close()
        if not report.delivered:
            stderr.print(f"warning: {report.message}")


def print_answer_warnings(tally: AnswerTally) -> None:
    """One warning per run for what its answers came with that the model should not have sent."""
    from slm_swap.fileformats import MAX_TOKENS

    if tally.unknown_usage:
        stderr.print(
            f"warning: token counts are unknown for {tally.unknown_usage} of {tally.rows} rows (missing, or "
            f"not whole numbers from 0 to {MAX_TOKENS}); they are recorded as unknown and left out of "
            "token sums"
        )
    if tally.replaced_surrogates:
        n, rows = tally.replaced_surrogates, tally.rows_replaced
        stderr.print(
            f"warning: {n} lone UTF-16 surrogate{'s' if n > 1 else ''} in the model's text ({rows} "
            f"row{'s' if rows > 1 else ''}) {'were' if n > 1 else 'was'} replaced by U+FFFD"
        )


def print_summary(run: RunResult, path: Path) -> None:
    from slm_swap.scoring.metrics import core_metrics, error_counts
    from slm_swap.types import AnswerTally

    summary = run.summary
    stdout.print(f"{run.meta.track} · {run.meta.model_kind} {run.meta.model} · {len(run.results)} examples")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in summary.metrics.items():
        core = " (core)" if name in core_metrics(run.meta.track, list(summary.metrics)) else ""
        table.add_row(name + core, f"{value:.3f}")
    stdout.print(table)
    errors = error_counts(run.results)
    if errors:
        stdout.print("failures: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    print_answer_warnings(AnswerTally.of(run.results))
    stdout.print(f"wrote {path}")


def print_decision(decision: Decision, path: Path) -> None:
    stdout.print(
        f"{decision.track}: hosted vs SLM on {decision.examples} paired examples (delta {decision.delta})"
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    for column in ("metric", "hosted", "slm", "diff", "95% CI", "McNemar p", "trails"):
        table.add_column(column, justify="left" if column == "metric" else "right", no_wrap=True)
    for m in decision.metrics:
        table.add_row(
            m.metric,
            f"{m.hosted:.3f}",
            f"{m.slm:.3f}",
            f"{m.difference:+.3f}",
            f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}]" + ("" if m.settled else "*"),
            "n/a" if m.mcnemar_p is None else f"{m.mcnemar_p:.3g}",
            "yes" if m.trails else "no",
        )
    stdout.print(table)
    if decision.gold_by:
        from slm_swap.compare import agreement_note

        stdout.print(f"note: {agreement_note(decision.gold_by)}")
    if decision.too_few:
        unsettled = ", ".join(m.metric for m in decision.metrics if not m.settled)
        stdout.print(
            f"* too few examples to be sure: the 95% interval of {unsettled} straddles delta; "
            "FINE_TUNE follows the delta rule regardless"
        )
        for m in decision.metrics:
            if not m.settled and m.detectable is not None:
                more = (
                    f"about {m.rows_needed:,} rows would settle it at the difference observed"
                    if m.rows_needed is not None
                    else "no number of rows a team would run settles it at the difference observed"
                )
                stdout.print(
                    f"  {m.metric}: {decision.examples} rows detect a difference {m.detectable:.2f} from "
                    f"delta (80% power); {more}",
                    markup=False,
                )
    stdout.print(f"wrote {path}")


def print_run(outcome: RunOutcome, config: RunConfig) -> int:
    """Prints what `run` decided, per track and why, and returns its exit status: EXIT_NOT_SETTLED when a
    track's verdict is not settled by the rows evaluated (with how many rows would settle it), else 0."""
    verdict, report = outcome.verdict, outcome.report
    stdout.print(f"\nhosted: {verdict.hosted.description}", markup=False)
    if set(verdict.protocols.values()) != {"prompt"}:
        asked = ", ".join(f"{side} {protocol}" for side, protocol in verdict.protocols.items())
        stdout.print(f"asked: {asked} (docs/protocol.md)", markup=False)
    if any("slm_native" in t.runs for t in verdict.tracks.values()):
        stdout.print(
            "asked both ways: decided under prompt; the report compares prompt and native", markup=False
        )
    for track, t in verdict.tracks.items():
        stdout.print(Text(f"{track}: {t.says}", style="bold"), f"— {t.reason}")
    stdout.print(f"verdict: {config.workspace.verdict}; report: {report.html} and {report.markdown}")
    stdout.print(f"took {verdict.seconds:.0f} s; Langfuse session {verdict.session_id}", markup=False)
    open_ = {track: t for track, t in verdict.tracks.items() if t.verdict == "not_settled"}
    if not open_:
        return 0
    needs = [t.rows_needed for t in open_.values()]
    more = (
        f"rerun with {settings.TEST_SIZE} {max(n for n in needs if n is not None):,} (about that many "
        "rows would settle it)"
        if all(n is not None for n in needs)
        else "no number of rows a team would run settles it at the differences observed"
    )
    stdout.print(
        f"not settled: {', '.join(open_)}: the test rows cannot give a verdict at delta {config.run.delta}; "
        f"{more} (exit {EXIT_NOT_SETTLED})",
        markup=False,
    )
    return EXIT_NOT_SETTLED
