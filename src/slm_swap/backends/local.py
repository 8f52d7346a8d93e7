"""The local SLM as a backend: requests in, completions out, through the one generation engine
(`engine.py`), with at most one LoRA adapter.

A request's messages are rendered by the checkpoint's chat template; under the native protocol
(`protocol.py`) a toolcall request's tools are rendered by it too, and the answer is read in the
template's tool format (`templates.py`). The structured track has no native form in a chat template (an
API's `response_format` is constrained decoding to the answer's schema, which `constrained` already is),
so it is asked as under the prompt protocol. Constrained, each answer follows the grammar of its form
(`constrained.Grammars.for_answer`).

Prompts are sorted by token length so that a batch wastes little padding (left padding, as decoder-only
generation needs), and answered in input order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from slm_swap import protocol, settings
from slm_swap.backends.base import Backend
from slm_swap.backends.config import LocalConfig
from slm_swap.errors import ConfigError
from slm_swap.local import templates
from slm_swap.local.callformats import CALL_FORMATS
from slm_swap.local.engine import Engine, chat_text
from slm_swap.protocol import Request
from slm_swap.types import Completion

if TYPE_CHECKING:
    from slm_swap.local.constrained import Constraint

__all__ = ["LocalBackend", "LocalConfig", "chat_text"]


class LocalBackend(Backend):
    kind = "slm"

    def __init__(self, config: LocalConfig):
        from slm_swap.local.models import resolve_model_path

        self.config = config
        self.model_path = resolve_model_path(config.model_path)
        self.adapter = config.adapter
        self.model = self.model_path.name
        self.batch_size = config.batch_size
        self.max_new_tokens = config.max_new_tokens
        adapters = {} if config.adapter is None else {"adapter": config.adapter}
        self.engine = Engine(self.model_path, adapters, load_in=config.load_in, kernels=config.constrained)
        self.constrained = config.constrained
        self.family = None
        if config.protocol == protocol.NATIVE:
            self.family = templates.family_of(self.engine.tokenizer, self.model)
            if config.constrained and self.family not in CALL_FORMATS:
                raise ConfigError(
                    f"{settings.CONSTRAINED} with {settings.PROTOCOL} native: the template of {self.model} "
                    f"writes calls in a format of no family slm-swap has a grammar for (its answers are read "
                    f"by its response template)\n  fix: drop {settings.CONSTRAINED}, or use "
                    f"{settings.PROTOCOL} prompt"
                )
        if config.constrained:
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
        } | ({"protocol": self.config.protocol, "template_family": self.family} if self.family else {})

    @property
    def decoding(self) -> str:
        from slm_swap.local.stops import RULE

        return f"greedy, grammar-constrained, {RULE}" if self.constrained else "greedy"

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            **self.engine.loaded,
            "max_new_tokens": self.max_new_tokens,
            "model_path": str(self.model_path),
            "decoding": self.decoding,
            "protocol": self.config.protocol,
            **({"template_family": self.family} if self.family else {}),
            **({"read_by": "response_template"} if self.family and self._response_template else {}),
        }

    @property
    def _response_template(self) -> bool:
        return bool(getattr(self.engine.tokenizer, "response_template", None))

    def native(self, request: Request) -> bool:
        """Whether `request` is asked in the checkpoint's own tool format."""
        return self.family is not None and request.native_calls

    def prompt(self, request: Request) -> str:
        """The rendered prompt the model continues for `request`."""
        if self.native(request):
            tools = protocol.openai_tools(request.tools)
            return templates.render(self.engine.tokenizer, list(request.messages), tools)
        return self.engine.render(list(request.messages))

    def schedule(self, requests: Sequence[Request]) -> list[list[Request]]:
        """Batches of prompts of similar length (shortest first), so little of each batch is padding."""
        lengths = [self.engine.prompt_tokens(self.prompt(r)) for r in requests]
        ordered = [requests[i] for i in sorted(range(len(requests)), key=lambda i: lengths[i])]
        return [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        """Answers a batch; a request whose tools give a grammar that cannot be compiled gets that as its
        completion's error, and the rest of the batch is answered as usual."""
        native = [self.native(r) for r in requests]
        if any(native) and not all(native):  # a mixed batch: each part as its own batch
            parts: dict[int, Completion] = {
                id(r): c
                for part in (
                    [r for r, n in zip(requests, native, strict=True) if n],
                    [r for r, n in zip(requests, native, strict=True) if not n],
                )
                for r, c in zip(part, self.generate(part), strict=True)
            }
            return [parts[id(r)] for r in requests]
        texts = [self.prompt(r) for r in requests]
        constraints: list[Constraint | None] = []
        failed: dict[int, str] = {}
        for i, request in enumerate(requests if self.constrained else ()):
            try:
                constraints.append(self.engine.grammars.for_answer(request, self.family))
            except ValueError as e:
                failed[i] = f"grammar: {e}"
        asked = [t for i, t in enumerate(texts) if i not in failed]
        answered = iter(
            self.engine.generate(
                asked, self.max_new_tokens, constraints=constraints, special_tokens=any(native)
            )
            if asked
            else []
        )
        return [
            Completion(text="", error=failed[i])
            if i in failed
            else self._read(r, t, next(answered))
            if native[i]
            else next(answered)
            for i, (r, t) in enumerate(zip(requests, texts, strict=True))
        ]

    def _read(self, request: Request, prompt: str, completion: Completion) -> Completion:
        """A native answer written in the track's format (`protocol.answer_text`)."""
        assert self.family is not None
        try:
            reading = templates.read(
                self.family,
                completion.text,
                self.engine.tokenizer,
                prompt,
                protocol.openai_tools(request.tools),
            )
        except Exception as e:  # a response template that fails on this answer: this example's failure
            return replace(completion, error=f"reading the answer: {type(e).__name__}: {str(e)[:200]}")
        return replace(completion, text=protocol.answer_text("toolcall", reading.calls, reading.content))

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
