"""A stand-in OpenAI / Azure OpenAI chat-completions server for tests (a fake: no model behind it).

It listens on 127.0.0.1 in a background thread and speaks the wire protocol the real `openai` client
uses, on four paths:

- `/v1/chat/completions` (OpenAI and compatible servers), Bearer auth;
- `/openai/deployments/<name>/chat/completions?api-version=...` (Azure), `api-key` header;
- `/models/chat/completions?api-version=...` (Azure's preview model-inference form), `api-key` header;
- `/openai/v1/chat/completions` (Azure's v1 API: no api-version, the deployment as `model`), `api-key`.

On the Azure paths, `entra_token` (when set) is accepted as `Authorization: Bearer <token>` instead of
the key, as Azure accepts a Microsoft Entra ID token.

Answers come from `answers` (user message → text, or a whole assistant message as a dict: `tool_calls`,
as a model answers under the native protocol). `faults` can script, per user message, what the
first attempts get: an HTTP status (with headers, e.g. Retry-After), a hang, a reset connection, or a
body that is not JSON. `usage` can script, per user message, the answer's `usage` member as raw JSON text
(`NaN`, `1e400`: what `json.dumps` cannot write); `basic_auth` ("user:password") is accepted on the
OpenAI path as HTTP Basic authentication instead of the key. Every request is recorded.

It also speaks the Batch API, on OpenAI's paths (`/v1/files`: a multipart upload; `/v1/files/<id>/content`;
`/v1/batches`, `/v1/batches/<id>`) and Azure's (the same under `/openai/`, with api-version and the
`api-key` header). A batch stays `in_progress` for `batch_polls` retrieves, then is processed: each line is
answered as the chat endpoint above answers it (`answers`, usage per row), except the user messages in
`batch_errors`, whose lines go to the error file (an HTTP status and error code, or with status None a
line that failed without a response). Azure lines must name the deployment as their model. `batch_end`
scripts how a batch ends: completed, expired with half its lines answered, or failed as a whole.
"""

from __future__ import annotations

import base64
import contextlib
import email.parser
import email.policy
import json
import re
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest


@dataclass(frozen=True)
class Fault:
    """What one attempt gets instead of an answer."""

    kind: str  # "status" | "hang" | "reset" | "garbage"
    status: int = 500
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Recorded:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]
    at: float


