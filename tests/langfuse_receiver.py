"""A stand-in Langfuse server for tests: records what the real SDK sends, answers as told.

It listens on 127.0.0.1 (a free port) in a background thread and understands what the v5 Python
SDK sends:

- spans: OTLP protobuf (gzip by default) on POST /api/public/otel/v1/traces, decoded into `Span`s;
- scores: a JSON list on POST /api/public/scores (what v5 uses), and, for older SDKs, the
  "score-create" events of a POST /api/public/ingestion batch; both end up in `scores`;
- datasets, as Langfuse's public API serves them: GET/POST /api/public/v2/datasets[/<name>], GET (paged)
  and POST /api/public/dataset-items, and GET /api/public/projects (the SDK asks for its project id
  when it runs an experiment). `add_dataset` fills one; `datasets` and `items` hold what is there.

Every request is kept with its headers and decompressed body (`requests`), so a test can check
authentication and that no secret leaked. `fail_with(401)` makes it answer errors.

Registered as a pytest plugin by tests/conftest.py (`pytest_plugins`), which makes the
`langfuse_receiver` fixture available to every test.
"""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

OTEL_PATH = "/api/public/otel/v1/traces"
SCORES_PATH = "/api/public/scores"
INGESTION_PATH = "/api/public/ingestion"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes  # decompressed
    query: dict[str, list[str]] = field(default_factory=dict)


STAMP = "2026-01-01T00:00:00.000Z"
PROJECT = {
    "id": "project-1",
    "name": "stand-in",
    "organization": {"id": "org-1", "name": "org"},
    "metadata": {},
}


