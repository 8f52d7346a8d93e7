"""Commands that decide and show the evidence: compare, run and report."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from slm_swap import settings
from slm_swap.cli.options import (
    config_from,
    model_options,
    model_options_of,
    option,
    options_of,
    track_option,
    workspace_options,
)
from slm_swap.cli.render import (
    EXIT_FINE_TUNE,
    EXIT_NOT_SETTLED,
    print_decision,
    stdout,
    traced,
)
from slm_swap.cli.train import training_process
from slm_swap.data.prepare import NoCallRules, SplitSizes
from slm_swap.errors import ConfigError
from slm_swap.settings import AzureSettings
from slm_swap.train.config import Hyperparameters
from slm_swap.types import TRACKS, Track
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
@click.option(
    "--tracks",
    multiple=True,
    type=click.Choice(TRACKS),
    default=TRACKS,
    show_default=True,
    help="Tracks to decide (repeat).",
)
@option(settings.HOSTED_KIND)
@option(settings.SOURCE)
@option(
    settings.DATASET_PATH,
    help=settings.DATASET_PATH.help + " The splits are kept while this content, the sizes, the seed and "
    "the no-call rules are unchanged, and redone when they change.",
)
@option(settings.BFCL_CATEGORY)
@option(settings.LANGFUSE_DATASET)
@option(settings.SEED)
@workspace_options
@options_of(SplitSizes)
@option(settings.MAX_TEST_SIZE)
@options_of(NoCallRules)
@option(settings.DELTA)
@options_of(Hyperparameters)
@option(settings.STANDIN_PORT)
@option(settings.PRICE_IN)
@option(settings.PRICE_OUT)
@option(settings.FORCE, help="Redo every stage even where its outputs are there.")
@model_options(with_kind=False, batch=True)
def run(
    tracks: tuple[Track, ...],
    hosted_kind: str,
    source: str,
    dataset_path: Path | None,
    bfcl_category: str,
    langfuse_dataset: str | None,
    seed: int,
    workspace: Workspace,
    delta: float,
    max_test_size: int | None,
    standin_port: int,
    price_per_1k_input: float,
    price_per_1k_output: float,
    force: bool,
    **kw: Any,
) -> None:
    """The whole swap decision: prepare, evaluate hosted and SLM, compare, fine-tune where the SLM trails,
    re-evaluate, and write the verdict and the report. Finished stages are kept (rerun to resume)."""
    import importlib.util

    from slm_swap.pipeline import PipelineOptions, choose_hosted, run_pipeline
    from slm_swap.report import Pricing
    from slm_swap.tracing import LangfuseConfig

    if importlib.util.find_spec("trl") is not None:  # it may fine-tune, in this process
        training_process()
    given = model_options_of("slm", kw)
    slm = replace(given, hosted_batch=False)  # the Batch API route is the hosted model's
    # auto takes Azure when its variables are all set: read here, at the edge, like every setting.
    azure = AzureSettings.from_env(os.environ) if hosted_kind == "azure" else AzureSettings.if_set(os.environ)
    hosted = choose_hosted(hosted_kind, replace(given, azure=azure, constrained=False))
    if hosted is None and given.hosted_batch:
        raise ConfigError(
            f"{settings.HOSTED_BATCH}: the hosted side would be the local stand-in, which has no Batch API\n"
            f"  fix: set AZURE_* or {settings.BASE_URL} (or choose {settings.HOSTED_KIND} azure or openai), "
            f"or drop {settings.HOSTED_BATCH}"
        )
    options = PipelineOptions(
        tracks=tracks,
        hosted=hosted,
        slm=slm,
        source=dataset_path,
        source_kind=source,
        bfcl_category=bfcl_category,
        langfuse_dataset=langfuse_dataset,
        seed=seed,
        workspace=workspace,
        sizes=config_from(SplitSizes, kw),
        max_test=max_test_size,
        no_call=config_from(NoCallRules, kw),
        delta=delta,
        train=config_from(Hyperparameters, kw),
        force=force,
        standin_port=standin_port,
        pricing=Pricing(price_per_1k_input, price_per_1k_output),
        environment=os.environ,
        langfuse=LangfuseConfig.from_env(os.environ),
    )
    with traced() as tracer:
        outcome = run_pipeline(
            options, tracer, lambda line: stdout.print(line, markup=False, highlight=False)
        )
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
    stdout.print(f"verdict: {workspace.verdict}; report: {report.html} and {report.markdown}")
    stdout.print(f"took {verdict.seconds:.0f} s; Langfuse session {verdict.session_id}", markup=False)
    open_ = {track: t for track, t in verdict.tracks.items() if t.verdict == "not_settled"}
    if open_:
        needs = [t.rows_needed for t in open_.values()]
        more = (
            f"rerun with {settings.TEST_SIZE} {max(n for n in needs if n is not None):,} (about that many "
            "rows would settle it)"
            if all(n is not None for n in needs)
            else "no number of rows a team would run settles it at the differences observed"
        )
        stdout.print(
            f"not settled: {', '.join(open_)}: the test rows cannot give a verdict at delta {delta}; {more} "
            f"(exit {EXIT_NOT_SETTLED})",
            markup=False,
        )
        sys.exit(EXIT_NOT_SETTLED)


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
