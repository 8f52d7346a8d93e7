"""The preference step of `train --objective sft+dpo`: after the supervised fine-tune, the model answers
its own training rows, and where it is wrong (a call on a row whose answer is no call, no call where one
is, a wrong tool or value) the gold answer is preferred to its answer, with TRL's DPO trainer. When2Call
found such a step teaches *when* to call better than more supervised rows.

The answers are the fine-tuned model's own, asked as it will be evaluated (greedy, grammar-constrained,
so every answer is in the track's format and its mistakes are of judgement, not of form). The step goes
on training the same LoRA adapter; its reference is the adapter as the fine-tune left it (TRL copies it
as a frozen "ref" adapter), so the adapter stays one the base model loads like any other.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.errors import ConfigError
from slm_swap.train.card import PAIRS_FILE
from slm_swap.train.config import TrainConfig
from slm_swap.types import Completion, Example, Track

# The preference step learns at a tenth of the fine-tune's rate, with DPO's loss alone. Measured on 128 BFCL
# rows (docs/benchmarks.md): this moves the DPO loss little (0.6931 to 0.6926) yet shifts greedy answers
# toward no call, 6 abstentions gained and 7 right calls lost. At the full rate with the gold answers'
# likelihood added (RPO: TRL's "sft" loss beside "sigmoid"), the same pairs turned 37 of 40 simple_python
# answers into no call: a stronger step only buys more abstention.
LEARNING_RATE_SHARE = 0.1
LOSSES = ("sigmoid",)  # TRL's loss types, summed with LOSS_WEIGHTS
LOSS_WEIGHTS = (1.0,)
# One pass over the pairs, whatever the fine-tune's epochs: the pairs are the answers of the model as SFT
# left it, its own only until the step moves it, and a pass costs the policy and its reference per pair.
PREFERENCE_EPOCHS = 1
# Under the adapter's checkpoints: the step's own, and the fine-tuned model's answers as a run file, journaled
# as they come, so that an interrupted step goes on (`train --resume`) from its last answer and checkpoint.
STEP_DIR = Path("checkpoints") / "preference"
ANSWERS_RUN = "answers.json"


@dataclass(frozen=True)
class Pair:
    """A training row the model got wrong: its conversation, the gold answer and the model's own."""

    id: str
    mistake: str  # the scorer's error category of the model's answer
    prompt: list[dict[str, str]]
    chosen: str
    rejected: str

    def shown(self) -> dict[str, str]:
        """The pair as `PAIRS_FILE` holds it (the conversation is the training row's)."""
        return {"id": self.id, "mistake": self.mistake, "chosen": self.chosen, "rejected": self.rejected}

    def row(self) -> dict[str, Any]:
        """The pair as TRL's DPO trainer takes a conversational row."""
        return {
            "prompt": self.prompt,
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }


def preference_pairs(examples: Sequence[Example], answers: Sequence[Completion]) -> list[Pair]:
    """A pair for every row whose answer the scorer finds wrong, the gold answer chosen over it; a row
    answered right, or whose answer failed (no text), makes none."""
    from slm_swap.scoring.metrics import score

    pairs = []
    for example, answer in zip(examples, answers, strict=True):
        if answer.error is not None or not answer.text.strip():
            continue
        result = score(example, answer)
        if result.error_category is None or answer.text.strip() == example.completion.strip():
            continue
        pairs.append(
            Pair(example.id, result.error_category, example.messages(), example.completion, answer.text)
        )
    return pairs


