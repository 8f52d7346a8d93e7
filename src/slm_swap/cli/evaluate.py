"""Commands that run models on examples: eval, infer, live and smoke."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from slm_swap import settings
from slm_swap.cli.options import (
    F,
    model_config,
    model_configs,
    model_options,
    option,
    split_option,
    track_option,
    workspace_options,
)
from slm_swap.cli.render import (
    print_summary,
    progress,
    stdout,
    traced,
)
from slm_swap.types import TRACKS, Track
from slm_swap.workspace import Workspace


def side_by_side_options(func: F) -> F:
    """The options of the commands that run several models side by side (live, smoke)."""
    for add in reversed(
        (
            option(settings.MODELS, "--models", "kinds"),
            option(settings.SAVE),
            option(settings.FORCE, help="With --save: recompute even if the run files exist."),
            workspace_options,
            model_options(with_kind=False),
        )
    ):
        func = add(func)
    return func


@click.command(name="eval")
@track_option
@split_option
@option(settings.OUT, help="Run file [default: <eval-dir>/{track}_{kind}[_ft]_{split}.json].")
@option(settings.FORCE, help="Recompute even if the run file exists.")
@option(settings.PRICE_IN)
@option(settings.PRICE_OUT)
@workspace_options
@model_options(batch=True)
def eval_command(
    track: Track,
    split: str,
    out: Path | None,
    force: bool,
    price_per_1k_input: float,
    price_per_1k_output: float,
    workspace: Workspace,
    model_kind: str,
    **kw: Any,
) -> None:
    """Evaluate a model on a split and write its run file (metrics and per-example results)."""
    from slm_swap.evaluate import evaluate, open_evaluation
    from slm_swap.files import check_output, read_examples
    from slm_swap.report import Pricing

    config = model_config(model_kind, kw)
    dataset = workspace.split(track, split)
    adapter = getattr(config, "adapter", None)
    out = out or workspace.run_file(track, model_kind, split, fine_tuned=adapter is not None)
    inputs = {
        "the split": dataset,
        "the predictions": getattr(config, "predictions", None),
        "the adapter": adapter,
        "the model": getattr(config, "model_path", None),
    }
    check_output(out, inputs=inputs)  # before the model loads

    def say(line: str) -> None:
        stdout.print(line, markup=False, highlight=False)

    with traced() as tracer:
        examples = read_examples(dataset)
        with (
            open_evaluation(config, track, split, dataset, examples, say) as (backend, meta),
            progress(f"{track} · {model_kind}", len(examples)) as advance,
        ):
            outcome = evaluate(
                examples,
                backend,
                meta,
                out,
                tracer,
                force=force,
                on_result=advance,
                pricing=Pricing(price_per_1k_input, price_per_1k_output),
                on_estimate=lambda estimate: say(estimate.line()),
            )
    if outcome.reused:
        stdout.print(f"{out} is already complete for these inputs (pass --force to recompute)")
    elif outcome.resumed:
        stdout.print(
            f"resumed: {outcome.resumed} examples were taken from the journal of the interrupted run"
        )
    print_summary(outcome.run, out)


@click.command()
@track_option
@split_option
@option(settings.EXAMPLE_ID, "--id", "example_id")
@option(settings.PROMPT)
@workspace_options
@model_options(kinds=settings.RUNNING_KINDS)
def infer(
    track: Track,
    split: str,
    example_id: str | None,
    prompt: str | None,
    workspace: Workspace,
    model_kind: str,
    **kw: Any,
) -> None:
    """Ask one prompt or one dataset row, print the answer (and its score for a row)."""
    from slm_swap.infer import ask

    with traced() as tracer:
        answer = ask(
            model_config(model_kind, kw),
            track,
            tracer,
            split_file=workspace.split(track, split),
            example_id=example_id,
            prompt=prompt,
        )
    completion = answer.completion
    stdout.print(f"model: {model_kind} {answer.model}")
    stdout.print("user: " + answer.messages[1]["content"])
    stdout.print(
        "answer: " + (completion.text if completion.error is None else f"(error) {completion.error}")
    )
    if answer.example is not None and answer.result is not None:
        stdout.print("gold: " + answer.example.completion)
        stdout.print(
            "outcome: "
            + (answer.result.error_category or "correct")
            + (f" ({answer.result.error_detail})" if answer.result.error_detail else "")
        )


@click.command()
@track_option
@split_option
@side_by_side_options
def live(
    track: Track, split: str, kinds: tuple[str, ...], save: bool, force: bool, workspace: Workspace, **kw: Any
) -> None:
    """Watch models progress side by side on the same examples, with running metrics and gaps."""
    _live(track, split, kinds, save, force, workspace, kw)


def _live(
    track: Track,
    split: str,
    kinds: tuple[str, ...],
    save: bool,
    force: bool,
    workspace: Workspace,
    kw: dict[str, Any],
) -> None:
    from slm_swap.files import read_examples
    from slm_swap.live import run_live

    dataset = workspace.split(track, split)
    # Each lane takes its own kind's options (the adapter and grammar are the local model's lane's).
    models = model_configs(kinds, kw)

    def out_for(kind: str) -> Path:
        return workspace.run_file(track, kind, split, fine_tuned=kind == "slm" and kw["adapter"] is not None)

    with traced() as tracer:
        examples = read_examples(dataset)
        lanes = run_live(
            track, split, dataset, examples, models, tracer, stdout, save=save, force=force, out_for=out_for
        )
    for lane in lanes:
        if save and lane.outcome is not None:
            stdout.print(f"wrote {out_for(lane.label)}")


@click.command()
@option(settings.DATASET_PATH, help="The xLAM file to resample from (default: the shipped sample).")
@side_by_side_options
def smoke(
    dataset_path: Path | None,
    kinds: tuple[str, ...],
    save: bool,
    force: bool,
    workspace: Workspace,
    **kw: Any,
) -> None:
    """The specification's smoke test: 100 fresh rows → a 50-row test split per track, then live for both
    tracks."""
    from slm_swap.data.prepare import smoke_splits
    from slm_swap.data.sources import sample_path, xlam_source
    from slm_swap.tracing import LangfuseSettings

    LangfuseSettings.from_env(os.environ)  # refuse before resampling when tracing is not configured
    result = smoke_splits(xlam_source(dataset_path or sample_path()), workspace.dataset_dir)
    for path in result.kept:
        stdout.print(f"kept the earlier split as {path}")
    for path in result.files:
        stdout.print(f"wrote {path}")
    for track in TRACKS:
        _live(track, "test", kinds, save, force, workspace, kw)
