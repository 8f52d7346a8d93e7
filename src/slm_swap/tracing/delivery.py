"""Delivery accounting: whether the trace items handed to the Langfuse SDK reached the server.

The SDK never reports a failed delivery: `flush()` returns nothing and a 401 is only logged. So every
span and score handed to it is counted in a `Ledger`, and so is every answer of the server, read off
the span exporter and the HTTP clients the SDK is given (`counting_exporter`, `span_status_hook`,
`score_hooks`). `Ledger.report()` turns the counts into the `DeliveryReport` a tracer's `flush()`
returns. An SDK error is a delivery failure (`guard`), never a changed result.

Importing this module is cheap: OpenTelemetry, httpx and requests are imported only by the functions
that wire the counting into them.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx
    import requests
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export import SpanExporter

SCORES_PATH = "/api/public/scores"
_REJECTED = "rejected by the server (HTTP 207)"


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


class Ledger:
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


@contextmanager
def guard(ledger: Ledger) -> Iterator[None]:
    """Runs SDK code; an exception from it is counted as a delivery failure instead of propagating, as
    tracing must never change a run's outcome."""
    try:
        yield
    except Exception as exc:
        ledger.error(f"tracing error ({type(exc).__name__})")


def counting_exporter(inner: SpanExporter, ledger: Ledger) -> SpanExporter:
    """`inner`, counting in `ledger` each batch of spans it exported or failed to export."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class CountingExporter(SpanExporter):
        """The SDK's batch processor calls this with each batch; the result is what we count."""

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            ledger.last_span_status = None
            try:
                result = inner.export(spans)
            except Exception:
                result = SpanExportResult.FAILURE
            ledger.spans_exported(len(spans), result is SpanExportResult.SUCCESS)
            return result

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return CountingExporter()


def span_status_hook(ledger: Ledger) -> Callable[..., None]:
    """A `requests` response hook for the span exporter's session: the OTLP exporter returns only
    SUCCESS/FAILURE, so the status code for the message is taken from here. Batches are serialized by
    the span processor's export lock, so the last status belongs to the export in progress."""

    def on_span_response(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        ledger.last_span_status = None if response.ok else response.status_code

    return on_span_response


def score_hooks(ledger: Ledger) -> dict[str, list[Callable[..., Any]]]:
    """httpx event hooks for the HTTP client the SDK sends scores with (POST /api/public/scores, batched
    and retried; a failure there is only logged). A request first counts its scores as failed and the
    response overwrites that, so one that never gets an answer stays "connection failed"."""

    def score_ids(request: httpx.Request) -> list[str] | None:
        if request.method != "POST" or not request.url.path.endswith(SCORES_PATH):
            return None
        try:
            return [str(item["id"]) for item in json.loads(request.content)]
        except (ValueError, TypeError, KeyError):
            return None

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

    return {"request": [on_score_request], "response": [on_score_response]}
