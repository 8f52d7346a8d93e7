"""The one generation engine of the local SLM, shared by `eval`/`infer`/`live`/`run` (the local backend)
and `serve`: model and adapter loading, prompt rendering, grammars, the stop rules, batched greedy
generation.

Prompts are rendered with the model's own chat template from the messages every backend gets. Decoding
is greedy (it draws no random numbers, so no generator is seeded); the model is in eval mode with
deterministic algorithms, as the spec asks.

On a CUDA machine the model loads 8-bit with `device_map="auto"` (bitsandbytes), or unquantised in
bfloat16 when asked (`--load-in`); on a CPU-only machine it loads in float32 on the CPU (8-bit kernels
need CUDA, and bfloat16 is emulated on most CPUs and slower). `cuda.preflight` runs first.
LoRA adapters load by name on top of one base model (PEFT), and each batch runs under one of them or
under none.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slm_swap import settings
from slm_swap.errors import ConfigError
from slm_swap.types import Completion, Usage

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from slm_swap.local.constrained import Constraint, Grammars


CUBLAS_WORKSPACE = ":4096:8"  # the spec's CUBLAS_WORKSPACE_CONFIG, for deterministic cuBLAS products


def deterministic_cublas() -> None:
    """Asks cuBLAS for deterministic products in this process (unless the user chose a setting). cuBLAS
    takes the setting from the environment alone, when it starts, so it is set there: configuration of a
    library, read back by nothing in slm-swap, and part of this engine's contract for every caller."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)


def set_determinism() -> None:
    """Deterministic kernels, set before any CUDA work (the spec's determinism settings)."""
    deterministic_cublas()
    import torch

    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


def load_model(
    model_path: Path,
    *,
    adapters: Mapping[str, Path] | None = None,
    load_in: str = "auto",
    kernels: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]:
    """Loads the checkpoint, with `adapters` (name → adapter folder) on top, for inference; returns the
    model, tokenizer and a description of how it was loaded (engine, device, precision) for run files.
    With adapters, the first one named is active. `load_in` is one of `settings.LOADS`; `kernels`: the
    run will apply grammars (Triton kernels on CUDA). The CUDA preflight runs before anything loads."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slm_swap.local import cuda

    machine = cuda.preflight(cuda.Needs(quantized=load_in in ("auto", "8bit"), kernels=kernels))
    set_determinism()
    if load_in == "auto":
        load_in = "8bit" if machine.cuda else "float32"
    kwargs: dict[str, Any] = {}
    if load_in == "8bit":
        if not machine.cuda:
            raise ConfigError(
                f"{settings.LOAD_IN} 8bit needs a CUDA GPU (bitsandbytes' 8-bit kernels)\n"
                f"  fix: {settings.LOAD_IN} auto (float32 on a CPU)"
            )
        from transformers import BitsAndBytesConfig

        # The weights that stay unquantised (norms, embeddings) in bfloat16, not a float32 checkpoint's
        # own dtype; bitsandbytes computes its 8-bit products in float16 either way.
        kwargs = {"quantization_config": BitsAndBytesConfig(load_in_8bit=True), "dtype": torch.bfloat16}
        precision = "8-bit"
    else:
        kwargs = {"dtype": getattr(torch, load_in)}
        precision = load_in
    if machine.cuda:
        kwargs["device_map"] = "auto"  # the spec's: spread over the visible GPUs where one is too small
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    device = cuda.describe(model)
    for i, (name, adapter) in enumerate((adapters or {}).items()):
        if not (adapter / "adapter_config.json").is_file():
            raise ConfigError(
                f"no LoRA adapter at {adapter} (no adapter_config.json)\n"
                f"  fix: pass the folder `slm-swap train {settings.OUT}` wrote"
            )
        if i == 0:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter, adapter_name=name)
        else:
            model.load_adapter(str(adapter), adapter_name=name)
    model.eval()
    return model, tokenizer, {"engine": "transformers", "device": device, "precision": precision}


def chat_text(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The chat-template text of `messages` with the assistant turn opened: the exact string the model
    continues, at evaluation, training and serving alike."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return str(text)


def _ids(value: Any) -> list[int]:
    """A generation config's end-of-sequence id(s) as a list."""
    if value is None:
        return []
    return [int(v) for v in value] if isinstance(value, list | tuple) else [int(value)]


