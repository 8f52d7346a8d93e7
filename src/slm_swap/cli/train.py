"""Commands that fine-tune: train (one adapter) and launch (both tracks on several GPUs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from slm_swap import settings
from slm_swap.cli.options import (
    config_from,
    gpus_to_use,
    option,
    options_of,
    track_option,
    workspace_options,
)
from slm_swap.cli.render import (
    progress,
    stderr,
    stdout,
    traced,
)
from slm_swap.errors import ConfigError, SlmSwapError
from slm_swap.runtime import Runtime
from slm_swap.train.config import Hyperparameters, TrainConfig
from slm_swap.workspace import Workspace


@click.command()
@track_option
@click.option(
    "--train",
    "train_path",
    type=click.Path(path_type=Path),
    help="Train split [default: <dataset-dir>/{track}/train.jsonl].",
)
@click.option(
    "--val",
    "val_path",
    type=click.Path(path_type=Path),
    help="Validation split [default: <dataset-dir>/{track}/val.jsonl].",
)
@option(settings.OUT, help="Adapter folder [default: <ft-dir>/adapter_{track}].")
@workspace_options
@option(settings.MODEL_PATH)
@options_of(Hyperparameters)
@option(settings.PROTOCOL)
@option(settings.RESUME)
@option(settings.STRATEGY, hidden=True)  # set by `launch` for the processes it starts; recorded
@click.pass_obj
def train(
    runtime: Runtime,
    track: str,
    train_path: Path | None,
    val_path: Path | None,
    out: Path | None,
    workspace: Workspace,
    model_path: str | None,
    resume: bool,
    strategy: str | None,
    **kw: Any,
) -> None:
    """Fine-tune a LoRA adapter on a track's train split (TRL + PEFT; Unsloth on CUDA when installed)."""
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        raise SlmSwapError("train needs the train extra\n  fix: pip install 'slm-swap[train]'")
    training_process(runtime)
    from slm_swap.local.models import resolve_model_path
    from slm_swap.train.sft import train as run_train

    config = config_from(
        TrainConfig,
        kw,
        track=track,
        train=train_path or workspace.split(track, "train"),
        val=val_path or workspace.split(track, "val"),
        out=out or workspace.adapter(track),
        model_path=resolve_model_path(model_path),
        resume=resume,
        strategy=strategy or "single",
    )
    with traced() as tracer, progress(f"train {track}", None) as advance:

        def on_step(step: int, steps: int) -> None:
            advance(total=steps)
            advance()

        result = run_train(config, tracer, on_step=on_step, runtime=runtime)
    if result.interrupted:
        stdout.print(
            f"interrupted after {result.steps} steps; a checkpoint is in {config.out / 'checkpoints'}; "
            f"rerun with {settings.RESUME} to continue"
        )
        sys.exit(130)
    stdout.print(
        f"engine: {result.engine} ({result.card.precision}); {result.steps} steps in "
        f"{result.seconds:.1f} s; train loss {result.card.train_loss_first:.4f} → "
        f"{result.train_loss:.4f}; validation loss {result.val_loss:.4f}"
    )
    stdout.print(
        f"wrote {result.adapter} (re-evaluate: slm-swap eval --track {track} --model-kind slm "
        f"--adapter {result.adapter})"
    )


@click.command()
@option(settings.STRATEGY, required=True)
@click.option(
    "--launcher", type=click.Choice(["accelerate", "torchrun"]), default="accelerate", show_default=True
)
@option(settings.GPUS)
@option(settings.DRY_RUN)
@workspace_options
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def launch(
    runtime: Runtime,
    strategy: str,
    launcher: str,
    gpus: int | None,
    dry_run: bool,
    workspace: Workspace,
    train_args: tuple[str, ...],
) -> None:
    """Fine-tune both tracks on several GPUs (the specification's train_parallel.sh / train_sequential.sh).

    Extra arguments after -- go to `slm-swap train` (e.g. -- --load-in-4bit).
    """
    from slm_swap.train.launch import plan, run

    gpus = gpus_to_use(gpus)
    if gpus < 2:
        raise ConfigError(
            f"launch trains each track over several GPUs, and {gpus} is one\n"
            f"  fix: give {settings.GPUS} 2 or more, or train on one GPU with `slm-swap train`"
        )
    stages = plan(strategy, launcher=launcher, gpus=gpus, workspace=workspace, extra=train_args)
    for number, stage in enumerate(stages, start=1):
        together = " (at the same time)" if len(stage) > 1 else ""
        stdout.print(f"stage {number}{together}:")
        for item in stage:
            stdout.print(f"  {item.shell()}")
    if dry_run:
        return
    failed = [(item, code) for item, code in run(stages, runtime.child_environment(os.environ)) if code != 0]
    for item, code in failed:
        stderr.print(f"{item.track} exited {code}; see {item.log}")
    if failed:
        sys.exit(1)
    stdout.print("adapters: " + ", ".join(str(workspace.adapter(s.track)) for stage in stages for s in stage))


def training_process(runtime: Runtime) -> None:
    """Readies a process that trains: one GPU of several (TRL trains on one per process; `launch` starts
    one per GPU), then the training engine, imported before TRL (Unsloth patches what it imports after)."""
    from slm_swap.local import cuda
    from slm_swap.train.sft import load_engine

    note = cuda.keep_one_gpu(os.environ, launched=runtime.launched)
    if note:
        stderr.print(note)
    load_engine(runtime)
