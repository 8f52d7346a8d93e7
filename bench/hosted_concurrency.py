"""Benchmark: the hosted backend against a local OpenAI-compatible server that answers after 200 ms.

48 examples at concurrency 8 vs 1, measured side by side in one run (goal: >= 6.5x).

    python bench/hosted_concurrency.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.openai_server import FakeOpenAIServer

from slm_swap.backends.config import HostedConfig
from slm_swap.backends.hosted import HostedBackend
from slm_swap.data.prepare import prepare
from slm_swap.data.sources import sample_path, xlam_source
from slm_swap.data.splits import SplitSizes
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.files import read_examples
from slm_swap.tracing import NullTracer

N, DELAY = 48, 0.2


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        prepare(xlam_source(sample_path()), out / "data", SplitSizes(0, 0, N))
        split = out / "data" / "toolcall" / "test.jsonl"
        examples = read_examples(split)
        server = FakeOpenAIServer(delay_s=DELAY).start()
        for e in examples:
            server.answers[e.prompt] = e.completion
        try:
            seconds = {}
            for concurrency in (1, 8):
                backend = HostedBackend(
                    HostedConfig(
                        "openai", model="fake", base_url=server.openai_url, api_key="test-key",
                        timeout=30, max_retries=0, concurrency=concurrency,
                    )
                )  # fmt: skip
                start = time.perf_counter()
                run = evaluate(
                    examples,
                    backend,
                    run_meta("toolcall", "test", split, backend),
                    out / f"c{concurrency}.json",
                    NullTracer(),
                ).run
                seconds[concurrency] = time.perf_counter() - start
                assert run.summary.metrics["ast_match"] == 1.0
                print(
                    f"concurrency {concurrency}: {N} examples in {seconds[concurrency]:.2f} s "
                    f"({N / seconds[concurrency]:.1f} examples/s)"
                )
        finally:
            server.stop()
    print(f"speed-up, concurrency 8 vs 1: {seconds[1] / seconds[8]:.2f}x (goal >= 6.5x; ideal 8x)")


if __name__ == "__main__":
    main()
