"""Benchmark: fine-tune the embedded SmolLM2 on one track's train rows, 1 epoch, default hyperparameters,
on this machine's CPU (goal: <= 120 s for 32 rows), and evaluate before/after on held-out rows.

    python bench/train_embedded.py [--track toolcall] [--rows 32] [--test-rows 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from slm_swap.backends.local import LocalBackend
from slm_swap.data.prepare import SplitSizes, prepare, sample_path, xlam_source
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.files import read_examples
from slm_swap.models import pull
from slm_swap.scoring.metrics import CORE_METRICS
from slm_swap.tracing import NullTracer
from slm_swap.train.sft import TrainConfig, train
from slm_swap.wheels import cache_dir


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--track", default="toolcall")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--test-rows", type=int, default=8)
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


if __name__ == "__main__":
    main()
