"""What a new user meets first: commands that must work with no optional settings at all."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_starts_without_any_langfuse_setting_and_says_tracing_is_off(
    workspace: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LANGFUSE_DISABLED")
    port = free_port()
    argv = [sys.executable, "-m", "slm_swap", "serve", "--model-path", str(tiny_model), "--port", str(port)]
    process = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": tiny_model.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            timeout=60,
        )
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["role"] == "assistant"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    assert "tracing is off (LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST are not set)" in err


def test_serve_still_refuses_a_half_configured_langfuse(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from slm_swap.errors import ConfigError
    from slm_swap.tracing import tracer_if_configured

    with pytest.raises(ConfigError, match="LANGFUSE_SECRET_KEY"):
        tracer_if_configured({"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_HOST": "http://127.0.0.1:1"})
    assert tracer_if_configured({}).tracer is None
    assert "LANGFUSE_DISABLED=1" in tracer_if_configured({"LANGFUSE_DISABLED": "1"}).says
