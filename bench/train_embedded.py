"""Benchmark: fine-tune the embedded SmolLM2 on one track's train rows, 1 epoch, default hyperparameters,
on this machine's CPU (goal: <= 120 s for 32 rows), and evaluate before/after on held-out rows.

First, side by side on the same batches: the trainer's own step (`trainer.training_step`) against a bare
PEFT forward and backward of the same LoRA model (goal: trainer <= 1.2x bare), alternating, twice.

    python bench/train_embedded.py [--track toolcall] [--rows 32] [--test-rows 8] [--step-batches 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from slm_swap.backends.local import LocalBackend
from slm_swap.data.prepare import SplitSizes, prepare, sample_path, xlam_source
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.files import read_examples
from slm_swap.models import pull
from slm_swap.scoring.metrics import CORE_METRICS
from slm_swap.tracing import NullTracer
from slm_swap.train.sft import TrainConfig, build_trainer, train
from slm_swap.wheels import cache_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--track", default="toolcall")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--test-rows", type=int, default=8)
    parser.add_argument("--step-batches", type=int, default=2, help="batches timed side by side (0: skip)")
    args = parser.parse_args()
    model = pull(cache_dir() / "models" / "SmolLM2-135M-Instruct").path
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        prepare(xlam_source(sample_path()), data, SplitSizes(args.rows, 8, args.test_rows))
        split = data / args.track / "test.jsonl"
        examples = read_examples(split)
        config = TrainConfig(
            track=args.track,
            train=data / args.track / "train.jsonl",
            val=data / args.track / "val.jsonl",
            out=Path(tmp) / "adapter",
            model_path=model,
            save_steps=1000,
        )
        if args.step_batches:
            steps_side_by_side(config, args.step_batches)
        start = time.perf_counter()
        result = train(config, NullTracer())
        seconds = time.perf_counter() - start
        card = result.card
        print(
            f"train: {args.rows} rows, {result.steps} steps, {seconds:.1f} s end to end "
            f"({card['wall_seconds']:.1f} s in trainer.train), engine {result.engine} {card['precision']}; "
            f"train loss {card['train_loss_first']:.3f} -> {card['train_loss_last']:.3f}, "
            f"val loss {result.val_loss:.3f} (goal <= 120 s)"
        )
        summaries = {}
        for label, adapter in (("before", None), ("after", result.adapter)):
            backend = LocalBackend(model, adapter=adapter, batch_size=8)
            run = evaluate(
                examples,
                backend,
                run_meta(args.track, "test", split, backend),
                Path(tmp) / f"{label}.json",
                NullTracer(),
            ).run
            summaries[label] = run.summary
        metrics = CORE_METRICS[args.track]
        print(f"held-out {args.track} test rows: {args.test_rows}")
        for label, summary in summaries.items():
            print(f"  {label:>6}: " + ", ".join(f"{m} {summary[m]:.3f}" for m in metrics))


def steps_side_by_side(config: TrainConfig, batches: int) -> None:
    """The trainer's step and a bare PEFT step on the very same batches, alternating, twice."""
    import torch

    built = build_trainer(replace(config, out=config.out.with_name("steps")))
    trainer, model = built.trainer, built.trainer.model
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop, which is not run here
    chosen = [b for _, b in zip(range(batches), trainer.get_train_dataloader(), strict=False)]
    model.train()

    def trainer_step(batch: dict[str, Any]) -> None:
        trainer.training_step(model, dict(batch))

    def bare_step(batch: dict[str, Any]) -> None:
        inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
        model(**inputs, labels=batch["labels"]).loss.backward()

    times: dict[str, list[float]] = {"trainer": [], "bare": []}
    for _ in range(2):
        for batch in chosen:
            for label, step in (("trainer", trainer_step), ("bare", bare_step)):
                start = time.perf_counter()
                step(batch)
                times[label].append(time.perf_counter() - start)
                model.zero_grad()
    tokens = [int(b["input_ids"].numel()) for b in chosen]
    with torch.no_grad():
        answer = [int((b["labels"] != -100).sum()) for b in chosen]
    mean = {k: sum(v) / len(v) for k, v in times.items()}
    ratio = mean["trainer"] / mean["bare"]
    print(
        f"step ({built.batches} batches of {tokens} positions, {answer} with loss): trainer "
        f"{mean['trainer']:.2f} s, bare PEFT {mean['bare']:.2f} s, ratio {ratio:.2f} (goal <= 1.2)"
    )


if __name__ == "__main__":
    main()
