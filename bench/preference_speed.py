"""How long the preference step (`train --objective sft+dpo`) takes a pair, TRL's forward passes against
slm-swap's, side by side in one run.

The pairs are BFCL live rows as `bench/learning_curve.py` prepares them (tools and request, the gold answer
chosen), each with the next row's gold answer as the rejected one: answers of real lengths. The model is the
embedded one with a fresh LoRA adapter of the fine-tune's shape (rank 64, every linear layer), trained by
the step's own trainer (`preference_trainer`) against its frozen copy. Each pair goes, in turn, through:

- `trl+recompute`: TRL's `compute_loss` with activations recomputed in the backward pass (TRL's default,
  which the step took on a CPU before);
- `trl`: TRL's `compute_loss` without;
- `shared`: the step's own (`SharedPromptDPOTrainer`): the prompt read once a pair, the LM head only at the
  answers' positions;

and one forward and backward is timed for each (the optimizer step is the same for all). It prints seconds
a pair per variant and the ratios, and checks the three losses agree.

    python bench/preference_speed.py [--pairs 8] [--work bench-curve]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_curve import bfcl_pool  # bench/learning_curve.py: BFCL's live rows, prepared by slm-swap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--work", type=Path, default=Path("bench-curve"))
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    from slm_swap.files import atomic_writer, read_examples
    from slm_swap.local.models import pull
    from slm_swap.runtime import Runtime
    from slm_swap.train.config import TrainConfig
    from slm_swap.train.preference import Pair, preference_trainer

    if "SLM_MODEL_PATH" in os.environ:
        model_path = Path(os.environ["SLM_MODEL_PATH"])
    else:
        cache = Runtime.from_env(os.environ).cache_dir
        model_path = pull(cache / "models" / "SmolLM2-135M-Instruct", cache=cache).path
    pool, val = bfcl_pool(args.work, args.pairs + 1, 0.0)
    folder = args.work / "preference-speed"
    folder.mkdir(parents=True, exist_ok=True)
    for name, lines in (("train.jsonl", pool[: args.pairs + 1]), ("val.jsonl", val)):
        with atomic_writer(folder / name) as out:
            out.write("\n".join(lines) + "\n")
    rows = read_examples(folder / "train.jsonl")
    pairs = [
        Pair(e.id, "wrong_value", e.messages(), e.completion, rows[i + 1].completion)
        for i, e in enumerate(rows[:-1])
    ]
    config = TrainConfig(track="toolcall", train=folder / "train.jsonl", val=folder / "val.jsonl",
                         out=folder / "adapter", model_path=model_path)  # fmt: skip
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(base, lora)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    trainer = preference_trainer(model, tokenizer, pairs, config, cuda=False, bf16=False)
    trainer.model.train()
    inner = trainer.accelerator.unwrap_model(trainer.model)
    torch.manual_seed(0)
    with torch.no_grad():  # the policy off its frozen copy, so that the losses compared are not all log 2
        for weight in inner.parameters():
            if weight.requires_grad:
                weight.add_(0.01 * torch.randn_like(weight))

    def trl_recompute(batch: dict) -> torch.Tensor:
        inner.base_model.model.gradient_checkpointing_enable()
        inner.enable_input_require_grads()
        try:
            return DPOTrainer.compute_loss(trainer, trainer.model, batch)
        finally:
            inner.base_model.model.gradient_checkpointing_disable()

    variants = {
        "trl+recompute": trl_recompute,
        "trl": lambda batch: DPOTrainer.compute_loss(trainer, trainer.model, batch),
        "shared": lambda batch: type(trainer).compute_loss(trainer, trainer.model, batch),
    }
    warm = trainer.data_collator([trainer.train_dataset[0]])
    for compute in variants.values():  # once untimed: first calls allocate and pick their kernels
        trainer.model.zero_grad()
        compute(warm).backward()
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    tokens = []
    for i in range(len(pairs)):
        batch = trainer.data_collator([trainer.train_dataset[i]])
        tokens.append(int(batch["attention_mask"].sum()))
        losses = {}
        for name, compute in variants.items():
            trainer.model.zero_grad()
            start = time.perf_counter()
            loss = compute(batch)
            loss.backward()
            seconds[name].append(time.perf_counter() - start)
            losses[name] = float(loss.detach())
        spread = max(losses.values()) - min(losses.values())
        print(f"pair {i}: {tokens[-1]} tokens (both rows), "
              + ", ".join(f"{n} {seconds[n][-1]:.2f} s" for n in variants)
              + f"; losses agree to {spread:.1e}", flush=True)  # fmt: skip
        if spread > 1e-4:  # float32 rounding of summed log-likelihoods, times beta (as the test's)
            raise SystemExit(f"pair {i}: the variants' losses differ: {losses}")
    print(f"\n{len(pairs)} pairs, {statistics.mean(tokens):.0f} tokens a pair (both rows, TRL's padding)")
    print("| variant | seconds a pair (mean) | vs trl+recompute |")
    print("|---|---|---|")
    old = statistics.mean(seconds["trl+recompute"])
    for name, times in seconds.items():
        mean = statistics.mean(times)
        print(f"| {name} | {mean:.2f} | {old / mean:.2f}x |")


if __name__ == "__main__":
    main()
