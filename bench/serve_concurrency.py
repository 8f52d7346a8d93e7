"""Benchmark: `slm-swap serve` on the embedded SmolLM2 answering 32 concurrent clients (batched into
shared generate calls) vs the same 32 requests sent one at a time, with the real openai client over HTTP.

    python bench/serve_concurrency.py [--clients 32] [--max-tokens 32]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from slm_swap.local.engine import Engine
from slm_swap.local.models import pull
from slm_swap.runtime import Runtime
from slm_swap.serve import Batcher

sys.path.insert(0, str(Path(__file__).parents[1]))
from tests.serving import Running

CACHE = Runtime.from_env(os.environ).cache_dir  # fetched wheels, and the embedded model built from one


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    model = pull(CACHE / "models" / "SmolLM2-135M-Instruct", cache=CACHE).path
    running = Running(Batcher(Engine(model, {}), max_batch=8), api_key=None)
    client = openai.OpenAI(base_url=running.url + "/v1", api_key="none", max_retries=0, timeout=600)
    questions = [f"Name a fact about the number {i}." for i in range(args.clients)]

    def ask(question: str) -> int:
        reply = client.chat.completions.create(
            model=model.name,
            messages=[{"role": "user", "content": question}],
            max_tokens=args.max_tokens,
        )
        assert reply.usage is not None
        return reply.usage.completion_tokens

    try:
        ask("warm up")
        start = time.perf_counter()
        one_by_one = [ask(q) for q in questions]
        serial = time.perf_counter() - start
        before = len(running.batcher.batches)
        start = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            together = list(pool.map(ask, questions))
        concurrent = time.perf_counter() - start
        sizes = running.batcher.batches[before:]
    finally:
        running.stop()
    print(
        f"{args.clients} requests, {sum(one_by_one)} / {sum(together)} tokens generated: one at a time "
        f"{serial:.1f} s, {args.clients} concurrent {concurrent:.1f} s (batches {sizes}) -> "
        f"{serial / concurrent:.2f}x faster in aggregate"
    )


if __name__ == "__main__":
    main()
