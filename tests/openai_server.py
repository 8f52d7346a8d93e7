"""A stand-in OpenAI / Azure OpenAI chat-completions server for tests (a fake: no model behind it).

It listens on 127.0.0.1 in a background thread and speaks the wire protocol the real `openai` client
uses, on three paths:

- `/v1/chat/completions` (OpenAI and compatible servers), Bearer auth;
- `/openai/deployments/<name>/chat/completions?api-version=...` (Azure), `api-key` header;
- `/models/chat/completions?api-version=...` (Azure's preview model-inference form), `api-key` header.

Answers come from `answers` (user message → text, or a whole assistant message as a dict: `tool_calls`,
as a model answers under the native protocol). `faults` can script, per user message, what the
first attempts get: an HTTP status (with headers, e.g. Retry-After), a hang, a reset connection, or a
body that is not JSON. `usage` can script, per user message, the answer's `usage` member as raw JSON text
(`NaN`, `1e400`: what `json.dumps` cannot write); `basic_auth` ("user:password") is accepted on the
OpenAI path as HTTP Basic authentication instead of the key. Every request is recorded.
"""

from __future__ import annotations

import base64
import contextlib
import json
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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                url = urlparse(self.path)
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
                azure = path.startswith("/openai/deployments/") or path == "/models/chat/completions"
                if azure:
                    if self.headers.get("api-key") != server.api_key:
                        return self._json(401, {"error": {"code": "401", "message": "Access denied"}})
                    if "api-version" not in query:
                        return self._json(
                            400, {"error": {"code": "MissingApiVersion", "message": "no api-version"}}
                        )
                    name = path.split("/")[3] if path.startswith("/openai/") else body.get("model")
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
                answer = server.answers.get(user, server.default_answer)
                message = answer if isinstance(answer, dict) else {"content": answer}
                text = message.get("content") or json.dumps(message.get("tool_calls", ""))
                payload: dict[str, Any] = {
                    "id": f"chatcmpl-{attempt}",
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
                raw = server.usage.get(user)
                if raw is None:
                    payload["usage"] = {
                        "prompt_tokens": len(user.split()),
                        "completion_tokens": len(text.split()),
                        "total_tokens": len(user.split()) + len(text.split()),
                    }
                self._json(200, payload, raw="" if raw is None else f'"usage": {raw}')

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


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer().start()
    try:
        yield server
    finally:
        server.stop()