@dataclass(frozen=True)
class PreferenceResult:
    """What the preference step did, as the adapter card records it."""

    rows: int  # training rows the fine-tuned model answered
    pairs: int  # of them, those it got wrong: the preference pairs
    mistakes: dict[str, int]  # the pairs by the kind of mistake
    steps: int
    loss_first: float | None
    loss_last: float | None
    reward_margin_last: float | None  # chosen minus rejected reward, at the last step
    reward_chosen_last: float | None  # beta x the gold answers' log-likelihood ratio to the reference
    seconds: float
    adapter_sha256: str | None = None  # of the adapter's weights after the step (None: no step was taken)
    answers: str = "greedy, grammar-constrained"
    passes: str = "prompt shared"  # how the pairs went through the model (`SharedPromptDPOTrainer`)
    loss: str = " + ".join(f"{w:g} {name}" for name, w in zip(LOSSES, LOSS_WEIGHTS, strict=True))
    learning_rate_share: float = LEARNING_RATE_SHARE  # of the fine-tune's learning rate

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def answer_limit(examples: Sequence[Example], tokenizer: Any) -> int:
    """How long the model's answers may run: twice the longest gold answer (an answer past that is wrong
    whatever follows, and a cut one is still a rejected answer), at most `--max-new-tokens`' default."""
    longest = max((len(tokenizer(e.completion)["input_ids"]) for e in examples), default=0)
    return min(settings.MAX_NEW_TOKENS.default, 2 * longest + 16)


def answers_of(
    examples: Sequence[Example],
    *,
    track: Track,
    split: Path,
    model_path: Path,
    adapter: Path,
    max_new_tokens: int,
    run_file: Path,
) -> list[Completion]:
    """The answers of the model with `adapter` to `examples` (the rows of `split`), asked as it is
    evaluated, through `evaluate`: each is journaled to the run file `run_file` as it comes, so an
    interrupted step takes up its answers again, and a finished run file for the same adapter and rows is
    taken whole."""
    from slm_swap.backends.config import LocalConfig
    from slm_swap.evaluate import evaluate, open_evaluation
    from slm_swap.tracing.null import NullTracer

    local = LocalConfig(model_path, adapter=adapter, constrained=True, max_new_tokens=max_new_tokens)
    with open_evaluation(local, track, "train", split, examples) as (backend, meta):
        outcome = evaluate(examples, backend, meta, run_file, NullTracer(), replace_stale=True)
    return [Completion(r.output, error=r.backend_error) for r in outcome.run.results]


