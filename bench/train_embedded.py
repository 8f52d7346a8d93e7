"""Benchmark: fine-tune the embedded SmolLM2 on one track's train rows, 1 epoch, default hyperparameters,
on this machine's CPU (goal: <= 120 s for 32 rows), and evaluate before/after on held-out rows.

First, side by side on the same rows: the trainer's own step (`trainer.training_step`) against bare PEFT
forwards and backwards of the same LoRA model (goal: trainer <= 1.2x bare), alternating, twice.

    python bench/train_embedded.py [--track toolcall] [--rows 32] [--test-rows 8] [--step-batches 2]
                                   [--precision auto|float32|bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from slm_swap.backends.local import LocalBackend, LocalConfig
from slm_swap.data.prepare import prepare
from slm_swap.data.sources import sample_path, xlam_source
from slm_swap.data.splits import SplitSizes
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.files import read_examples
from slm_swap.local.models import pull
from slm_swap.runtime import Runtime
from slm_swap.scoring.metrics import CORE_METRICS
from slm_swap.tracing import NullTracer
from slm_swap.train.card import ADAPTER_CARD
from slm_swap.train.sft import TrainConfig, build_trainer

CACHE = Runtime.from_env(os.environ).cache_dir  # fetched wheels, and the embedded model built from one


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--track", default="toolcall")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--test-rows", type=int, default=8)
    parser.add_argument("--step-batches", type=int, default=2, help="batches timed side by side (0: skip)")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    args = parser.parse_args()
    print(f"this machine now: {matmul_rate():.0f} GFLOP/s (float32 matmul 2400x576 @ 576x1536, all threads)")
    model = pull(CACHE / "models" / "SmolLM2-135M-Instruct", cache=CACHE).path
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(xlam_source(sample_path()), data, SplitSizes(args.rows, 8, args.test_rows))
        split = data / args.track / "test.jsonl"
        config = TrainConfig(
            track=args.track,
            train=data / args.track / "train.jsonl",
            val=data / args.track / "val.jsonl",
            out=Path(tmp) / "adapter",
            model_path=model,
            save_steps=1000,
            precision=args.precision,
        )
        if args.step_batches:
            steps_side_by_side(config, args.step_batches)
        # End to end as a user runs it: the command, from a fresh interpreter to the written adapter.
        command = [sys.executable, "-m", "slm_swap", "train", "--track", args.track, "--train",
                   str(config.train), "--val", str(config.val), "--out", str(config.out), "--model-path",
                   str(model), "--save-steps", "1000", "--precision", args.precision]  # fmt: skip
        start = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "LANGFUSE_DISABLED": "1"}, capture_output=True)
        seconds = time.perf_counter() - start
        card = json.loads((config.out / ADAPTER_CARD).read_text())
        print(
            f"slm-swap train: {args.rows} rows, {card['steps']} steps, {seconds:.1f} s end to end "
            f"({card['wall_seconds']:.1f} s in trainer.train), engine {card['engine']}, {card['precision']}; "
            f"train loss {card['train_loss_first']:.3f} -> {card['train_loss_last']:.3f}, "
            f"val loss {card['val_loss']:.3f} (goal <= 120 s)"
        )
        if not args.test_rows:
            return
        examples = read_examples(split)
        summaries = {}
        for label, adapter in (("before", None), ("after", config.out)):
            backend = LocalBackend(LocalConfig(model, adapter=adapter, batch_size=8))
            run = evaluate(
                examples,
                backend,
                run_meta(args.track, "test", split, backend),
                Path(tmp) / f"{label}.json",
                NullTracer(),
            ).run
            summaries[label] = run.summary.metrics
        metrics = CORE_METRICS[args.track]
        print(f"held-out {args.track} test rows: {args.test_rows}")
        for label, summary in summaries.items():
            print(f"  {label:>6}: " + ", ".join(f"{m} {summary[m]:.3f}" for m in metrics))


def matmul_rate() -> float:
    """The machine's float32 matmul rate at a LoRA layer's shape: absolute timings are only comparable
    between runs at the same rate (a shared machine's speed drifts)."""
    import torch

    a, b = torch.randn(2400, 576), torch.randn(576, 1536)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(20):
        a @ b
    return 2 * 2400 * 576 * 1536 / ((time.perf_counter() - start) / 20) / 1e9


def steps_side_by_side(config: TrainConfig, batches: int) -> None:
    """The trainer's step against bare PEFT forwards and backwards of the same LoRA model on the very same
    rows, alternating, twice: bare on the trainer's own padding-free batch with the model's own loss, in
    the trainer's precision; and bare as one writes it by hand, on the rows padded to a batch (sdpa, the
    model's full-logits loss, float32)."""
    import dataclasses

    import torch

    built = build_trainer(replace(config, out=config.out.with_name("steps")))
    trainer, model = built.trainer, built.trainer.model
    base = model.get_base_model()
    attention = base.config._attn_implementation
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which is not run here
    size = config.batch_size
    rows = [[trainer.train_dataset[i] for i in range(b * size, (b + 1) * size)] for b in range(batches)]
    collator = trainer.data_collator
    padded = dataclasses.replace(collator, padding_free=False)
    chosen = [(collator(r), padded(r)) for r in rows]
    model.train()

    def trainer_step(batch: dict[str, Any], _: dict[str, Any]) -> None:
        trainer.training_step(model, dict(batch))

    def bare_padded(_: dict[str, Any], batch: dict[str, Any]) -> None:
        base.set_attn_implementation("sdpa")
        try:
            inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
            model(**inputs, labels=batch["labels"]).loss.backward()
        finally:
            base.set_attn_implementation(attention)

    def bare_same(batch: dict[str, Any], _: dict[str, Any]) -> None:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        model(**inputs, labels=batch["labels"]).loss.backward()

    steps = {"trainer": trainer_step, "bare PEFT, same batch": bare_same, "bare PEFT, padded": bare_padded}
    times: dict[str, list[float]] = {label: [] for label in steps}
    for _ in range(2):
        for batch, pad in chosen:
            for label, step in steps.items():
                start = time.perf_counter()
                # The training loop's precision, but for the by-hand padded step: float32 (padded sdpa
                # and full logits in bfloat16 are many times slower still on a CPU)
                with trainer.accelerator.autocast() if label != "bare PEFT, padded" else nullcontext():
                    step(batch, pad)
                times[label].append(time.perf_counter() - start)
                model.zero_grad()
    with torch.no_grad():
        answer = [int((b["labels"] != -100).sum()) for b, _ in chosen]
    print(
        f"step: {batches} batches of {size} rows, {[int(p['attention_mask'].sum()) for _, p in chosen]} "
        f"tokens ({[int(p['input_ids'].numel()) for _, p in chosen]} padded), {answer} with loss; "
        f"trainer: {built.batches}, attention {attention}, loss over answer positions only: "
        f"{trainer.compact_loss}; {built.precision}"
    )
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    for label, seconds in mean.items():
        share = mean["trainer"] / seconds
        ratio = f", trainer / this {share:.2f} (goal <= 1.2)" if label != "trainer" else ""
        print(f"  {label:>22}: {seconds:.2f} s{ratio}")


if __name__ == "__main__":
    main()
