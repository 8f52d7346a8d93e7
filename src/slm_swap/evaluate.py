"""Runs a backend over a split: generate in batches, score, journal, trace, write the run file."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from slm_swap import settings
from slm_swap.backends.base import Backend
from slm_swap.backends.config import ModelConfig
from slm_swap.cost import Estimate
from slm_swap.errors import InputError, SlmSwapError
from slm_swap.files import check_output, one_writer
from slm_swap.identity import Check, compare_inputs, file_digest
from slm_swap.runs import Journal, RunMeta, RunResult, read_run, write_run
from slm_swap.scoring.metrics import score
from slm_swap.tracing import Generation, ItemOutcome, RunTrace, Tracer
from slm_swap.types import Example, ExampleResult, Track
from slm_swap.workspace import dataset_dir_of

if TYPE_CHECKING:
    from slm_swap.report import Pricing


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_meta(
    track: Track,
    split: str,
    dataset: Path,
    backend: Backend,
    *,
    adapter: str | None = None,
    examples: Sequence[Example] = (),
) -> RunMeta:
    """Metadata for a run of `backend` on the split file `dataset` (holding `examples`)."""
    described = backend.describe()
    return RunMeta(
        track=track,
        split=split,
        dataset=str(dataset),
        dataset_sha256=file_digest(dataset),
        model_kind=backend.kind,
        model=backend.model,
        adapter=adapter,
        constrained=backend.constrained,
        protocol=backend.config.protocol,
        settings={k: v for k, v in described.items() if k not in ("model_kind", "model")},
        inputs=backend.identity(),
        gold_by=", ".join(sorted({e.labelled_by for e in examples if e.labelled_by})),
    )


@contextmanager
def open_evaluation(
    config: ModelConfig,
    track: Track,
    split: str,
    dataset: Path,
    examples: Sequence[Example],
    say: Callable[[str], None] = lambda line: None,
) -> Iterator[tuple[Backend, RunMeta]]:
    """The one evaluation sequence of eval, live and run: the backend `config` asks for, checked against
    the examples (a replay file must cover some; `say` hears how many it does not, and the Batch API
    route's progress), and the run's metadata; the backend is closed after."""
    from slm_swap.backends.factory import make_backend
    from slm_swap.backends.replay import ReplayBackend

    backend = make_backend(config, say)
    try:
        if isinstance(backend, ReplayBackend) and (coverage := backend.check_covers(examples)):
            say(coverage)
        adapter = getattr(config, "adapter", None)
        adapter = None if adapter is None else str(adapter)
        yield backend, run_meta(track, split, dataset, backend, adapter=adapter, examples=examples)
    finally:
        backend.close()


@dataclass(frozen=True)
class EvalOutcome:
    run: RunResult
    reused: bool  # the finished run file was already there for these inputs
    resumed: int  # examples taken from the journal of an interrupted run


def _trace_example(trace: RunTrace, meta: RunMeta, example: Example, result: ExampleResult) -> None:
    end = datetime.now(UTC)
    generation = trace.generation(
        Generation(
            name=f"{meta.track}/{example.id}",
            model=meta.model,
            input=example.messages(),
            output=result.output,
            metadata={
                "example_id": example.id,
                "error_category": result.error_category,
                "error_detail": result.error_detail,
            },
            usage=result.usage.traced(),
            start_time=end - timedelta(seconds=result.latency_s),
            end_time=end,
            error=result.backend_error,
        )
    )
    for name, value in result.metrics.items():  # the row's own metrics (a no-call row: abstention)
        generation.score(name, value)


@dataclass(frozen=True)
class Reuse:
    """Whether a finished run file can be kept (`check`), and the run it holds when it can be read."""

    check: Check
    previous: RunResult | None = None

    def extends(self, ids: Sequence[str]) -> bool:
        """Whether the run holds the same inputs on a first part of `ids` only: the rows of a sequential
        evaluation's earlier rounds, kept when the next round asks for more."""
        if self.previous is None or self.check.changed != (EXAMPLES,):
            return False
        held = [r.id for r in self.previous.results]
        return 0 < len(held) < len(ids) and held == list(ids[: len(held)])

    def covers(self, ids: Sequence[str]) -> bool:
        """Whether the run holds the same inputs on `ids` and more rows after them: a later round of a
        sequential evaluation, found again by a rerun that goes through the rounds from the first."""
        if self.previous is None or self.check.changed != (EXAMPLES,):
            return False
        held = [r.id for r in self.previous.results]
        return len(held) > len(ids) and held[: len(ids)] == list(ids)


EXAMPLES = "examples"


def reuse_check(out: Path, meta: RunMeta, examples: Sequence[Example]) -> Reuse:
    """Whether the finished run file at `out` is a run of the same inputs over the same examples (the
    identity rule), and if not, what differs. The file is read once, here."""
    if not out.is_file():
        return Reuse(Check(False, ("no run file yet",)))
    try:
        previous = read_run(out)
    except InputError:
        return Reuse(Check(False, ("unreadable run file",)))
    check = compare_inputs(previous.meta.identity(), meta.identity())
    if check.same and [r.id for r in previous.results] != [e.id for e in examples]:
        check = Check(False, (EXAMPLES,))
    return Reuse(check, previous)


def evaluate(
    examples: Sequence[Example],
    backend: Backend,
    meta: RunMeta,
    out: Path,
    tracer: Tracer,
    *,
    force: bool = False,
    replace_stale: bool = False,
    tags: Sequence[str] = (),
    session_id: str | None = None,
    on_result: Callable[[ExampleResult], None] | None = None,
    pricing: Pricing | None = None,
    on_estimate: Callable[[Estimate], None] | None = None,
) -> EvalOutcome:
    """Evaluates `examples` with `backend` and writes the run file `out`.

    A finished run file for the same inputs (`reuse_check`) is returned as is unless `force`, and so is
    one whose first rows are these (a sequential evaluation's later round); one on fewer of these rows
    is extended; one for other inputs is replaced only with `force` or `replace_stale`. Results of an
    interrupted run of the same inputs are taken from its journal unless `force`. One process writes
    `out` at a time (a second stops, naming the first); a path that cannot be written stops the run
    before its journal starts.
    With `pricing`, a model paid by the token has the cost of the requests still to send estimated before
    the first one (`cost.py`): `on_estimate` hears it, and the run file records it in its settings
    (`"estimate"`), outside the run's identity.
    """
    check_output(out, inputs={"the split": meta.dataset})
    with one_writer(out):
        ids = [e.id for e in examples]
        earlier: dict[str, ExampleResult] = {}  # a finished run of the same inputs on fewer of these rows
        if out.is_file() and not force:
            reuse = reuse_check(out, meta, examples)
            if reuse.check.same and reuse.previous is not None:
                Journal(out, meta).settle(r.id for r in reuse.previous.results)
                return EvalOutcome(reuse.previous, reused=True, resumed=0)
            if reuse.covers(ids):  # kept whole: its first rows are these
                assert reuse.previous is not None
                return EvalOutcome(reuse.previous, reused=True, resumed=0)
            if reuse.extends(ids):  # a sequential evaluation's next round: its rows are kept
                assert reuse.previous is not None
                earlier = {r.id: r for r in reuse.previous.results}
            elif not replace_stale:
                raise SlmSwapError(
                    f"{out} already holds a run of other inputs ({reuse.check.why}; "
                    f"this run: {meta.dataset})\n  fix: pass {settings.FORCE} to replace it, or choose "
                    f"another {settings.OUT}"
                )
        journal = Journal(out, meta)
        done = journal.resume(ids, fresh=force)
        if earlier:
            done = {**earlier, **done}
            journal.rewrite(done)
        backend.resume_at(out, fresh=force)
        resumed = len(done)
        meta = replace(meta, started_at=now_iso())
        todo = [e for e in examples if e.id not in done]
        if pricing is not None and todo and (estimate := backend.estimate(todo, pricing)) is not None:
            meta = replace(meta, settings={**meta.settings, "estimate": estimate.to_json()})
            if on_estimate:
                on_estimate(estimate)
        by_id = {e.id: e for e in examples}
        with (
            closing(journal),  # on disk however the run ends
            tracer.run(
                f"eval {meta.track}/{meta.split} {meta.model_kind}",
                input={"dataset": meta.dataset},
                metadata={
                    **meta.identity(),
                    "dataset": meta.dataset,
                    "metrics_path": str(out),
                    "start": meta.started_at,
                },
                tags=tags,
                session_id=session_id,
            ) as trace,
        ):
            for result in done.values():
                if on_result:
                    on_result(result)
            for example, completion in backend.ask(todo):
                result = score(example, completion)
                journal.append(result)
                done[example.id] = result
                _trace_example(trace, meta, by_id[example.id], result)
                if on_result:
                    on_result(result)
            meta = replace(meta, finished_at=now_iso())
            run = RunResult(meta, [done[i] for i in ids])
            write_run(out, run)
            journal.remove()
            summary = run.summary
            trace.update(
                output=summary.to_json(), metadata={"end": meta.finished_at, "metrics_path": str(out)}
            )
            for name, value in summary.metrics.items():  # a split of no-call rows has no call metrics
                trace.score(name, value)
        dataset = langfuse_dataset_of(Path(meta.dataset))
        if dataset is not None:
            outcomes = {r.id.removeprefix("langfuse-"): ItemOutcome(r.output, r.metrics) for r in run.results}
            tracer.dataset_run(
                dataset,
                dataset_run_name(meta),
                outcomes,
                description=f"slm-swap eval -> {out}",
                metadata=meta.identity(),
            )
        return EvalOutcome(run, reused=False, resumed=resumed)


def langfuse_dataset_of(split: Path) -> str | None:
    """The Langfuse dataset a split was prepared from (its folder's manifest says), or None."""
    from slm_swap.data.splits import recorded_inputs

    inputs = recorded_inputs(dataset_dir_of(split))
    source = inputs.get("source") if inputs else None
    if isinstance(source, dict) and source.get("kind") == "langfuse":
        return str(source["dataset"])
    return None


def dataset_run_name(meta: RunMeta) -> str:
    """One dataset run per model and track: `toolcall test · SLM + adapter · <model>`."""
    if meta.model_kind == "slm":
        who = "SLM + adapter" if meta.adapter else "SLM"
        who += " (constrained)" if meta.constrained else ""
    else:
        who = f"hosted ({meta.model_kind})"
    return f"{meta.track} {meta.split} · {who} · {meta.model}"
