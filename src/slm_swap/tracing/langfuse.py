"""`LangfuseTracer`: runs, generations, scores, events and dataset runs sent to Langfuse through the
official SDK, with every item counted (`delivery.py`) so that `flush()` can say whether it arrived.
Tracing never changes a run's result and never raises out of `flush()`.

Spans are started on our own OpenTelemetry tracer (`client.py`) and wrapped in the SDK's public span
classes, which set every Langfuse attribute. Ids never come from the `random` module, which anything
in the process may seed (the trainer does): trace and span ids come from the OS (`client.py`), score ids
from `secrets`, and a dataset run's scores are made here, with such ids, rather than by the SDK's
experiment runner (which would draw theirs from `random`).

Neither key is ever printed, logged, put in a trace attribute or in an error message by this module.
Importing it is cheap: langfuse, OpenTelemetry, httpx and requests are imported only when a
`LangfuseTracer` is built.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slm_swap.tracing.base import Generation, GenerationTrace, ItemOutcome, RunTrace, Tracer
from slm_swap.tracing.client import open_client
from slm_swap.tracing.config import LangfuseSettings
from slm_swap.tracing.delivery import DeliveryReport, Ledger, guard
from slm_swap.tracing.null import NullGeneration
from slm_swap.urls import shown

if TYPE_CHECKING:
    from langfuse import Langfuse, LangfuseGeneration, LangfuseSpan
    from opentelemetry.trace import Span
    from opentelemetry.trace import Tracer as OtelTracer

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _new_id() -> str:
    """An id for a score, from the OS (see the module's docstring)."""
    return secrets.token_hex(8)


def _ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly (float timestamps lose microseconds)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _metadata_attributes(metadata: Mapping[str, Any]) -> dict[str, str]:
    """Trace metadata as the SDK encodes it: one JSON value per `langfuse.trace.metadata.<key>`."""
    from langfuse import LangfuseOtelSpanAttributes as A

    return {
        f"{A.TRACE_METADATA}.{key}": json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        for key, value in metadata.items()
        if value is not None
    }


class _LangfuseGeneration(GenerationTrace):
    def __init__(self, generation: LangfuseGeneration, ledger: Ledger) -> None:
        self._generation = generation
        self._ledger = ledger
        self.observation_id = generation.id

    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        from langfuse.api import ScoreDataType

        self._ledger.score_created()
        with guard(self._ledger):
            self._generation.score(
                name=name,
                value=float(value),
                score_id=_new_id(),
                data_type=ScoreDataType.NUMERIC,
                comment=comment,
            )


class _LangfuseRun(RunTrace):
    def __init__(
        self,
        client: Langfuse,
        tracer: OtelTracer,
        root: LangfuseSpan,
        root_span: Span,
        shared: Mapping[str, Any],
        ledger: Ledger,
    ) -> None:
        self._client = client
        self._tracer = tracer
        self._root = root
        self._root_span = root_span
        self._shared = shared
        self._ledger = ledger
        self.trace_id = root.trace_id

    def generation(self, generation: Generation) -> GenerationTrace:
        from langfuse import LangfuseGeneration
        from opentelemetry import trace

        self._ledger.span_ended()
        with guard(self._ledger):
            start = generation.start_time or generation.end_time
            # The SDK's start_observation() always stamps "now"; an evaluation records real per-example
            # times, so the OpenTelemetry span is started here with the given time, explicitly parented
            # (not via the thread's current context, so worker threads work too), and then wrapped in
            # the SDK's public generation class, which sets every Langfuse attribute.
            span = self._tracer.start_span(
                generation.name,
                context=trace.set_span_in_context(self._root_span),
                start_time=_ns(start) if start else None,
            )
            span.set_attributes(self._shared)
            sent = LangfuseGeneration(
                otel_span=span,
                langfuse_client=self._client,
                input=generation.input,
                output=generation.output,
                metadata=dict(generation.metadata) if generation.metadata else None,
                model=generation.model,
                usage_details=dict(generation.usage) if generation.usage else None,
                level="ERROR" if generation.error else None,
                status_message=generation.error,
            )
            sent.end(end_time=_ns(generation.end_time) if generation.end_time else None)
            return _LangfuseGeneration(sent, self._ledger)
        return NullGeneration()

    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        from langfuse.api import ScoreDataType

        self._ledger.score_created()
        with guard(self._ledger):
            self._root.score_trace(
                name=name,
                value=float(value),
                score_id=_new_id(),
                data_type=ScoreDataType.NUMERIC,
                comment=comment,
            )

    def event(self, name: str, metadata: Mapping[str, Any]) -> None:
        self._ledger.span_ended()
        with guard(self._ledger):
            self._root.create_event(name=name, metadata=dict(metadata))

    def update(self, *, output: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        with guard(self._ledger):
            self._root.update(output=output, metadata=dict(metadata) if metadata else None)
            if metadata:
                self._root_span.set_attributes(_metadata_attributes(metadata))


class LangfuseTracer(Tracer):
    """Sends runs to Langfuse through the official SDK and checks that they arrived.

    Each instance owns its SDK client, OpenTelemetry TracerProvider (never the global one), span
    exporter and HTTP clients (`client.open_client`), so several tracers can live in one process, one per
    public key. `RuntimeError` when a tracer for this public key was already opened in this process.
    """

    enabled = True

    def __init__(
        self,
        settings: LangfuseSettings,
        *,
        timeout_s: int = 10,
        flush_at: int = 100,
        flush_interval_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self._ledger = Ledger()
        self._closed = False
        self._sdk = open_client(
            settings, self._ledger, timeout_s=timeout_s, flush_at=flush_at, flush_interval_s=flush_interval_s
        )
        self._client = self._sdk.langfuse

    @contextmanager
    def run(
        self,
        name: str,
        *,
        input: Any = None,
        metadata: Mapping[str, Any],
        tags: Sequence[str] = (),
        session_id: str | None = None,
    ) -> Iterator[RunTrace]:
        from langfuse import LangfuseOtelSpanAttributes as A
        from langfuse import LangfuseSpan
        from opentelemetry.context import Context

        # Session and tags go on every span of the run, as the SDK's propagate_attributes() would put
        # them (Langfuse aggregates sessions per observation); metadata only on the root. They are
        # set directly because propagate_attributes() drops metadata values over 200 characters.
        shared: dict[str, Any] = {}
        if tags:
            shared[A.TRACE_TAGS] = list(tags)
        if session_id:
            shared[A.TRACE_SESSION_ID] = session_id
        # An empty context: a run is always a new trace, whatever span the caller has open.
        root_span = self._sdk.tracer.start_span(name, context=Context())
        root_span.set_attributes({A.TRACE_NAME: name, **shared, **_metadata_attributes(metadata)})
        root = LangfuseSpan(
            otel_span=root_span, langfuse_client=self._client, input=input, metadata=dict(metadata) or None
        )
        try:
            yield _LangfuseRun(self._client, self._sdk.tracer, root, root_span, shared, self._ledger)
        except BaseException as exc:
            with guard(self._ledger):
                root.update(level="ERROR", status_message=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._ledger.span_ended()
            with guard(self._ledger):
                root.end()

    def dataset_run(
        self,
        dataset: str,
        run: str,
        items: Mapping[str, ItemOutcome],
        *,
        description: str,
        metadata: Mapping[str, Any],
    ) -> None:
        # The SDK's public experiment runner makes the dataset run: one trace per item, linked to the
        # item. The answers exist already: the task hands each one back and scores the item's task
        # observation, the current span while it runs, with ids from the OS (see the module's docstring).
        from opentelemetry import context

        # An empty context, as for `run()`: each item's trace is its own, whatever span the caller has open.
        token = context.attach(context.Context())
        with guard(self._ledger):
            chosen = [i for i in self._client.get_dataset(dataset).items if i.id in items]

            def task(*, item: Any, **_: Any) -> str:
                outcome = items[item.id]
                for name, value in outcome.scores.items():
                    self._ledger.score_created()
                    self._client.create_score(
                        trace_id=self._client.get_current_trace_id(),
                        observation_id=self._client.get_current_observation_id(),
                        name=name,
                        value=float(value),
                        score_id=_new_id(),
                        data_type="NUMERIC",
                    )
                return outcome.output

            self._client.run_experiment(
                name=run,
                run_name=run,
                description=description,
                data=chosen,
                task=task,
                max_concurrency=1,
                metadata=dict(metadata),
            )
        context.detach(token)

    def flush(self) -> DeliveryReport:
        with guard(self._ledger):
            # Exports every ended span synchronously and waits until the score queue is drained.
            self._client.flush()
        return self._ledger.report(shown(self.settings.host))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with guard(self._ledger):
            self._sdk.close()
