"""The `slm-swap` command line: each command parses options, calls one library function, renders."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from slm_swap import __version__
from slm_swap.errors import SlmSwapError
from slm_swap.types import SPLITS, TRACKS

if TYPE_CHECKING:
    from slm_swap.compare import Decision
    from slm_swap.runs import RunResult
    from slm_swap.tracing import Tracer

EXIT_FINE_TUNE = 10

# markup off: messages carry user text (paths, JSON) whose brackets are not rich markup.
stdout = Console(highlight=False, soft_wrap=True, markup=False)
stderr = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

track_option = click.option("--track", type=click.Choice(TRACKS), required=True, help="Which track.")
dataset_dir_option = click.option(
    "--dataset-dir",
    type=click.Path(path_type=Path),
    default=Path("02_dataset"),
    envvar="SLM_SWAP_DATASET_DIR",
    show_default=True,
    help="Folder of prepared splits ({track}/{split}.jsonl).",
)


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
def main() -> None:
    """Can a small local model replace your hosted LLM on structured output and tool calling?

    Prepare data, evaluate both models on the same examples, decide with evidence whether to fine-tune.
    """


@main.command()
@click.option(
    "--source",
    type=click.Choice(["xlam", "bfcl"]),
    default="xlam",
    show_default=True,
    help="xLAM function-calling file, or BFCL data from the bfcl-eval wheel.",
)
@click.option(
    "--dataset-path",
    type=click.Path(path_type=Path),
    help="xLAM: the JSON/JSONL file (default: the shipped sample). BFCL: the bfcl-eval wheel or "
    "its bfcl_eval/data folder (default: fetched with pip, without dependencies).",
)
@click.option("--bfcl-category", default="simple_python", show_default=True, help="BFCL category.")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("02_dataset"), show_default=True)
@click.option("--train-size", type=click.IntRange(min=0), default=32, show_default=True)
@click.option("--val-size", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--test-size", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
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
    out_dir: Path,
    train_size: int,
    val_size: int,
    test_size: int,
    seed: int,
    skip_invalid: bool,
    smoke: bool,
    smoke_rows: int,
) -> None:
    """Write 02_dataset/{structured,toolcall}/{train,val,test}.jsonl from xLAM or BFCL data."""
    from slm_swap.data import bfcl
    from slm_swap.data.prepare import SplitSizes, bfcl_source, sample_path, smoke_splits, xlam_source
    from slm_swap.data.prepare import prepare as run_prepare

    if source == "bfcl":
        location = dataset_path or bfcl.fetch_wheel()
        src = bfcl_source(location, bfcl_category)
    else:
        if dataset_path is None:
            dataset_path = sample_path()
            stdout.print(
                f"using the shipped xLAM-format sample ({dataset_path.name}); "
                "pass --dataset-path for the real xLAM file"
            )
        src = xlam_source(dataset_path)
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
    for line in result.skipped[:5]:
        stderr.print(f"skipped {line}")
    if result.unknown_types:
        listed = ", ".join(f"{t} ({n})" for t, n in sorted(result.unknown_types.items()))
        stdout.print(f"parameter types read as 'any': {listed}")


@main.command(name="eval")
@track_option
@click.option(
    "--model-kind",
    type=click.Choice(["replay"]),
    required=True,
    help="replay: score stored outputs (--predictions).",
)
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True)
@click.option(
    "--out", type=click.Path(path_type=Path), help="Run file [default: 05_eval/{track}_{kind}_{split}.json]."
)
@click.option(
    "--predictions",
    type=click.Path(path_type=Path),
    help="replay: JSON Lines of {id, output}, or a run file to score again.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--force", is_flag=True, help="Recompute even if the run file exists.")
@dataset_dir_option
def eval_command(
    track: str,
    model_kind: str,
    split: str,
    out: Path | None,
    predictions: Path | None,
    batch_size: int,
    force: bool,
    dataset_dir: Path,
) -> None:
    """Evaluate a model on a split and write its run file (metrics and per-example results)."""
    from slm_swap.backends.replay import ReplayBackend
    from slm_swap.evaluate import evaluate, run_meta
    from slm_swap.files import read_examples

    dataset = dataset_dir / track / f"{split}.jsonl"
    out = out or Path("05_eval") / f"{track}_{model_kind}_{split}.json"
    with traced() as tracer:
        examples = read_examples(dataset)
        if predictions is None:
            raise SlmSwapError("--model-kind replay needs --predictions FILE")
        backend = ReplayBackend(predictions)
        backend.batch_size = batch_size
        backend.check_covers(examples)
        meta = run_meta(track, split, dataset, backend)  # type: ignore[arg-type]
        outcome = evaluate(examples, backend, meta, out, tracer, force=force)
    if outcome.reused:
        stdout.print(f"{out} is already complete for these inputs (pass --force to recompute)")
    _print_summary(outcome.run, out)


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
    for name, value in summary.items():
        if name in ("examples", "errors"):
            continue
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
@click.option(
    "--delta",
    type=float,
    default=0.01,
    show_default=True,
    help="Fine-tune when the SLM trails on any core metric by more than this.",
)
@click.option(
    "--out",
    "decision_path",
    type=click.Path(path_type=Path),
    help="Decision file [default: 05_eval/{track}_decision.json].",
)
def compare(track: str, hosted_path: Path, slm_path: Path, delta: float, decision_path: Path | None) -> None:
    """Decide whether to fine-tune: prints FINE_TUNE=1 and exits 10 if the SLM trails by more than delta."""
    from slm_swap.compare import compare as decide
    from slm_swap.files import write_json
    from slm_swap.runs import read_run

    decision_path = decision_path or Path("05_eval") / f"{track}_decision.json"
    with traced() as tracer:
        hosted, slm = read_run(hosted_path), read_run(slm_path)
        decision = decide(hosted, slm, delta, hosted_path=hosted_path, slm_path=slm_path, track=track)
        write_json(decision_path, decision.to_json())
        with tracer.run(
            f"compare {track}",
            input={"hosted": str(hosted_path), "slm": str(slm_path)},
            metadata={"track": track, "delta": delta, "decision_path": str(decision_path)},
        ) as trace:
            trace.event("decision", decision.to_json())
            trace.score("FINE_TUNE", float(decision.fine_tune))
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
    if decision.too_few:
        unsettled = ", ".join(m.metric for m in decision.metrics if not m.settled)
        stdout.print(
            f"* too few examples to be sure: the 95% interval of {unsettled} straddles delta; "
            "the verdict follows the delta rule regardless"
        )
    stdout.print(f"wrote {path}")
