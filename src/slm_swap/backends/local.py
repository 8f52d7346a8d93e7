"""The local SLM, in-process with transformers: one load, batched greedy generation, LoRA adapters.

Prompts are rendered with the model's own chat template from the same `[system, user]` messages every
backend gets, sorted by token length so that a batch wastes little padding (left padding, as decoder-only
generation needs), and answered in input order. Decoding is greedy and seeded; the model is in eval mode
with deterministic algorithms, as the spec asks.

On a CUDA machine the model loads 8-bit with `device_map="auto"` (bitsandbytes); on a CPU-only machine
it loads in float32 on the CPU (8-bit kernels need CUDA, and bfloat16 is emulated on CPUs and slower).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slm_swap.backends.base import Backend
from slm_swap.errors import ConfigError
from slm_swap.types import Completion, Example, Usage

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from slm_swap.constrained import Grammars

SEED = 42
DEFAULT_MAX_NEW_TOKENS = 384


def set_determinism() -> None:
    """Seeds and deterministic kernels, set before any CUDA work (the spec's determinism settings)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch
    from transformers import set_seed

    set_seed(SEED)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


def load_model(
    model_path: Path, *, adapter: Path | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """Loads the checkpoint (and adapter) for inference; returns the model, tokenizer and a description
    of how it was loaded (device, precision) for run files."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    set_determinism()
    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {}
    if cuda:
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError as e:
            raise ConfigError(
                "8-bit loading on CUDA needs bitsandbytes\n  fix: pip install 'slm-swap[cuda]'"
            ) from e
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = "auto"
        precision, device = "8-bit", "cuda"
    else:
        kwargs["dtype"] = torch.float32
        precision, device = "float32", "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    if adapter is not None:
        from peft import PeftModel

        if not (adapter / "adapter_config.json").is_file():
            raise ConfigError(
                f"no LoRA adapter at {adapter} (no adapter_config.json)\n"
                "  fix: pass the folder `slm-swap train --out` wrote"
            )
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    return model, tokenizer, {"device": device, "precision": precision}


def chat_text(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The chat-template text of `messages` with the assistant turn opened: the exact string the model
    continues, at evaluation, training and serving alike."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return str(text)


class LocalBackend(Backend):
    kind = "slm"

    def __init__(
        self,
        model_path: Path,
        *,
        adapter: Path | None = None,
        batch_size: int = 8,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        constrained: bool = False,
    ):
        self.model_path = model_path
        self.adapter = adapter
        self.model = model_path.name
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.llm, self.tokenizer, self.loaded = load_model(model_path, adapter=adapter)
        self.constrained = constrained
        self.grammars: Grammars | None = None
        if constrained:
            from slm_swap.constrained import Grammars

            self.grammars = Grammars(self.tokenizer, self.llm.config.vocab_size)

    def identity(self) -> dict[str, object]:
        from slm_swap.identity import adapter_digest, checkpoint_digest

        return {
            "checkpoint_sha256": checkpoint_digest(self.model_path),
            "adapter_sha256": None if self.adapter is None else adapter_digest(self.adapter),
            "decoding": self.decoding,
            "max_new_tokens": self.max_new_tokens,
            # Padding changes float reduction order, so batch size can change a greedy answer.
            "batch_size": self.batch_size,
            "precision": self.loaded["precision"],
        }

    @property
    def decoding(self) -> str:
        from slm_swap.stops import RULE

        return f"greedy, grammar-constrained, {RULE}" if self.constrained else "greedy"

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            **self.loaded,
            "max_new_tokens": self.max_new_tokens,
            "model_path": str(self.model_path),
            "decoding": self.decoding,
        }

    def schedule(self, examples: Sequence[Example]) -> list[list[Example]]:
        """Batches of prompts of similar length (shortest first), so little of each batch is padding."""
        lengths = {
            e.id: len(
                self.tokenizer(chat_text(self.tokenizer, e.messages()), add_special_tokens=False)["input_ids"]
            )
            for e in examples
        }
        ordered = sorted(examples, key=lambda e: lengths[e.id])
        return [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]

    def generate(self, examples: Sequence[Example]) -> list[Completion]:
        """Answers a batch; an example whose tools give a grammar that cannot be compiled gets that as
        its completion's error, and the rest of the batch is answered as usual."""
        texts = [chat_text(self.tokenizer, e.messages()) for e in examples]
        if self.grammars is None:
            return self.generate_texts(texts)
        grammars: list[Any] = []
        failed: dict[int, str] = {}
        for i, example in enumerate(examples):
            try:
                grammars.append(self.grammars.for_track(example.track, example.tools))
            except ValueError as e:
                failed[i] = f"grammar: {e}"
        answered = iter(
            self.generate_texts([t for i, t in enumerate(texts) if i not in failed], grammars=grammars)
            if len(failed) < len(examples)
            else []
        )
        return [
            Completion(text="", error=failed[i]) if i in failed else next(answered) for i in range(len(texts))
        ]

    def generate_texts(
        self, texts: Sequence[str], max_new_tokens: int | None = None, *, grammars: Sequence[Any] = ()
    ) -> list[Completion]:
        """Greedy continuation of already-rendered prompts, one batch, in input order; with `grammars`
        (compiled by `self.grammars`, one per text) each answer follows its grammar and the stop rule."""
        processor = self.grammars.processor(grammars) if grammars and self.grammars is not None else None
        return generate_batch(
            self.llm,
            self.tokenizer,
            texts,
            max_new_tokens or self.max_new_tokens,
            processor=processor,
            stop_at_repeat=[processor is not None] * len(texts),
        )

    def close(self) -> None:
        del self.llm


def generate_batch(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_new_tokens: int,
    *,
    processor: Any = None,
    streamer: Any = None,
    stop_at_repeat: Sequence[bool] = (),
) -> list[Completion]:
    """Greedy continuation of rendered prompts as one left-padded batch; each answer stops at EOS.

    `processor` (a `constrained.GrammarProcessor`) masks what each row's grammar forbids; `streamer`
    receives each step's tokens (a transformers streamer); the rows flagged in `stop_at_repeat` follow
    the stop rule of `stops.py` (they end at a repeated call, cut back before it). Greedy decoding makes
    an answer's first k tokens the same whatever the limit, so callers may cut an answer to a smaller
    limit afterwards.
    """
    import torch
    from transformers import LogitsProcessorList, StoppingCriteriaList

    from slm_swap.stops import RepeatedCallStop, cut_at_repeat

    start = time.perf_counter()
    encoded = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
    encoded = {k: v.to(model.device) for k, v in encoded.items()}
    prompt_len = encoded["input_ids"].shape[1]
    flagged = list(stop_at_repeat) or [False] * len(texts)
    stopping = StoppingCriteriaList(
        [RepeatedCallStop(tokenizer, prompt_len, flagged)] if any(flagged) else []
    )
    with torch.inference_mode():
        output = model.generate(
            **encoded,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList([] if processor is None else [processor]),
            streamer=streamer,
            stopping_criteria=stopping,
        )
    elapsed = time.perf_counter() - start
    eos = tokenizer.eos_token_id
    completions = []
    for row, mask, stops in zip(output, encoded["attention_mask"], flagged, strict=True):
        new = row[prompt_len:].tolist()
        if eos in new:
            new = new[: new.index(eos)]
        while new and new[-1] == tokenizer.pad_token_id:
            new.pop()
        text = str(tokenizer.decode(new, skip_special_tokens=True))
        cut = cut_at_repeat(text) if stops else None
        completions.append(
            Completion(
                text=text if cut is None else cut,
                latency_s=elapsed / len(texts),
                usage=Usage(prompt_tokens=int(mask.sum()), completion_tokens=len(new)),
            )
        )
    return completions
