"""Reliability battery, part three: `serve` under load and abuse at once.

64 concurrent clients on loopback: valid requests (JSON-schema answers, which can be checked), malformed
JSON, oversize bodies (declared and chunked), wrong and missing keys, clients that hang up mid-stream and
clients that send their request slowly. Every valid request is answered correctly, every bad one gets its
4xx, and the server still answers afterwards. Request loops are bounded in count and time.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jsonschema
import pytest

from slm_swap.engine import Engine
from slm_swap.serve import MAX_BODY_BYTES, Batcher

from .serving import Running
from .test_serve import CHOICE_SCHEMA

KEY = "abuse-key"


@pytest.fixture(scope="module")
def server(tiny_model: Path) -> Iterator[Running]:
    running = Running(Batcher(Engine(tiny_model, {}), max_batch=8, max_wait_s=0.05), api_key=KEY)
    yield running
    running.stop()


def body(**extra: object) -> dict[str, object]:
    return {
        "model": "tiny-llama",
        "messages": [{"role": "user", "content": "Yes or no?"}],
        "max_tokens": 24,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "choice", "schema": CHOICE_SCHEMA},
        },
        **extra,
    }


def raw_request(
    url: str, payload: bytes, *, headers: dict[str, str], slow_s: float = 0.0, chunked: bool = False
) -> int:
    """Sends one POST over a plain socket (slowly, or chunked, as asked) and returns the status code."""
    host, port = url.removeprefix("http://").split(":")
    head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {len(payload)}\r\n"
    with socket.create_connection((host, int(port)), timeout=120) as sock:
        sock.sendall((head + "Connection: close\r\n\r\n").encode())
        if chunked:
            piece = 1 << 16
            try:
                for i in range(0, len(payload), piece):
                    part = payload[i : i + piece]
                    sock.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer 413 and close before the whole body is sent
        else:
            step = max(1, len(payload) // 10)
            for i in range(0, len(payload), step):
                sock.sendall(payload[i : i + step])
                time.sleep(slow_s / 10)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_serve_under_load_and_abuse(server: Running) -> None:
    url = server.url
    auth = {"Authorization": f"Bearer {KEY}"}
    http = httpx.Client(timeout=120)

    def valid() -> tuple[str, bool]:
        reply = http.post(f"{url}/v1/chat/completions", json=body(), headers=auth)
        if reply.status_code != 200:
            return "valid", False
        content = reply.json()["choices"][0]["message"]["content"]
        try:
            jsonschema.validate(json.loads(content), CHOICE_SCHEMA)
        except (ValueError, jsonschema.ValidationError):
            return "valid", False
        return "valid", True

    def malformed() -> tuple[str, bool]:
        reply = http.post(
            f"{url}/v1/chat/completions", content=b'{"model": "tiny-llama", "messages": [', headers=auth
        )
        return "malformed", reply.status_code == 400

    def oversize() -> tuple[str, bool]:
        padding = "x" * (MAX_BODY_BYTES + 10)
        reply = http.post(f"{url}/v1/chat/completions", json=body(user=padding), headers=auth)
        return "oversize", reply.status_code == 413

    def oversize_chunked() -> tuple[str, bool]:
        payload = json.dumps(body(user="x" * (2 * MAX_BODY_BYTES))).encode()
        return "oversize chunked", raw_request(url, payload, headers=auth, chunked=True) == 413

    def wrong_key() -> tuple[str, bool]:
        reply = http.post(f"{url}/v1/chat/completions", json=body(), headers={"Authorization": "Bearer nope"})
        return "wrong key", reply.status_code == 401

    def missing_key() -> tuple[str, bool]:
        return "missing key", http.post(f"{url}/v1/chat/completions", json=body()).status_code == 401

    def hang_up_mid_stream() -> tuple[str, bool]:
        streamed = {**body(), "stream": True, "max_tokens": 200}
        streamed.pop("response_format")
        with http.stream("POST", f"{url}/v1/chat/completions", json=streamed, headers=auth) as reply:
            ok = reply.status_code == 200
            for _ in reply.iter_bytes():
                break  # one chunk, then the client goes away
        return "hang up mid-stream", ok

    def slow_sender() -> tuple[str, bool]:
        payload = json.dumps(body()).encode()
        return "slow sender", raw_request(url, payload, headers=auth, slow_s=1.5) == 200

    kinds: list[tuple[Callable[[], tuple[str, bool]], int]] = [
        (valid, 20),
        (malformed, 8),
        (oversize, 6),
        (oversize_chunked, 2),
        (wrong_key, 6),
        (missing_key, 6),
        (hang_up_mid_stream, 8),
        (slow_sender, 8),
    ]
    jobs = [job for job, count in kinds for _ in range(count)]
    assert len(jobs) == 64
    with ThreadPoolExecutor(64) as pool:
        outcomes = list(pool.map(lambda job: job(), jobs))
    failed = Counter(kind for kind, ok in outcomes if not ok)
    assert not failed, f"clients not answered as they should be: {dict(failed)}"
    # Still serving afterwards, and still correct.
    assert valid() == ("valid", True)
    assert http.get(f"{url}/health").status_code == 200
    http.close()