def preference_trainer(
    model: Any, tokenizer: Any, pairs: Sequence[Pair], config: TrainConfig, *, cuda: bool, bf16: bool
) -> Any:
    """TRL's DPO trainer, its forward passes reading each pair's prompt once (`SharedPromptDPOTrainer`),
    set to train the PEFT `model` (the fine-tuned adapter, trainable) on `pairs` against a frozen copy of
    that adapter."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig

    from slm_swap.train.packing import SharedPromptDPOTrainer

    args = DPOConfig(
        output_dir=str(config.out / STEP_DIR),
        learning_rate=config.learning_rate * LEARNING_RATE_SHARE,
        beta=settings.DPO_BETA,
        loss_type=list(LOSSES),
        loss_weights=list(LOSS_WEIGHTS),
        num_train_epochs=PREFERENCE_EPOCHS,
        # One pair a step, accumulated to the fine-tune's batch: a pair is two sequences through the model
        # and its reference, and their logits over the whole vocabulary (49,152 tokens for SmolLM2) at 2,048
        # positions are 0.4 GB each in float32, so four pairs at once held 12 GB on a CPU.
        per_device_train_batch_size=1,
        gradient_accumulation_steps=config.batch_size * config.gradient_accumulation,
        max_length=config.max_length,
        seed=config.seed,
        data_seed=config.seed,
        logging_steps=1,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        report_to=[],
        use_cpu=not cuda,
        # As the fine-tune: TRL's configs recompute activations by default, which saves GPU memory and on a
        # CPU only costs time (5% of a pair's pass here, bench/preference_speed.py; the same gradients).
        gradient_checkpointing=cuda,
        bf16=bf16,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    trainer = SharedPromptDPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([p.row() for p in pairs]),
        processing_class=tokenizer,
    )
    if "ref" not in getattr(trainer.model, "peft_config", {}):
        # TRL before its DPO rewrite took the base model (adapters off) as the reference of an adapter that
        # is already trained: the step would pull the fine-tune back towards the untrained model.
        raise ConfigError(
            f"{settings.OBJECTIVE} sft+dpo: this TRL does not keep a frozen copy of the fine-tuned adapter "
            "as the preference step's reference\n  fix: pip install -U 'trl>=1.16' (the version tested)"
        )
    trainer.remove_callback(PrinterCallback)
    return trainer


def prefer(
    model: Any, tokenizer: Any, pairs: Sequence[Pair], config: TrainConfig, *, cuda: bool, bf16: bool
) -> Any:
    """Trains the PEFT `model` (the fine-tuned adapter, trainable) on `pairs` and returns the trainer (its
    model holds the trained adapter as "default"); an interrupted step on the same pairs goes on from its
    last checkpoint."""
    trainer = preference_trainer(model, tokenizer, pairs, config, cuda=cuda, bf16=bf16)
    resume = any((config.out / STEP_DIR).glob("checkpoint-*"))  # an interrupted step on these same pairs
    trainer.train(resume_from_checkpoint=True if resume else None)
    return trainer


def preference_step(
    config: TrainConfig,
    tokenizer: Any,
    *,
    cuda: bool,
    bf16: bool,
    load_base: Callable[[], Any],
    digest: Callable[[Any], str],
) -> PreferenceResult:
    """The step after the fine-tune saved its adapter to `config.out`: the model's answers to the training
    rows, the pairs of its mistakes, DPO on them, and the adapter saved again in its place (only the
    trained adapter, not TRL's reference copy)."""
    from collections import Counter

    from peft import PeftModel

    from slm_swap.files import atomic_writer, jsonl_text, read_examples

    start = time.perf_counter()
    examples = read_examples(config.train)
    step = config.out / STEP_DIR
    answers = answers_of(
        examples,
        track=config.track,
        split=config.train,
        model_path=config.model_path,
        adapter=config.out,
        max_new_tokens=answer_limit(examples, tokenizer),
        run_file=step / ANSWERS_RUN,
    )
    pairs = preference_pairs(examples, answers)
    mistakes = dict(Counter(p.mistake for p in pairs))
    shown = jsonl_text(p.shown() for p in pairs)
    pairs_file = config.out / PAIRS_FILE  # what the step preferred, for a reader
    if not pairs_file.is_file() or pairs_file.read_text(encoding="utf-8") != shown:
        for stale in step.glob("checkpoint-*"):  # a step on other pairs is not gone on from
            shutil.rmtree(stale)
        with atomic_writer(pairs_file) as out:
            out.write(shown)
    if not pairs:  # nothing wrong to prefer against: the fine-tuned adapter stands
        return PreferenceResult(
            rows=len(examples),
            pairs=0,
            mistakes={},
            steps=0,
            loss_first=None,
            loss_last=None,
            reward_margin_last=None,
            reward_chosen_last=None,
            seconds=round(time.perf_counter() - start, 2),
        )
    base = load_base()
    model = PeftModel.from_pretrained(base, str(config.out), is_trainable=True)
    trainer = prefer(model, tokenizer, pairs, config, cuda=cuda, bf16=bf16)
    trainer.model.save_pretrained(str(config.out), selected_adapters=["default"])
    history = trainer.state.log_history
    losses = [h["loss"] for h in history if "loss" in h]
    margins = [h["rewards/margins"] for h in history if "rewards/margins" in h]
    chosen = [h["rewards/chosen"] for h in history if "rewards/chosen" in h]
    return PreferenceResult(
        rows=len(examples),
        pairs=len(pairs),
        mistakes=mistakes,
        steps=trainer.state.global_step,
        loss_first=losses[0] if losses else None,
        loss_last=losses[-1] if losses else None,
        reward_margin_last=margins[-1] if margins else None,
        reward_chosen_last=chosen[-1] if chosen else None,
        seconds=round(time.perf_counter() - start, 2),
        adapter_sha256=digest(trainer.model),  # the trainable adapter's weights, as the fine-tune's
        passes=passes_of(trainer.shared_batches, trainer.other_batches),
    )


def passes_of(shared: int, other: int) -> str:
    """What the card says of how the step's batches of pairs went through the model."""
    if not other:
        return "prompt shared"
    if not shared:
        return "TRL's"
    return f"prompt shared for {shared} of {shared + other} batches, TRL's for the rest"
