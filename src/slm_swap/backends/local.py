"""The local SLM as a backend: examples in, completions out, through the one generation engine
(`engine.py`), with at most one LoRA adapter.

Under the native protocol (`protocol.py`) the toolcall track's prompt is the checkpoint's own chat
template with the tools, and its answer is read in the template's tool format (`templates.py`); the
structured track has no native form in a chat template (an API's `response_format` is constrained decoding
to the answer's schema, which `constrained` already is), so it is asked as under the prompt protocol.

Prompts are sorted by token length so that a batch wastes little padding (left padding, as decoder-only
generation needs), and answered in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from slm_swap import protocol, settings, templates
from slm_swap.backends.base import Backend
from slm_swap.callformats import CALL_FORMATS
from slm_swap.engine import Engine, chat_text
from slm_swap.errors import ConfigError
from slm_swap.types import Completion, Example

if TYPE_CHECKING:
    from slm_swap.constrained import Constraint

__all__ = ["LocalBackend", "chat_text"]


class LocalBackend(Backend):
    kind = "slm"

    def __init__(
        self,
        model_path: Path,
        *,
        adapter: Path | None = None,
        batch_size: int = 8,
        max_new_tokens: int = settings.MAX_NEW_TOKENS.default,
        constrained: bool = False,
        load_in: str = "auto",
        protocol: str = protocol.PROMPT,
    ):
        self.model_path = model_path
        self.adapter = adapter
        self.model = model_path.name
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        adapters = {} if adapter is None else {"adapter": adapter}
        self.engine = Engine(model_path, adapters, load_in=load_in, kernels=constrained)
        self.constrained = constrained
        self.protocol = protocol
        self.family = None
        if protocol == "native":
            self.family = templates.family_of(self.engine.tokenizer, self.model)
            if constrained and self.family not in CALL_FORMATS:
                raise ConfigError(
                    f"{settings.CONSTRAINED} with {settings.PROTOCOL} native: {self.model} reads its answers "
                    f"by its response template, and slm-swap has no grammar for that format\n  fix: drop "
                    f"{settings.CONSTRAINED}, or use {settings.PROTOCOL} prompt"
                )
        if constrained:
            self.engine.grammars  # noqa: B018  (a missing xgrammar is reported now, not mid-run)

    def identity(self) -> dict[str, object]:
        from slm_swap.identity import adapter_digest, checkpoint_digest

        return {
            "checkpoint_sha256": checkpoint_digest(self.model_path),
            "adapter_sha256": None if self.adapter is None else adapter_digest(self.adapter),
            "decoding": self.decoding,
            "max_new_tokens": self.max_new_tokens,
            # Padding changes float reduction order, so batch size can change a greedy answer.
            "batch_size": self.batch_size,
            "precision": self.engine.loaded["precision"],
        } | ({"protocol": self.protocol, "template_family": self.family} if self.family else {})

    @property
    def decoding(self) -> str:
        from slm_swap.stops import RULE

        return f"greedy, grammar-constrained, {RULE}" if self.constrained else "greedy"

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            **self.engine.loaded,
            "max_new_tokens": self.max_new_tokens,
            "model_path": str(self.model_path),
            "decoding": self.decoding,
            "protocol": self.protocol,
            **({"template_family": self.family} if self.family else {}),
            **({"read_by": "response_template"} if self.family and self._response_template else {}),
        }

    @property
    def _response_template(self) -> bool:
        return bool(getattr(self.engine.tokenizer, "response_template", None))

    def native(self, example: Example) -> bool:
        """Whether `example` is asked in the checkpoint's own tool format."""
        return self.family is not None and example.track == "toolcall"

    def prompt(self, example: Example) -> str:
        """The rendered prompt the model continues for `example`."""
        if self.native(example):
            tools = protocol.openai_tools(example.tools)
            return templates.render(self.engine.tokenizer, protocol.native_messages(example), tools)
        return self.engine.render(example.messages())

    def schedule(self, examples: Sequence[Example]) -> list[list[Example]]:
        """Batches of prompts of similar length (shortest first), so little of each batch is padding."""
        lengths = {e.id: self.engine.prompt_tokens(self.prompt(e)) for e in examples}
        ordered = sorted(examples, key=lambda e: lengths[e.id])
        return [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]

    def generate(self, examples: Sequence[Example]) -> list[Completion]:
        """Answers a batch; an example whose tools give a grammar that cannot be compiled gets that as
        its completion's error, and the rest of the batch is answered as usual."""
        native = [self.native(e) for e in examples]
        if any(native) and not all(native):  # a mixed batch (serve): each part as its own batch
            parts: dict[int, Completion] = {
                id(e): c
                for part in (
                    [e for e, n in zip(examples, native, strict=True) if n],
                    [e for e, n in zip(examples, native, strict=True) if not n],
                )
                for e, c in zip(part, self.generate(part), strict=True)
            }
            return [parts[id(e)] for e in examples]
        texts = [self.prompt(e) for e in examples]
        if any(native):
            return self._generate_native(examples, texts)
        if not self.constrained:
            return self.generate_texts(texts)
        constraints: list[Constraint] = []
        failed: dict[int, str] = {}
        for i, example in enumerate(examples):
            try:
                constraints.append(self.engine.grammars.for_track(example.track, example.tools))
            except ValueError as e:
                failed[i] = f"grammar: {e}"
        answered = iter(
            self.generate_texts([t for i, t in enumerate(texts) if i not in failed], constraints=constraints)
            if len(failed) < len(examples)
            else []
        )
        return [
            Completion(text="", error=failed[i]) if i in failed else next(answered) for i in range(len(texts))
        ]

    def _generate_native(self, examples: Sequence[Example], texts: list[str]) -> list[Completion]:
        """A batch in the template's tool format; constrained, each answer follows the format's grammar
        (`Grammars.native_calls`) and the stop rules, and an example whose grammar cannot be built gets
        that as its error."""
        assert self.family is not None
        constraints: list[Constraint] = []
        failed: dict[int, str] = {}
        for i, example in enumerate(examples if self.constrained else ()):
            try:
                constraints.append(self.engine.grammars.native_calls(self.family, example.tools))
            except ValueError as e:
                failed[i] = f"grammar: {e}"
        asked = [t for i, t in enumerate(texts) if i not in failed]
        answered = iter(
            self.engine.generate(asked, self.max_new_tokens, constraints=constraints, special_tokens=True)
            if asked
            else []
        )
        return [
            Completion(text="", error=failed[i]) if i in failed else self._read(e, t, next(answered))
            for i, (e, t) in enumerate(zip(examples, texts, strict=True))
        ]

    def _read(self, example: Example, prompt: str, completion: Completion) -> Completion:
        """A native answer written in the track's format (`protocol.answer_text`)."""
        assert self.family is not None
        try:
            reading = templates.read(
                self.family,
                completion.text,
                self.engine.tokenizer,
                prompt,
                protocol.openai_tools(example.tools),
            )
        except Exception as e:  # a response template that fails on this answer: this example's failure
            return replace(completion, error=f"reading the answer: {type(e).__name__}: {str(e)[:200]}")
        return replace(completion, text=protocol.answer_text(example.track, reading.calls, reading.content))

    def generate_texts(
        self,
        texts: Sequence[str],
        max_new_tokens: int | None = None,
        *,
        constraints: Sequence[Constraint | None] = (),
    ) -> list[Completion]:
        """Greedy continuation of already-rendered prompts, one batch, in input order; with `constraints`
        (from `self.engine.grammars`, one per text) each answer follows its grammar and the stop rules."""
        return self.engine.generate(texts, max_new_tokens or self.max_new_tokens, constraints=constraints)

    def close(self) -> None:
        self.engine.close()