class FakeOpenAIServer:
    def __init__(self, *, api_key: str = "test-key", deployment: str = "gpt-test", delay_s: float = 0.0):
        self.api_key = api_key
        self.deployment = deployment
        self.delay_s = delay_s
        self.answers: dict[str, str | dict[str, Any]] = {}
        self.default_answer = "I cannot help with that."
        self.faults: dict[str, list[Fault]] = {}
        self.usage: dict[str, str] = {}  # user message -> the answer's `usage` as raw JSON text
        self.basic_auth: str | None = None  # "user:password", accepted instead of the key
        self.entra_token: str | None = None  # Azure paths: a bearer token accepted instead of the key
        self.files: dict[str, bytes] = {}  # Batch API: uploaded and produced files, by id
        self.batches: dict[str, dict[str, Any]] = {}  # Batch API: batches, by id
        self.batch_polls = 0  # retrieves a batch answers `in_progress` before it is processed
        self.batch_errors: dict[str, tuple[int | None, str]] = {}  # user message -> (status, error code)
        self.batch_end = "completed"  # or "expired" (half the lines answered) or "failed" (refused whole)
        self.requests: list[Recorded] = []
        self.attempts: defaultdict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def azure_root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def completion(self, body: dict[str, Any], completion_id: str, *, usage: bool = True) -> dict[str, Any]:
        """The chat completion this server answers `body` with (its usage counts words)."""
        user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
        answer = self.answers.get(user, self.default_answer)
        message = answer if isinstance(answer, dict) else {"content": answer}
        text = message.get("content") or json.dumps(message.get("tool_calls", ""))
        payload: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model", "fake"),
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                    "message": {"role": "assistant", "content": None, **message},
                }
            ],
        }
        if usage:
            payload["usage"] = {
                "prompt_tokens": len(user.split()),
                "completion_tokens": len(text.split()),
                "total_tokens": len(user.split()) + len(text.split()),
            }
        return payload

    # --- the Batch API (called under the lock) -------------------------------------------------------

    def upload(self, raw: bytes, content_type: str) -> dict[str, Any]:
        """A multipart upload (`file`, `purpose`) kept as a file."""
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
        )
        fields = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
        assert fields["purpose"].get_content().strip() == "batch"
        data = fields["file"].get_payload(decode=True)
        file_id = f"file-{len(self.files)}"
        self.files[file_id] = data
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": 0, "filename": "in.jsonl",
                "purpose": "batch", "status": "processed"}  # fmt: skip

    def create_batch(self, body: dict[str, Any], *, azure: bool) -> dict[str, Any]:
        assert body["completion_window"] == "24h"
        assert body["endpoint"] == ("/chat/completions" if azure else "/v1/chat/completions")
        lines = [json.loads(line) for line in self.files[body["input_file_id"]].decode().splitlines()]
        batch_id = f"batch_{len(self.batches)}"
        self.batches[batch_id] = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"], "errors": None,
            "input_file_id": body["input_file_id"], "completion_window": "24h", "status": "validating",
            "created_at": 0, "output_file_id": None, "error_file_id": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "polls": 0, "azure": azure,
        }  # fmt: skip
        return self._shown(batch_id)

    def retrieve_batch(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        if batch["status"] not in ("completed", "failed"):
            batch["polls"] += 1
            if batch["polls"] > self.batch_polls:
                self._process(batch)
            else:
                batch["status"] = "in_progress"
        return self._shown(batch_id)

    def _process(self, batch: dict[str, Any]) -> None:
        """Answers each line as the chat endpoint would; scripted failures go to the error file."""
        if self.batch_end == "failed":
            error = {"code": "invalid_request", "message": "the model takes no batches", "line": 1}
            batch |= {"status": "failed", "errors": {"object": "list", "data": [error]}}
            return
        output, errors = [], []
        given = self.files[batch["input_file_id"]].decode().splitlines()
        answered = given if self.batch_end == "completed" else given[: len(given) // 2]
        for n, line in enumerate(answered):
            request = json.loads(line)
            body = request["body"]
            user = next((m["content"] for m in body["messages"] if m.get("role") == "user"), "")
            expected = "/chat/completions" if batch["azure"] else "/v1/chat/completions"
            assert request["method"] == "POST" and request["url"] == expected, request
            failure = self.batch_errors.get(user)
            if batch["azure"] and body.get("model") != self.deployment:
                failure = (404, "DeploymentNotFound")
            result: dict[str, Any] = {
                "id": f"batch_req_{n}",
                "custom_id": request["custom_id"],
                "error": None,
            }
            if failure is None:
                response = self.completion(body, f"chatcmpl-batch-{n}")
                result["response"] = {"status_code": 200, "request_id": f"req_{n}", "body": response}
                output.append(result)
                continue
            status, code = failure
            if status is None:
                result |= {"response": None, "error": {"code": code, "message": f"{code} (scripted)"}}
            else:
                error = {
                    "error": {"code": code, "message": f"{code} (scripted)", "type": "invalid_request_error"}
                }
                result["response"] = {"status_code": status, "request_id": f"req_{n}", "body": error}
            errors.append(result)
        for name, lines in (("output_file_id", output), ("error_file_id", errors)):
            if lines:
                file_id = f"file-{len(self.files)}"
                self.files[file_id] = "".join(json.dumps(line) + "\n" for line in lines).encode()
                batch[name] = file_id
        batch["status"] = self.batch_end
        batch["request_counts"] |= {"completed": len(output), "failed": len(errors)}

    def _shown(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if k not in ("polls", "azure")}

    @property
    def batch_creates(self) -> int:
        return sum(1 for r in self.requests if r.path.endswith("/batches"))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                server.requests.append(
                    Recorded(url.path, parse_qs(url.query), dict(self.headers), {}, time.monotonic())
                )
                self._batch_api("GET", url.path, parse_qs(url.query), b"")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                url = urlparse(self.path)
                if _BATCH_API.match(url.path):
                    upload = self.headers.get("Content-Type", "").startswith("multipart/form-data")
                    recorded = {"multipart": True} if upload else json.loads(raw or b"{}")
                    server.requests.append(
                        Recorded(
                            url.path, parse_qs(url.query), dict(self.headers), recorded, time.monotonic()
                        )
                    )
                    return self._batch_api("POST", url.path, parse_qs(url.query), raw)
                body = json.loads(raw or b"{}")
                with server._lock:
                    server.requests.append(
                        Recorded(url.path, parse_qs(url.query), dict(self.headers), body, time.monotonic())
                    )
                    server._active += 1
                    server.max_active = max(server.max_active, server._active)
                try:
                    self._answer(url.path, parse_qs(url.query), body)
                finally:
                    with server._lock:
                        server._active -= 1

            def _json(
                self, status: int, payload: Any, headers: dict[str, str] | None = None, raw: str = ""
            ) -> None:
                """Sends `payload`; `raw`, if given, is JSON text sent as written as the object's last
                members."""
                text = json.dumps(payload)
                data = (text[:-1] + ", " + raw + "}" if raw else text).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def _answer(self, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> None:
                v1 = path == "/openai/v1/chat/completions"
                deployments = path.startswith("/openai/deployments/")
                if deployments or v1 or path == "/models/chat/completions":
                    entra = server.entra_token is not None and self.headers.get("Authorization") == (
                        f"Bearer {server.entra_token}"
                    )
                    if self.headers.get("api-key") != server.api_key and not entra:
                        return self._json(401, {"error": {"code": "401", "message": "Access denied"}})
                    if "api-version" not in query and not v1:
                        return self._json(
                            400, {"error": {"code": "MissingApiVersion", "message": "no api-version"}}
                        )
                    name = path.split("/")[3] if deployments else body.get("model")
                    if name != server.deployment:
                        return self._json(
                            404,
                            {
                                "error": {
                                    "code": "DeploymentNotFound",
                                    "message": "The API deployment does not exist.",
                                }
                            },
                        )
                elif path == "/v1/chat/completions":
                    accepted = {f"Bearer {server.api_key}"}
                    if server.basic_auth is not None:
                        accepted.add("Basic " + base64.b64encode(server.basic_auth.encode()).decode())
                    if self.headers.get("Authorization") not in accepted:
                        return self._json(
                            401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}
                        )
                else:
                    return self._json(404, {"error": {"message": f"no route {path}"}})
                user = next((m["content"] for m in body.get("messages", []) if m.get("role") == "user"), "")
                with server._lock:
                    attempt = server.attempts[user]
                    server.attempts[user] += 1
                faults = server.faults.get(user, [])
                if attempt < len(faults):
                    return self._fault(faults[attempt])
                if server.delay_s:
                    time.sleep(server.delay_s)
                raw = server.usage.get(user)
                payload = server.completion(body, f"chatcmpl-{attempt}", usage=raw is None)
                self._json(200, payload, raw="" if raw is None else f'"usage": {raw}')

            def _batch_api(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> None:
                """Files and batches, on OpenAI's paths or Azure's (`/openai/...`, api-version)."""
                route = _BATCH_API.match(path)
                assert route is not None
                if route.group("azure"):
                    if self.headers.get("api-key") != server.api_key:
                        return self._json(401, {"error": {"code": "401", "message": "Access denied"}})
                    if "api-version" not in query:
                        return self._json(400, {"error": {"code": "MissingApiVersion", "message": "none"}})
                elif self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._json(
                        401, {"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}
                    )
                kind, item, content = route.group("kind"), route.group("id"), route.group("content")
                with server._lock:
                    if kind == "files" and method == "POST" and item is None:
                        return self._json(200, server.upload(raw, self.headers.get("Content-Type", "")))
                    if kind == "files" and method == "GET" and content and item in server.files:
                        return self._bytes(server.files[item])
                    if kind == "batches" and method == "POST" and item is None:
                        return self._json(
                            200, server.create_batch(json.loads(raw), azure=bool(route.group("azure")))
                        )
                    if kind == "batches" and method == "GET" and item in server.batches:
                        return self._json(200, server.retrieve_batch(item))
                return self._json(404, {"error": {"message": f"no {kind} {item}", "code": "not_found"}})

            def _bytes(self, data: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self, fault: Fault) -> None:
                if fault.kind == "status":
                    return self._json(
                        fault.status, fault.body or {"error": {"message": "fault"}}, fault.headers
                    )
                if fault.kind == "hang":
                    time.sleep(fault.seconds)
                    with contextlib.suppress(BrokenPipeError):  # the client gave up waiting, as it should
                        self._json(200, {"late": True})
                    return None
                if fault.kind == "reset":
                    # SO_LINGER 0: closing sends a TCP reset instead of a clean shutdown.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return None
                data = b"<html>502 Bad Gateway</html>"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None

        return Handler


_BATCH_API = re.compile(
    r"^(?:/v1|(?P<azure>/openai))/(?P<kind>files|batches)(?:/(?P<id>[^/]+)(?P<content>/content)?)?$"
)


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