class Engine:
    """One base model with its named LoRA adapters, its tokenizer and its grammars."""

    def __init__(
        self,
        model_path: Path,
        adapters: Mapping[str, Path] | None = None,
        *,
        load_in: str = "auto",
        kernels: bool = False,
    ):
        self.model_path = model_path
        self.base_name = model_path.name
        self.adapters = dict(adapters or {})
        self.llm: Any
        self.llm, self.tokenizer, self.loaded = load_model(
            model_path, adapters=self.adapters, load_in=load_in, kernels=kernels
        )
        self._grammars: Grammars | None = None

    @property
    def model_names(self) -> list[str]:
        return [self.base_name, *self.adapters]

    @property
    def grammars(self) -> Grammars:
        """The grammar compiler for this tokenizer, made on first use (it needs xgrammar)."""
        if self._grammars is None:
            from slm_swap.local.constrained import Grammars

            self._grammars = Grammars(self.tokenizer, self.llm.config.vocab_size)
        return self._grammars

    def render(self, messages: list[dict[str, str]]) -> str:
        return chat_text(self.tokenizer, messages)

    def prompt_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def using(self, name: str | None) -> AbstractContextManager[Any]:
        """Runs what follows under the named adapter, or under the base model alone (its name, or None
        when it has no adapters)."""
        if not self.adapters:
            return nullcontext()
        if name is None or name == self.base_name:
            return self.llm.disable_adapter()
        self.llm.set_adapter(name)
        return nullcontext()

    def generate(
        self,
        texts: Sequence[str],
        max_new_tokens: int,
        *,
        constraints: Sequence[Constraint | None] = (),
        streamer: Any = None,
        processors: Sequence[Any] = (),
        stopping: Sequence[Any] = (),
        special_tokens: bool = False,
    ) -> list[Completion]:
        """Greedy continuation of rendered prompts as one left-padded batch; each answer stops at EOS.

        Row i follows `constraints[i]` (None or absent: free): its grammar masks what it forbids and,
        for an answer of calls, the stop rules of `stops.py` end it. `streamer` receives each step's
        tokens (a transformers streamer); `processors` are further logits processors, applied first;
        `stopping` are further stopping criteria (a row they stop ends there, as at its end of sequence).
        With `special_tokens` the answers keep the special tokens they hold (a chat template's tool-call
        markers), all but the end of the answer and the padding.
        Greedy decoding makes an answer's first k tokens the same whatever the limit, so callers may cut
        an answer to a smaller limit afterwards.
        """
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        from slm_swap.local.stops import LoopStop, RepeatedCallStop, StopOrContinue, cut_at_repeat

        rows = list(constraints) or [None] * len(texts)
        calls = [None if c is None else c.calls for c in rows]
        start = time.perf_counter()
        encoded = self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(self.llm.device) for k, v in encoded.items()}
        prompt_len = encoded["input_ids"].shape[1]
        processors = list(processors)
        criteria = list(stopping)
        if any(c is not None for c in rows):
            deciding = [None if c is None or not c.stop_or_continue else c.calls for c in rows]
            if any(deciding):
                # Before the grammar's mask: it scores the ways on from the model's own likelihoods.
                abstain = [c is not None and c.may_abstain for c in rows]
                processors.append(
                    StopOrContinue(self.llm, self.tokenizer, encoded["attention_mask"], deciding, abstain)
                )
            processors.append(self.grammars.processor([None if c is None else c.grammar for c in rows]))
            criteria.append(RepeatedCallStop(self.tokenizer, prompt_len, [c is not None for c in calls]))
            criteria.append(LoopStop(prompt_len, [c is not None for c in rows]))
        with torch.inference_mode():
            output = self.llm.generate(
                **encoded,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
                logits_processor=LogitsProcessorList(processors),
                streamer=streamer,
                stopping_criteria=StoppingCriteriaList(criteria),
            )
        elapsed = time.perf_counter() - start
        eos = self.tokenizer.eos_token_id
        ends = {eos, *_ids(getattr(self.llm.generation_config, "eos_token_id", None))} - {None}
        completions = []
        for row, mask, track in zip(output, encoded["attention_mask"], calls, strict=True):
            new = row[prompt_len:].tolist()
            end = next((n for n, t in enumerate(new) if t in ends), None)
            if end is not None:
                new = new[:end]
            while new and new[-1] == self.tokenizer.pad_token_id:
                new.pop()
            text = str(self.tokenizer.decode(new, skip_special_tokens=not special_tokens))
            cut = None if track is None else cut_at_repeat(text)
            completions.append(
                Completion(
                    text=text if cut is None else cut,
                    latency_s=elapsed / len(texts),
                    usage=Usage(prompt_tokens=int(mask.sum()), completion_tokens=len(new)),
                )
            )
        return completions

    def close(self) -> None:
        del self.llm
