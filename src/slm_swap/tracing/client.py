"""The Langfuse SDK client and its OpenTelemetry provider, built so that every delivery is counted and
nothing in the environment changes what is sent or where.

Everything goes through the SDK's and OpenTelemetry's public APIs: our own TracerProvider (never the
process-global one) and span exporter (the SDK's `tracer_provider` and `span_exporter` parameters, the
exporter's auth and ingestion headers set as the SDK documents for a custom exporter), and our own tracer
whose scope the SDK is told to export (`should_export_span`). The SDK keeps one client per public key
per process, so one client is opened per process and key (a second is refused, not misrouted).

Neither key is ever printed, logged or put in an error message here. (The public key is the
OpenTelemetry instrumentation scope's `public_key` attribute, which the SDK's span processor requires;
that is how Langfuse routes the data.)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slm_swap import __version__
from slm_swap.tracing.config import LangfuseSettings
from slm_swap.tracing.delivery import Ledger, counting_exporter, score_hooks, span_status_hook

if TYPE_CHECKING:
    import httpx
    from langfuse import Langfuse
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer as OtelTracer

_OTEL_PATH = "/api/public/otel/v1/traces"
_SCOPE = "slm-swap"  # the instrumentation scope of the spans slm-swap starts itself
_OPENED_KEYS: set[str] = set()
_OPEN_LOCK = threading.Lock()


@dataclass(frozen=True)
class SdkClient:
    """An SDK client with the provider and HTTP client it owns, and `tracer`: our own OpenTelemetry
    tracer on that provider, whose spans the SDK exports and which can start spans at a given time
    (the SDK's start_observation() always stamps "now")."""

    langfuse: Langfuse
    provider: TracerProvider
    http: httpx.Client
    tracer: OtelTracer

    def close(self) -> None:
        """Flushes and stops the SDK's threads, the provider and the HTTP client (may raise)."""
        self.langfuse.shutdown()
        self.provider.shutdown()
        self.http.close()


def open_client(
    settings: LangfuseSettings, ledger: Ledger, *, timeout_s: int, flush_at: int, flush_interval_s: float
) -> SdkClient:
    """An SDK client for `settings` that reports every delivery outcome to `ledger`. Everything the SDK
    would otherwise read from the environment and that changes what is sent or where (host, sampling,
    attribute limits, timeouts, batching, environment) is passed explicitly.

    Raises `RuntimeError` when a client for this public key was already opened in this process.
    """
    import base64

    import httpx
    import requests
    from langfuse import Langfuse, is_default_export_span
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    session = requests.Session()
    session.hooks["response"].append(span_status_hook(ledger))
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
    # Scores go through the SDK's REST client, on this HTTP client; its hooks read the answers.
    http = httpx.Client(timeout=timeout_s, event_hooks=score_hooks(ledger))
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
        span_exporter=counting_exporter(otlp, ledger),
        # The SDK's own spans (events) and ours, which come from our own tracer's scope.
        should_export_span=lambda span: (
            is_default_export_span(span)
            or (span.instrumentation_scope is not None and span.instrumentation_scope.name == _SCOPE)
        ),
    )
    # Our own tracer on our own provider (public OpenTelemetry API): its spans carry this public key in
    # their scope, as the SDK's span processor requires, and `should_export_span` exports its scope.
    tracer = provider.get_tracer(_SCOPE, __version__, attributes={"public_key": settings.public_key})
    return SdkClient(client, provider, http, tracer)


def _id_generator() -> Any:
    """Trace and span ids from the OS. OpenTelemetry's default draws them from `random`, which anything
    in the process may seed (the trainer seeds it with its seed): ids would then repeat from run to run,
    and Langfuse would merge those runs."""
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class OsIds(IdGenerator):
        def generate_span_id(self) -> int:
            return int.from_bytes(os.urandom(8), "big") or 1

        def generate_trace_id(self) -> int:
            return int.from_bytes(os.urandom(16), "big") or 1

    return OsIds()
