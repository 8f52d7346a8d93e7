"""Tracing of runs to Langfuse, and the check that the traces actually arrived.

Commands that run a model or decide (eval, train, compare, ...) call `make_tracer()` before doing
any work. It refuses to start (`ConfigError`) unless LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY and
LANGFUSE_HOST are set, or LANGFUSE_DISABLED=1 asks for a run without tracing (`NullTracer`).

The Langfuse SDK never reports a failed delivery: `flush()` returns nothing and a 401 is only
logged. `LangfuseTracer` therefore counts every span and score it hands to the SDK and what the
server accepted, and `flush()` returns a `DeliveryReport` the CLI prints as a warning. Tracing never
changes a run's result and never raises out of `flush()`.

Everything goes through the SDK's and OpenTelemetry's public APIs: our own TracerProvider and span
exporter (the SDK's `tracer_provider` and `span_exporter` parameters, the exporter's auth and ingestion
headers set as the SDK documents for a custom exporter), our own tracer whose scope the SDK is told to
export (`should_export_span`), and the SDK's public span classes. The SDK keeps one client per public
key per process, so one tracer is opened per process and key (a second is refused, not misrouted).

Neither key is ever printed, logged, put in a trace attribute or in an error message by this
module. (The public key is the OpenTelemetry instrumentation scope's `public_key` attribute, which the
SDK's span processor requires; that is how Langfuse routes the data.)

Importing this module is cheap: langfuse, OpenTelemetry, httpx and requests are imported only
when a `LangfuseTracer` is built.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slm_swap import __version__
from slm_swap.errors import ConfigError

if TYPE_CHECKING:
    import httpx
    import requests
    from langfuse import Langfuse, LangfuseGeneration, LangfuseSpan
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span
    from opentelemetry.trace import Tracer as OtelTracer

ENV_PUBLIC_KEY = "LANGFUSE_PUBLIC_KEY"
ENV_SECRET_KEY = "LANGFUSE_SECRET_KEY"
ENV_HOST = "LANGFUSE_HOST"
ENV_DISABLED = "LANGFUSE_DISABLED"
ENV_ENVIRONMENT = "LANGFUSE_TRACING_ENVIRONMENT"
_REQUIRED = (ENV_PUBLIC_KEY, ENV_SECRET_KEY, ENV_HOST)
# The SDK reads these from os.environ itself; either one makes it drop every span silently.
_SDK_OFF_SWITCHES = (("LANGFUSE_TRACING_ENABLED", "false"), ("OTEL_SDK_DISABLED", "true"))

_OTEL_PATH = "/api/public/otel/v1/traces"
_SCOPE = "slm-swap"  # the instrumentation scope of the spans slm-swap starts itself
_OPENED_KEYS: set[str] = set()
_OPEN_LOCK = threading.Lock()
_SCORES_PATH = "/api/public/scores"
_REJECTED = "rejected by the server (HTTP 207)"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class LangfuseSettings:
    """Where and as whom to send traces. Neither key appears in `repr()`."""

    public_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    host: str
    environment: str = "default"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LangfuseSettings | None:
        """Read the settings from `env`; None when LANGFUSE_DISABLED=1.

        Raises `ConfigError` when a required variable is missing or empty (the message names every
        missing one and offers LANGFUSE_DISABLED=1), when LANGFUSE_HOST is not an http(s) URL, or
        when an SDK switch (LANGFUSE_TRACING_ENABLED=false, OTEL_SDK_DISABLED=true) would make the
        SDK drop everything. Values are stripped of surrounding whitespace.
        """
        disabled = env.get(ENV_DISABLED, "").strip()
        if disabled == "1":
            return None
        if disabled not in ("", "0"):
            raise ConfigError(f"{ENV_DISABLED} must be 1 (run without tracing) or unset; got {disabled!r}")
        missing = [name for name in _REQUIRED if not env.get(name, "").strip()]
        if missing:
            verb = "is" if len(missing) == 1 else "are"
            raise ConfigError(
                f"Langfuse tracing is required for this command, but {', '.join(missing)} {verb} not set. "
                f"Set {'it' if len(missing) == 1 else 'them'}, "
                f"or set {ENV_DISABLED}=1 to run without tracing."
            )
        for name, off in _SDK_OFF_SWITCHES:
            if env.get(name, "").strip().lower() == off:
                raise ConfigError(
                    f"{name}={off} makes the Langfuse SDK drop every trace. Unset it, "
                    f"or set {ENV_DISABLED}=1 to run without tracing."
                )
        host = env[ENV_HOST].strip().rstrip("/")
        if not host.startswith(("http://", "https://")):
            raise ConfigError(
                f"{ENV_HOST} must be an http(s) URL such as https://cloud.langfuse.com; got {host!r}"
            )
        return cls(
            public_key=env[ENV_PUBLIC_KEY].strip(),
            secret_key=env[ENV_SECRET_KEY].strip(),
            host=host,
            environment=env.get(ENV_ENVIRONMENT, "").strip() or "default",
        )


@dataclass(frozen=True)
class DeliveryReport:
    """What became of the trace items (spans and scores) a tracer sent, counted since it was made.

    `delivered` is True when every item was accepted by the server (always, for `NullTracer`).
    `message` is a sentence for the CLI when not delivered, else None.
    """

    delivered: bool
    sent: int
    failed: int
    message: str | None = None


@dataclass(frozen=True)
class ItemOutcome:
    """A model's answer to one dataset item and its metric scores."""

    output: str
    scores: Mapping[str, float]


