"""The hosted model's local stand-in for `run`, when no hosted endpoint is configured: the SLM served by
`slm-swap serve --constrained` in a child process, asked through the same hosted client as any
OpenAI-compatible endpoint."""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

from slm_swap import settings
from slm_swap.backends.config import HostedConfig
from slm_swap.errors import ConfigError, SlmSwapError
from slm_swap.local.stops import RULE

Say = Callable[[str], None]


class StandIn:
    """The hosted model's local stand-in: `slm-swap serve --constrained` on the SLM, started in a child
    process on 127.0.0.1 and stopped afterwards, reached through the same hosted client as any
    OpenAI-compatible endpoint. A fresh random key guards it (passed in the environment)."""

    def __init__(self, model_path: Path, port: int, log: Path, environment: Mapping[str, str]):
        self.model_path = model_path
        self.environment = environment
        self.port = port
        self.log = log
        self.key = secrets.token_urlsafe(16)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def description(self) -> str:
        return (
            f"local stand-in: {self.model_path.name} served by `slm-swap serve --constrained` "
            "(grammar-constrained decoding) on 127.0.0.1, through the OpenAI-compatible client"
        )

    def config(self, base: HostedConfig) -> HostedConfig:
        """The hosted configuration for the stand-in: `base`'s (the run's token limit, concurrency and
        retries) with the stand-in's endpoint and key. The grammar is the server's (`serve
        --constrained`); the run's identity is the checkpoint served and its decoding, not the port it
        happens to use."""
        from slm_swap.identity import checkpoint_digest

        # A CPU model answers a batch of eight in a minute or more: the client waits accordingly.
        return replace(
            base,
            timeout=max(base.timeout, 900.0),
            kind="openai",
            base_url=self.base_url,
            api_key=self.key,
            model=self.model_path.name,
            azure=None,
            served={
                "stand_in": checkpoint_digest(self.model_path),
                "decoding": f"greedy, grammar-constrained, {RULE}",
            },
        )

    def start(self, say: Say) -> None:
        if self.process is not None:
            return
        import httpx

        try:
            httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
        except httpx.TransportError:
            pass
        else:
            raise ConfigError(
                f"port {self.port} is already in use, so the hosted stand-in cannot start there\n"
                f"  fix: pass {settings.STANDIN_PORT} with a free port"
            )
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "slm_swap", "serve", "--constrained", "--port", str(self.port)]
        argv += ["--model-path", str(self.model_path), "--max-batch", "8"]
        env = {**self.environment, "SLM_SWAP_API_KEY": self.key}  # serve's settings.SERVE_API_KEY
        say(f"starting the hosted stand-in on port {self.port} (log: {self.log})")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SlmSwapError(f"the hosted stand-in exited ({self.process.returncode}); see {self.log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SlmSwapError(f"the hosted stand-in did not start within 300 s; see {self.log}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
