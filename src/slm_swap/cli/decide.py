"""Commands that decide and show the evidence: compare, run and report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from slm_swap import settings
from slm_swap.cli.options import option, run_config, run_options, track_option, workspace_options
from slm_swap.cli.render import EXIT_FINE_TUNE, print_decision, print_run, stdout, traced
from slm_swap.cli.train import training_process
from slm_swap.runtime import Runtime
from slm_swap.workspace import Workspace


@click.command()
@track_option
@option(settings.HOSTED_RUN, "--azure", "--hosted", "hosted_path", required=True)
@option(settings.SLM_RUN, "--slm", "slm_path", required=True)
@option(settings.DELTA)
@option(
    settings.OUT, "--out", "decision_path", help="Decision file [default: <eval-dir>/{track}_decision.json]."
)
@workspace_options
def compare(
    track: str,
    hosted_path: Path,
    slm_path: Path,
    delta: float,
    decision_path: Path | None,
    workspace: Workspace,
) -> None:
    """Decide whether to fine-tune: prints FINE_TUNE=1 and exits 10 if the SLM trails by more than delta."""
    from slm_swap.compare import decide

    decision_path = decision_path or workspace.decision(track)
    with traced() as tracer:
        decision = decide(track, hosted_path, slm_path, delta, decision_path, tracer)
    print_decision(decision, decision_path)
    click.echo(f"FINE_TUNE={int(decision.fine_tune)}")
    if decision.fine_tune:
        sys.exit(EXIT_FINE_TUNE)


@click.command(name="run")
@run_options
@click.pass_obj
def run(runtime: Runtime, **kw: Any) -> None:
    """The whole swap decision: prepare, evaluate hosted and SLM, compare, fine-tune where the SLM trails,
    re-evaluate, and write the verdict and the report. Finished stages are kept (rerun to resume): the
    splits while the source's content, the sizes, the seed and the no-call rules are unchanged."""
    import importlib.util

    from slm_swap.pipeline import run_pipeline

    config = run_config(kw)
    if importlib.util.find_spec("trl") is not None:  # it may fine-tune, in this process
        training_process(runtime)
    with traced() as tracer:
        outcome = run_pipeline(
            config, tracer, lambda line: stdout.print(line, markup=False, highlight=False), runtime
        )
    sys.exit(print_run(outcome, config))


@click.command()
@option(settings.EVAL_DIR)
@option(settings.OUT, help="HTML file [default: <eval-dir>/report.html].")
@option(settings.PRICE_IN)
@option(settings.PRICE_OUT)
def report(eval_dir: Path, out: Path | None, price_per_1k_input: float, price_per_1k_output: float) -> None:
    """Write the evidence as one self-contained HTML page (and Markdown beside it)."""
    from slm_swap.report import Pricing, write_report

    written = write_report(eval_dir, Pricing(price_per_1k_input, price_per_1k_output), out)
    stdout.print(f"wrote {written.html} and {written.markdown}")
