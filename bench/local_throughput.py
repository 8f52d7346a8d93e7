"""Benchmark: the local backend on the embedded SmolLM2, on this machine's CPU.

1. Harness vs a bare `model.generate` loop over the very same batches (goal: harness >= 0.95x).
   The harness adds chat-template rendering, scoring, journaling (fsync per example) and bookkeeping.
2. Batch size 8 vs 1 (goal: >= 4x).

Every run generates exactly --new-tokens tokens per example (EOS is ignored here) so that the
comparisons measure the code, not how long the model happens to talk.

    python bench/local_throughput.py [--examples 8] [--new-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from slm_swap.backends.local import LocalBackend, LocalConfig, chat_text
from slm_swap.data.prepare import prepare
from slm_swap.data.sources import sample_path, xlam_source
from slm_swap.data.splits import SplitSizes
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.files import read_examples
from slm_swap.local.models import pull
from slm_swap.protocol import Request
from slm_swap.runtime import Runtime
from slm_swap.tracing import NullTracer

CACHE = Runtime.from_env(os.environ).cache_dir  # fetched wheels, and the embedded model built from one


class FixedLength(LocalBackend):
    """The real backend, told to generate exactly max_new_tokens (min_new_tokens = max)."""

    def generate_texts(self, texts, max_new_tokens=None, *, constraints=()):  # type: ignore[no-untyped-def]
        self.engine.llm.generation_config.min_new_tokens = self.max_new_tokens
        return super().generate_texts(texts, max_new_tokens, constraints=constraints)


def bare_loop(backend: LocalBackend, batches: list[list[str]], new_tokens: int) -> float:
    import torch

    tok, model = backend.engine.tokenizer, backend.engine.llm
    encoded = [tok(b, return_tensors="pt", padding=True, add_special_tokens=False) for b in batches]
    start = time.perf_counter()
    with torch.inference_mode():
        for enc in encoded:
            model.generate(
                **enc,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
            )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=256)
    args = parser.parse_args()
    model_dir = pull(CACHE / "models" / "SmolLM2-135M-Instruct", cache=CACHE).path
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        prepare(xlam_source(sample_path()), out / "data", SplitSizes(0, 0, args.examples))
        split = out / "data" / "toolcall" / "test.jsonl"
        examples = read_examples(split)

        def harness(backend: LocalBackend, name: str) -> float:
            start = time.perf_counter()
            meta = run_meta("toolcall", "test", split, backend)
            evaluate(examples, backend, meta, out / f"{name}.json", NullTracer(), force=True)
            return time.perf_counter() - start

        b8 = FixedLength(LocalConfig(model_dir, batch_size=8, max_new_tokens=args.new_tokens))
        b8.complete(examples[:1])  # warm-up
        requests = [Request.of(e) for e in examples]
        batches = [
            [chat_text(b8.engine.tokenizer, list(r.messages)) for r in b] for b in b8.schedule(requests)
        ]
        # Interleaved and repeated, best of two, so neither side profits from running second.
        bare = [bare_loop(b8, batches, args.new_tokens) for _ in range(1)]
        runs = [harness(b8, "h8a")]
        bare.append(bare_loop(b8, batches, args.new_tokens))
        runs.append(harness(b8, "h8b"))
        b1 = FixedLength(LocalConfig(model_dir, batch_size=1, max_new_tokens=args.new_tokens))
        one = harness(b1, "h1")
        tokens = args.examples * args.new_tokens
        print(f"{args.examples} examples x {args.new_tokens} new tokens, SmolLM2-135M float32 on CPU")
        for name, seconds in (("bare b8", min(bare)), ("harness b8", min(runs)), ("harness b1", one)):
            print(f"{name:>11}: {seconds:7.2f} s  ({tokens / seconds:6.1f} generated tokens/s)")
        print(f"harness/bare throughput at batch 8: {min(bare) / min(runs):.3f}x (goal >= 0.95x)")
        print(f"batch 8 vs batch 1: {one / min(runs):.2f}x (goal >= 4x)")


if __name__ == "__main__":
    main()
