"""The Mastra example (examples/mastra) against `slm-swap serve` on the embedded model, for real: Node 22
from the npm registry, @mastra/core, a tool round trip over HTTP.

Marked `network`: it needs the embedded model (built from its PyPI wheel) and the example's npm packages
(`make setup` installs them).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from slm_swap.local.engine import Engine
from slm_swap.serve import Batcher

from .serving import Running

pytestmark = pytest.mark.network

EXAMPLE = Path(__file__).parents[1] / "examples" / "mastra"


def test_mastra_agent_calls_a_tool_and_answers(embedded_model: Path) -> None:
    node = EXAMPLE / "node_modules" / ".bin" / "node"
    assert node.is_file(), "run `make setup` (it installs the example's npm packages)"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("v22."), version
    running = Running(Batcher(Engine(embedded_model, {}), max_batch=8), api_key="mastra-key")
    before = len(running.batcher.batches)
    try:
        env = {
            **os.environ,
            "SLM_SWAP_URL": running.url + "/v1",
            "SLM_SWAP_MODEL": embedded_model.name,
            "SLM_SWAP_API_KEY": "mastra-key",
        }
        done = subprocess.run(
            [node, "agent.mjs", "What is the weather in Paris right now?"],
            cwd=EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        requests = len(running.batcher.batches) - before
        running.stop()
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print("\nmastra:", json.dumps(result)[:600])
    assert result["toolCalls"] and all(c["name"] == "get_weather" for c in result["toolCalls"])
    assert all(isinstance(c["args"]["city"], str) and c["args"]["city"] for c in result["toolCalls"])
    assert result["toolResults"][0]["result"]["temperature_c"] == 21  # the tool ran on the model's call
    assert result["steps"] == 2 and requests == 2  # a second turn, carrying the tool results
    assert isinstance(result["answer"], str) and result["answer"].strip()