class GenerationTrace(ABC):
    """One model call inside a run; `observation_id` is None when tracing is off."""

    observation_id: str | None = None

    @abstractmethod
    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        """Attach a numeric score to this generation (observation)."""


class RunTrace(ABC):
    """One command run: a Langfuse trace whose root span holds generations, scores and events."""

    trace_id: str | None = None

    @abstractmethod
    def generation(
        self,
        *,
        name: str,
        model: str,
        input: Any,
        output: str | None,
        metadata: Mapping[str, Any] | None = None,
        usage: Mapping[str, int] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        error: str | None = None,
    ) -> GenerationTrace:
        """Record a finished model call under the run.

        `usage` is `{"input": n, "output": m}` tokens. `start_time`/`end_time` are the call's real
        times (naive datetimes are taken as UTC); when only `end_time` is given the generation is
        recorded as instantaneous, when neither is given it is recorded as now. `error` marks the
        generation with level ERROR and the error as status message.
        """

    @abstractmethod
    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        """Attach a numeric score to the whole trace."""

    @abstractmethod
    def event(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Record a point-in-time event under the run."""

    @abstractmethod
    def update(self, *, output: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        """Set the run's output and add metadata; only inside the `run()` block."""


class Tracer(ABC):
    """Makes run traces; `flush()` reports whether they arrived. Use one per command."""

    enabled: bool

    @abstractmethod
    def run(
        self,
        name: str,
        *,
        input: Any = None,
        metadata: Mapping[str, Any],
        tags: Sequence[str] = (),
        session_id: str | None = None,
    ) -> AbstractContextManager[RunTrace]:
        """Open a trace for one run. The trace carries `metadata`, `tags` and `session_id`.

        An exception leaving the block marks the run ERROR and propagates unchanged.
        """

    @abstractmethod
    def flush(self) -> DeliveryReport:
        """Block until everything sent so far is delivered or has failed; never raises."""

    def dataset_run(  # noqa: B027 - a no-op default is the point
        self,
        dataset: str,
        run: str,
        items: Mapping[str, ItemOutcome],
        *,
        description: str,
        metadata: Mapping[str, Any],
    ) -> None:
        """Records answers to items of a Langfuse dataset (by item id) as one dataset run (experiment)
        named `run`, each item linked to its trace with its scores; never raises."""

    def close(self) -> None:  # noqa: B027 - a no-op default is the point
        """Flush and release threads and connections; idempotent, never raises.

        Call `flush()` first for the report: what `close()` flushes is not reported.
        """


class _NullGeneration(GenerationTrace):
    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        pass


class _NullRun(RunTrace):
    def generation(
        self,
        *,
        name: str,
        model: str,
        input: Any,
        output: str | None,
        metadata: Mapping[str, Any] | None = None,
        usage: Mapping[str, int] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        error: str | None = None,
    ) -> GenerationTrace:
        return _NullGeneration()

    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        pass

    def event(self, name: str, metadata: Mapping[str, Any]) -> None:
        pass

    def update(self, *, output: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        pass


class NullTracer(Tracer):
    """The tracer for LANGFUSE_DISABLED=1: everything is a no-op and counts as delivered."""

    enabled = False

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
        yield _NullRun()

    def flush(self) -> DeliveryReport:
        return DeliveryReport(delivered=True, sent=0, failed=0)


def make_tracer(env: Mapping[str, str] | None = None) -> Tracer:
    """The tracer the environment asks for (`os.environ` by default); `ConfigError` as in `from_env`."""
    settings = LangfuseSettings.from_env(os.environ if env is None else env)
    return NullTracer() if settings is None else LangfuseTracer(settings)


@dataclass(frozen=True)
class OptionalTracing:
    tracer: Tracer | None
    says: str  # one line for the console: traced, or why not


def tracer_if_configured(env: Mapping[str, str] | None = None) -> OptionalTracing:
    """For commands that trace when configured and say so when not (`serve`): a Langfuse tracer when
    the LANGFUSE_* variables are set, none when none of them is set or LANGFUSE_DISABLED=1. A partial or
    invalid configuration is still a `ConfigError`, as in `from_env`."""
    env = os.environ if env is None else env
    if env.get(ENV_DISABLED, "").strip() == "1":
        return OptionalTracing(None, f"tracing is off ({ENV_DISABLED}=1)")
    if not any(env.get(name, "").strip() for name in _REQUIRED):
        return OptionalTracing(None, f"tracing is off ({', '.join(_REQUIRED)} are not set)")
    settings = LangfuseSettings.from_env(env)
    assert settings is not None  # not disabled, so from_env either returns settings or raises
    return OptionalTracing(LangfuseTracer(settings), f"tracing requests to Langfuse at {settings.host}")


class _Ledger:
    """Counts items handed to the SDK and the server's answers; written from the SDK's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.spans_ended = 0
        self.spans_ok = 0
        self.span_failures: Counter[str] = Counter()
        self.last_span_status: int | None = None
        self.scores_created = 0
        # Score id -> None when accepted, else why not. Keyed by id so a retried batch counts once.
        self.score_outcomes: dict[str, str | None] = {}
        self.errors: Counter[str] = Counter()

    def span_ended(self) -> None:
        with self._lock:
            self.spans_ended += 1

    def score_created(self) -> None:
        with self._lock:
            self.scores_created += 1

    def spans_exported(self, count: int, ok: bool) -> None:
        with self._lock:
            if ok:
                self.spans_ok += count
            else:
                status = self.last_span_status
                self.span_failures[f"HTTP {status}" if status else "connection failed"] += count

    def scores_answered(self, ids: Sequence[str], reason: str | None, rejected: int = 0) -> None:
        with self._lock:
            for i, score_id in enumerate(ids):
                # A 207 says how many were rejected, not which; the count is what the report needs.
                self.score_outcomes[score_id] = _REJECTED if i < rejected else reason

    def error(self, reason: str) -> None:
        with self._lock:
            self.errors[reason] += 1

    def report(self, host: str) -> DeliveryReport:
        with self._lock:
            scores_ok = sum(1 for outcome in self.score_outcomes.values() if outcome is None)
            sent = self.spans_ended + self.scores_created
            failed = max(0, self.spans_ended - self.spans_ok) + max(0, self.scores_created - scores_ok)
            reasons = set(self.span_failures) | set(self.errors)
            reasons |= {outcome for outcome in self.score_outcomes.values() if outcome is not None}
            unseen = self.spans_ended - self.spans_ok - sum(self.span_failures.values())
            if unseen > 0 or self.scores_created > len(self.score_outcomes):
                reasons.add("dropped before sending")
        if failed == 0:
            return DeliveryReport(delivered=True, sent=sent, failed=0)
        why = "; ".join(sorted(reasons))
        message = (
            f"{failed} of {sent} trace items could not be delivered to {host} ({why}); "
            "the run's results are saved regardless"
        )
        return DeliveryReport(delivered=False, sent=sent, failed=failed, message=message)


def _new_id() -> str:
    """An id for a score: from the OS, never from `random`, which model loading seeds (42) in every
    process, so its ids would be the same in every run and Langfuse would merge them."""
    return secrets.token_hex(8)


@contextmanager
def _ids_from_the_os() -> Iterator[None]:
    """Runs SDK code that draws ids from the `random` module (its experiment runner's score ids) on a
    state seeded from the OS, and gives the caller its own (seeded) state back afterwards."""
    state = random.getstate()
    random.seed(os.urandom(16))
    try:
        yield
    finally:
        random.setstate(state)


def _id_generator() -> Any:
    """Trace and span ids from the OS (OpenTelemetry's default draws them from `random`; see `_new_id`)."""
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class OsIds(IdGenerator):
        def generate_span_id(self) -> int:
            return int.from_bytes(os.urandom(8), "big") or 1

        def generate_trace_id(self) -> int:
            return int.from_bytes(os.urandom(16), "big") or 1

    return OsIds()


@contextmanager
def _guard(ledger: _Ledger) -> Iterator[None]:
    # Tracing must never change a run's outcome: an SDK error becomes a delivery failure instead.
    try:
        yield
    except Exception as exc:
        ledger.error(f"tracing error ({type(exc).__name__})")


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
    def __init__(self, generation: LangfuseGeneration, ledger: _Ledger) -> None:
        self._generation = generation
        self._ledger = ledger
        self.observation_id = generation.id

    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        from langfuse.api import ScoreDataType

        self._ledger.score_created()
        with _guard(self._ledger):
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
        ledger: _Ledger,
    ) -> None:
        self._client = client
        self._tracer = tracer
        self._root = root
        self._root_span = root_span
        self._shared = shared
        self._ledger = ledger
        self.trace_id = root.trace_id

    def generation(
        self,
        *,
        name: str,
        model: str,
        input: Any,
        output: str | None,
        metadata: Mapping[str, Any] | None = None,
        usage: Mapping[str, int] | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        error: str | None = None,
    ) -> GenerationTrace:
        from langfuse import LangfuseGeneration
        from opentelemetry import trace

        self._ledger.span_ended()
        with _guard(self._ledger):
            start = start_time or end_time
            # The SDK's start_observation() always stamps "now"; an evaluation records real per-example
            # times, so the OpenTelemetry span is started here with the given time, explicitly parented
            # (not via the thread's current context, so worker threads work too), and then wrapped in
            # the SDK's public generation class, which sets every Langfuse attribute.
            span = self._tracer.start_span(
                name,
                context=trace.set_span_in_context(self._root_span),
                start_time=_ns(start) if start else None,
            )
            span.set_attributes(self._shared)
            generation = LangfuseGeneration(
                otel_span=span,
                langfuse_client=self._client,
                input=input,
                output=output,
                metadata=dict(metadata) if metadata else None,
                model=model,
                usage_details=dict(usage) if usage else None,
                level="ERROR" if error else None,
                status_message=error,
            )
            generation.end(end_time=_ns(end_time) if end_time else None)
            return _LangfuseGeneration(generation, self._ledger)
        return _NullGeneration()

    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        from langfuse.api import ScoreDataType

        self._ledger.score_created()
        with _guard(self._ledger):
            self._root.score_trace(
                name=name,
                value=float(value),
                score_id=_new_id(),
                data_type=ScoreDataType.NUMERIC,
                comment=comment,
            )

    def event(self, name: str, metadata: Mapping[str, Any]) -> None:
        self._ledger.span_ended()
        with _guard(self._ledger):
            self._root.create_event(name=name, metadata=dict(metadata))

    def update(self, *, output: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        with _guard(self._ledger):
            self._root.update(output=output, metadata=dict(metadata) if metadata else None)
            if metadata:
                self._root_span.set_attributes(_metadata_attributes(metadata))


class LangfuseTracer(Tracer):
    """Sends runs to Langfuse through the official SDK and checks that they arrived.

    Each instance owns its SDK client, OpenTelemetry TracerProvider (never the global one),
    span exporter and HTTP clients, so several tracers can live in one process (tests). Everything
    the SDK would otherwise read from the environment and that changes what is sent or where
    (host, sampling, timeouts, batching, environment) is passed explicitly.
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
        self._ledger = _Ledger()
        self._closed = False
        self._client, self._provider, self._http = _open_client(
            settings, self._ledger, timeout_s=timeout_s, flush_at=flush_at, flush_interval_s=flush_interval_s
        )
        # Our own tracer on our own provider (public OpenTelemetry API): its spans carry this public key
        # in their scope, as the SDK's span processor requires, and `_open_client` lets the processor
        # export its scope. Spans started here can carry real start times, which the SDK's
        # start_observation() cannot.
        self._otel_tracer: OtelTracer = self._provider.get_tracer(
            _SCOPE, __version__, attributes={"public_key": settings.public_key}
        )

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
        root_span = self._otel_tracer.start_span(name, context=Context())
        root_span.set_attributes({A.TRACE_NAME: name, **shared, **_metadata_attributes(metadata)})
        root = LangfuseSpan(
            otel_span=root_span, langfuse_client=self._client, input=input, metadata=dict(metadata) or None
        )
        try:
            yield _LangfuseRun(self._client, self._otel_tracer, root, root_span, shared, self._ledger)
        except BaseException as exc:
            with _guard(self._ledger):
                root.update(level="ERROR", status_message=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self._ledger.span_ended()
            with _guard(self._ledger):
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
        # item, with the scores on the item's task observation. The answers exist already; the task only
        # hands each back, one item at a time, so the evaluator knows which item it scores.
        from langfuse import Evaluation
        from opentelemetry import context

        # An empty context, as for `run()`: each item's trace is its own, whatever span the caller has open.
        token = context.attach(context.Context())
        with _guard(self._ledger), _ids_from_the_os():
            chosen = [i for i in self._client.get_dataset(dataset).items if i.id in items]
            current: dict[str, str] = {}

            def task(*, item: Any, **_: Any) -> str:
                current["id"] = item.id
                return items[item.id].output

            def metrics(**_: Any) -> list[Evaluation]:
                scores = items[current["id"]].scores
                for _score in scores:
                    self._ledger.score_created()
                return [Evaluation(name=name, value=float(value)) for name, value in scores.items()]

            self._client.run_experiment(
                name=run,
                run_name=run,
                description=description,
                data=chosen,
                task=task,
                evaluators=[metrics],
                max_concurrency=1,
                metadata=dict(metadata),
            )
        context.detach(token)

    def flush(self) -> DeliveryReport:
        with _guard(self._ledger):
            # Exports every ended span synchronously and waits until the score queue is drained.
            self._client.flush()
        return self._ledger.report(self.settings.host)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with _guard(self._ledger):
            self._client.shutdown()
            self._provider.shutdown()
            self._http.close()


def _open_client(
    settings: LangfuseSettings, ledger: _Ledger, *, timeout_s: int, flush_at: int, flush_interval_s: float
) -> tuple[Langfuse, TracerProvider, httpx.Client]:
    """Build an SDK client that reports every delivery outcome to `ledger`."""
    import base64

    import httpx
    import requests
    from langfuse import Langfuse, is_default_export_span
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    class CountingExporter(SpanExporter):
        """The SDK's batch processor calls this with each batch; the result is what we count."""

        def __init__(self, inner: SpanExporter) -> None:
            self._inner = inner

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            ledger.last_span_status = None
            try:
                result = self._inner.export(spans)
            except Exception:
                result = SpanExportResult.FAILURE
            ledger.spans_exported(len(spans), result is SpanExportResult.SUCCESS)
            return result

        def shutdown(self) -> None:
            self._inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return self._inner.force_flush(timeout_millis)

    def on_span_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        # The OTLP exporter returns only SUCCESS/FAILURE; the status code for the message comes from here.
        ledger.last_span_status = None if response.ok else response.status_code

    # Batches are serialized by the processor's export lock, so "last status" belongs to this export.
    session = requests.Session()
    session.hooks["response"].append(on_span_response)
    auth = base64.b64encode(f"{settings.public_key}:{settings.secret_key}".encode()).decode("ascii")
    # The SDK documents that a custom `span_exporter` gets none of its wiring: endpoint, auth and
    # timeout are set here, and `x-langfuse-ingestion-version: 4` for real-time processing on Langfuse v4.
    otlp = OTLPSpanExporter(
        endpoint=f"{settings.host}{_OTEL_PATH}",
        headers={"Authorization": f"Basic {auth}", "x-langfuse-ingestion-version": "4"},
        timeout=timeout_s,
        compression=Compression.Gzip,
        session=session,
    )

    def score_ids(request: httpx.Request) -> list[str] | None:
        if request.method != "POST" or not request.url.path.endswith(_SCORES_PATH):
            return None
        try:
            return [str(item["id"]) for item in json.loads(request.content)]
        except (ValueError, TypeError, KeyError):
            return None

    # Scores go through the SDK's REST client (POST /api/public/scores, batched, retried). A failure
    # there is only logged, so the answers are read off the HTTP client we hand the SDK. A request
    # first counts as failed and the response overwrites it; one that never gets an answer stays
    # "connection failed".
    def on_score_request(request: httpx.Request) -> None:
        if (ids := score_ids(request)) is not None:
            ledger.scores_answered(ids, "connection failed")

    def on_score_response(response: httpx.Response) -> None:
        if (ids := score_ids(response.request)) is None:
            return
        if response.status_code == 207:
            response.read()
            try:
                rejected = int(response.json().get("rejected", len(ids)))
            except (ValueError, TypeError, AttributeError):
                rejected = len(ids)
            ledger.scores_answered(ids, None, rejected=rejected)
        elif response.is_success:
            ledger.scores_answered(ids, None)
        else:
            ledger.scores_answered(ids, f"HTTP {response.status_code}")

    http = httpx.Client(
        timeout=timeout_s, event_hooks={"request": [on_score_request], "response": [on_score_response]}
    )
    # Our own provider: never the process-global one, which the SDK would otherwise create or share.
    # Sampling and attribute limits are fixed rather than read from OTEL_TRACES_SAMPLER and
    # OTEL_*ATTRIBUTE* variables, which could drop traces or truncate inputs and outputs.
    unlimited = SpanLimits.UNSET
    provider = TracerProvider(
        resource=Resource({"service.name": "slm-swap"}),
        id_generator=_id_generator(),
        sampler=ALWAYS_ON,
        span_limits=SpanLimits(max_span_attributes=unlimited, max_span_attribute_length=unlimited),
    )
    # The SDK keeps one client's resources (provider, exporter, threads) per public key per process, and
    # hands them to every later client with that key, whatever its host or exporter: a second tracer for
    # the same key in one process would send through the first one's. Refuse it rather than misroute.
    with _OPEN_LOCK:
        if settings.public_key in _OPENED_KEYS:
            raise RuntimeError(
                "a Langfuse client for this public key was already opened in this process; the SDK keeps "
                "one per key, so open one tracer per process (or use another key)"
            )
        _OPENED_KEYS.add(settings.public_key)
    client = Langfuse(
        public_key=settings.public_key,
        secret_key=settings.secret_key,
        # base_url, not host: LANGFUSE_BASE_URL in the environment would override `host`.
        base_url=settings.host,
        timeout=timeout_s,
        httpx_client=http,
        flush_at=flush_at,
        flush_interval=flush_interval_s,
        environment=settings.environment,
        sample_rate=1.0,
        tracer_provider=provider,
        span_exporter=CountingExporter(otlp),
        # The SDK's own spans (events) and ours, which come from our own tracer's scope.
        should_export_span=lambda span: (
            is_default_export_span(span)
            or (span.instrumentation_scope is not None and span.instrumentation_scope.name == _SCOPE)
        ),
    )
    return client, provider, http