@dataclass(frozen=True)
class Span:
    """One received OTLP span; ids are lowercase hex as Langfuse shows them."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    start_ns: int
    end_ns: int
    status_code: str  # "STATUS_CODE_UNSET" | "STATUS_CODE_OK" | "STATUS_CODE_ERROR"
    status_message: str
    scope_name: str
    scope_attributes: dict[str, Any] = field(default_factory=dict)

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attributes.get(key, default)

    def json_attr(self, key: str) -> Any:
        """An attribute the SDK JSON-encodes (input, output, usage, metadata values)."""
        value = self.attributes.get(key)
        return None if value is None else json.loads(value)

    def metadata(self, level: str = "observation") -> dict[str, Any]:
        """`langfuse.<level>.metadata.*` decoded into a dict (level: "observation" or "trace")."""
        prefix = f"langfuse.{level}.metadata."
        return {k[len(prefix) :]: json.loads(v) for k, v in self.attributes.items() if k.startswith(prefix)}


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as the plain Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def decode_spans(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_attributes = {kv.key: any_value(kv.value) for kv in scope.attributes}
            for s in scope_spans.spans:
                spans.append(
                    Span(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None,
                        attributes={kv.key: any_value(kv.value) for kv in s.attributes},
                        start_ns=s.start_time_unix_nano,
                        end_ns=s.end_time_unix_nano,
                        status_code=Status.StatusCode.Name(s.status.code),
                        status_message=s.status.message,
                        scope_name=scope.name,
                        scope_attributes=scope_attributes,
                    )
                )
    return spans


class LangfuseReceiver:
    """The recording server. Use as a context manager, or through the `langfuse_receiver` fixture."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.spans: list[Span] = []
        self.scores: list[dict[str, Any]] = []
        self._status: dict[str, int] = {}
        self._rejected_scores = 0
        self.datasets: dict[str, dict[str, Any]] = {}
        self.items: dict[str, list[dict[str, Any]]] = {}  # per dataset name, in order of creation
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def fail_with(self, status: int, endpoint: str | None = None) -> None:
        """Answer `status` on `endpoint` ("otel", "scores", "ingestion") or on all of them."""
        with self._lock:
            for name in (endpoint,) if endpoint else ("otel", "scores", "ingestion"):
                self._status[name] = status

    def reject_scores(self, count: int) -> None:
        """Answer score batches with HTTP 207, `count` of them rejected (as Langfuse does for bad ones)."""
        with self._lock:
            self._rejected_scores = count

    def add_dataset(self, name: str, items: list[dict[str, Any]]) -> None:
        """A dataset with `items` ({"id", "input", "expectedOutput", "metadata"?, "status"?} each)."""
        with self._lock:
            self._dataset(name)
            for item in items:
                self._item(name, item)

    def _dataset(self, name: str, description: str | None = None) -> dict[str, Any]:
        if name not in self.datasets:
            self.datasets[name] = {
                "id": f"ds-{len(self.datasets) + 1}",
                "name": name,
                "description": description,
                "metadata": None,
                "projectId": PROJECT["id"],
                "createdAt": STAMP,
                "updatedAt": STAMP,
            }
            self.items[name] = []
        return self.datasets[name]

    def _item(self, name: str, item: dict[str, Any]) -> dict[str, Any]:
        dataset = self._dataset(name)
        full = {
            "id": item.get("id") or f"item-{sum(map(len, self.items.values())) + 1}",
            "status": item.get("status", "ACTIVE"),
            "input": item.get("input"),
            "expectedOutput": item.get("expectedOutput"),
            "metadata": item.get("metadata"),
            "sourceTraceId": None,
            "sourceObservationId": None,
            "datasetId": dataset["id"],
            "datasetName": name,
            "createdAt": STAMP,
            "updatedAt": STAMP,
            "mediaReferences": [],
        }
        kept = [i for i in self.items[name] if i["id"] != full["id"]]  # the same id replaces the item
        self.items[name] = [*kept, full]
        return full

    def _datasets_api(self, request: Request) -> tuple[int, str, bytes] | None:
        def ok(body: Any) -> tuple[int, str, bytes]:
            return 200, "application/json", json.dumps(body).encode()

        missing = 404, "application/json", b'{"message": "Dataset not found"}'
        path, method = request.path, request.method
        with self._lock:
            if path == "/api/public/projects" and method == "GET":
                return ok({"data": [PROJECT]})
            if path == "/api/public/v2/datasets" and method == "POST":
                body = json.loads(request.body)
                return ok(self._dataset(body["name"], body.get("description")))
            if path.startswith("/api/public/v2/datasets/") and method == "GET":
                name = unquote(path.removeprefix("/api/public/v2/datasets/"))
                return ok(self.datasets[name]) if name in self.datasets else missing
            if path == "/api/public/dataset-items" and method == "POST":
                body = json.loads(request.body)
                return ok(self._item(body["datasetName"], body))
            if path == "/api/public/dataset-items" and method == "GET":
                name = request.query.get("datasetName", [""])[0]
                if name not in self.items:
                    return missing
                page = int(request.query.get("page", ["1"])[0])
                limit = int(request.query.get("limit", ["50"])[0])
                items = self.items[name]
                pages = max(1, -(-len(items) // limit))
                meta = {"page": page, "limit": limit, "totalItems": len(items), "totalPages": pages}
                return ok({"data": items[(page - 1) * limit : page * limit], "meta": meta})
        return None

    def spans_named(self, name: str) -> list[Span]:
        with self._lock:
            return [s for s in self.spans if s.name == name]

    def span(self, name: str) -> Span:
        """The one span called `name`."""
        found = self.spans_named(name)
        assert len(found) == 1, (
            f"expected one span {name!r}, got {len(found)}: {[s.name for s in self.spans]}"
        )
        return found[0]

    def start(self) -> LangfuseReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LangfuseReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, request: Request) -> tuple[int, str, bytes]:
        """Record `request`; return status, content type and body of the answer."""
        endpoint = {OTEL_PATH: "otel", SCORES_PATH: "scores", INGESTION_PATH: "ingestion"}.get(request.path)
        with self._lock:
            self.requests.append(request)
        if endpoint is None and (answered := self._datasets_api(request)) is not None:
            return answered
        with self._lock:
            status = self._status.get(endpoint or "", 0)
            rejected = self._rejected_scores
        if endpoint is None or request.method != "POST":
            return 404, "application/json", b'{"message": "not found"}'
        if status:
            return (
                status,
                "application/json",
                json.dumps({"message": f"receiver told to fail ({status})"}).encode(),
            )
        if endpoint == "otel":
            spans = decode_spans(request.body)
            with self._lock:
                self.spans.extend(spans)
            return 200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString()
        if endpoint == "scores":
            scores = json.loads(request.body)
            with self._lock:
                self.scores.extend(scores)
            if rejected:
                body = {
                    "accepted": len(scores) - rejected,
                    "rejected": rejected,
                    "errors": [{"message": "bad"}],
                }
                return 207, "application/json", json.dumps(body).encode()
            return 202, "application/json", b'{"message": "Accepted"}'
        batch = json.loads(request.body).get("batch", [])
        with self._lock:
            self.scores.extend(e["body"] for e in batch if e.get("type") == "score-create")
        successes = [{"id": e.get("id"), "status": 201} for e in batch]
        return 207, "application/json", json.dumps({"successes": successes, "errors": []}).encode()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's clients expect

            def _handle(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                encoding = (self.headers.get("Content-Encoding") or "").lower()
                body = gzip.decompress(raw) if encoding == "gzip" else raw
                body = zlib.decompress(body) if encoding == "deflate" else body
                path, _, query = self.path.partition("?")
                request = Request(self.command, path, dict(self.headers.items()), body, parse_qs(query))
                try:
                    status, content_type, answer = receiver._answer(request)
                except Exception as exc:  # a body we cannot decode is the test's failure, not a hang
                    status, content_type, answer = 400, "text/plain", repr(exc).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_POST = do_GET = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        return Handler


@pytest.fixture
def langfuse_receiver() -> Iterator[LangfuseReceiver]:
    """A running `LangfuseReceiver`, stopped after the test."""
    with LangfuseReceiver() as receiver:
        yield receiver
