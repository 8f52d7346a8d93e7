"""Grammar-constrained decoding with xgrammar: at every step, tokens that would break the answer format are
masked out, so a constrained answer always parses.

Grammars, per example (built from the tools the example offers):

* structured: the JSON Schema of the answer (`formats.answer_schema`): `{"calls": [...]}` where each call
  names an offered tool and its arguments satisfy that tool's parameters, or no call (`{"calls": []}`);
* toolcall: one or more `<tool_call name="TOOL">{arguments}</tool_call>` blocks, one per line, each TOOL
  an offered tool and its arguments that tool's parameter schema, or no call: a plain-text reply (no `<`);
* for `serve`: a client's JSON Schema (`response_format`), any JSON (`json_object`), one or more calls
  (`tool_choice` required or named), and under `auto` the toolcall track's answer (calls or a reply).

Whether to answer with no call or with a first call is chosen like the end against one more call
(`stops.StopOrContinue`), on the model's own likelihood of each.

JSON is laid out like the gold answers (`", "` and `": "` separators, no other whitespace), so the
model is steered to the layout it was prompted and trained with. Nested objects without declared
properties accept any keys (xgrammar's non-strict mode); the top level of a tool's arguments accepts only
its declared parameters (`formats.strict_parameters`).

A constrained answer can still be cut short by the token limit; it then fails to parse like any other.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slm_swap import settings
from slm_swap.data.formats import answer_schema, strict_parameters
from slm_swap.errors import ConfigError
from slm_swap.types import ToolSpec, Track

if TYPE_CHECKING:
    import torch
    import xgrammar

    from slm_swap.protocol import Request

JSON_LAYOUT: dict[str, Any] = {"any_whitespace": False, "separators": (", ", ": "), "strict_mode": False}


def _xgrammar() -> Any:
    try:
        import xgrammar
    except ImportError as e:
        raise ConfigError("constrained decoding needs xgrammar\n  fix: pip install 'slm-swap[local]'") from e
    return xgrammar


@dataclass(frozen=True)
class Constraint:
    """What a constrained answer must follow: a compiled grammar and, when the answer is made of calls in
    a track's format, that track (`calls`): the stop rules of `stops.py` then end it at a repeated call.
    `stop_or_continue`: wherever the answer could end, the grammar allows only the end or one more call,
    and the likelier of the two is taken."""

    grammar: Any
    calls: str | None = None  # the answer's format: a track's, or `native:<family>` (`callformats.py`)
    stop_or_continue: bool = False
    may_abstain: bool = False  # the grammar also allows the no-call answer (chosen like the end)


class Grammars:
    """Compiles grammars for one tokenizer. xgrammar caches compiled grammars, so an example's grammar
    is built once however often it is asked for."""

    def __init__(self, tokenizer: Any, vocab_size: int):
        xgr = _xgrammar()
        self.xgr = xgr
        self.tokenizer = tokenizer
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
        self.vocab_size = vocab_size
        self.compiler = xgr.GrammarCompiler(info, max_threads=1)

    def for_answer(self, request: Request, family: str | None = None) -> Constraint | None:
        """The grammar of a request's answer form: its track's (`for_track`), or its chat template's tool
        format when asked natively by a model of template `family` (`native_calls`); any JSON value for a
        free prompt on the structured track; none for text."""
        if request.answer == "json":
            return self.any_json()
        if request.answer == "text":
            return None
        if family is not None and request.native_calls:
            return self.native_calls(family, request.tools)
        return self.for_track(request.answer, request.tools)

    def for_track(self, track: Track, tools: Sequence[ToolSpec], *, no_call: bool = True) -> Constraint:
        """The answer of `track` for an example offering `tools`: one or more calls, or (`no_call`) the
        no-call answer."""
        if track == "structured":
            grammar = self._json_schema(answer_schema(tools, min_calls=0 if no_call else 1))
            return Constraint(grammar, "structured", stop_or_continue=True, may_abstain=no_call)
        return self._calls_or_reply(tools) if no_call else self.tool_calls(tools)

    def json_schema(self, schema: dict[str, Any]) -> Constraint:
        """JSON satisfying `schema`. Raises ValueError for a schema xgrammar cannot compile."""
        return Constraint(self._json_schema(schema))

    def _json_schema(self, schema: dict[str, Any]) -> xgrammar.CompiledGrammar:
        try:
            return self.compiler.compile_json_schema(json.dumps(schema), **JSON_LAYOUT)
        except (RuntimeError, TypeError) as e:  # xgrammar reports unsupported or invalid schemas this way
            raise ValueError(f"unsupported JSON schema: {e}") from e

    def any_json(self) -> Constraint:
        return Constraint(self.compiler.compile_builtin_json_grammar())

    def tool_calls(self, tools: Sequence[ToolSpec], *, parallel: bool = True) -> Constraint:
        """One or more (`parallel`) or exactly one `<tool_call name="...">{...}</tool_call>` lines calling
        only `tools`."""
        if not tools:
            raise ValueError("no tools to call")
        if parallel:
            lark = "start: calls\n" + _CALLS_LARK.format(calls=_alternatives(tools))
        else:
            lark = f"start: call\ncall: {_alternatives(tools)}\n"
        return Constraint(self._lark(lark, tools), "toolcall", stop_or_continue=parallel)

    def _calls_or_reply(self, tools: Sequence[ToolSpec]) -> Constraint:
        """The toolcall track's answer: one or more call lines, or a plain-text reply without `<` (no
        call; the only answer when no tool is offered)."""
        reply = "reply: /[^<]+/\n"
        if not tools:
            return Constraint(self.compiler.compile_lark("start: reply\n" + reply), "toolcall")
        lark = "start: calls | reply\n" + _CALLS_LARK.format(calls=_alternatives(tools)) + reply
        return Constraint(self._lark(lark, tools), "toolcall", stop_or_continue=True, may_abstain=True)

    def native_calls(self, family: str, tools: Sequence[ToolSpec]) -> Constraint:
        """An answer in a chat template's own tool format (`callformats.CALL_FORMATS[family]`): one or more
        calls of `tools`, or a plain-text reply (no call), under the same stop rules as the toolcall
        track."""
        from slm_swap.local.callformats import CALL_FORMATS, NATIVE

        native = CALL_FORMATS.get(family)
        if native is None:
            raise ConfigError(
                f"{settings.CONSTRAINED} with {settings.PROTOCOL} native: no grammar for the {family} tool "
                f"format (there is one for {', '.join(CALL_FORMATS)})\n  fix: drop {settings.CONSTRAINED}"
            )
        reply = native.lark([])
        if not tools:
            only = "start: reply\n" + reply[reply.index("reply:") :]
            return Constraint(self.compiler.compile_lark(only), NATIVE + family)
        lark = native.lark([t.name for t in tools])
        return Constraint(self._lark(lark, tools), NATIVE + family, stop_or_continue=True, may_abstain=True)

    def _lark(self, lark: str, tools: Sequence[ToolSpec]) -> xgrammar.CompiledGrammar:
        try:
            arguments = {
                f"args{i}": self.xgr.Grammar.from_json_schema(json.dumps(strict_parameters(t)), **JSON_LAYOUT)
                for i, t in enumerate(tools)
            }
            return self.compiler.compile_lark(lark, named_grammars=arguments)
        except (RuntimeError, TypeError) as e:  # xgrammar's report of a schema it cannot compile
            raise ValueError(f"cannot build a tool-call grammar: {e}") from e

    def processor(self, grammars: Sequence[xgrammar.CompiledGrammar | None]) -> GrammarProcessor:
        """A logits processor for one `generate` call over a batch; row i follows `grammars[i]`
        (None: unconstrained)."""
        return GrammarProcessor(self.xgr, grammars, self.vocab_size)


_CALLS_LARK = 'calls: call ("\\n" call)*\ncall: {calls}\n'


def _alternatives(tools: Sequence[ToolSpec]) -> str:
    """One lark alternative per tool: its opening, its arguments (`@args<i>`), the closing."""
    return " | ".join(f'{json.dumps(_begin(t.name))} @args{i} "</tool_call>"' for i, t in enumerate(tools))


def _begin(name: str) -> str:
    return f'<tool_call name="{name}">'


class GrammarProcessor:
    """A transformers logits processor that masks, row by row, the tokens each row's grammar forbids.

    Made for one `generate` call (matchers hold each row's state). Rows without a grammar are left
    alone; a row whose grammar has ended is only allowed to stop."""

    def __init__(self, xgr: Any, grammars: Sequence[xgrammar.CompiledGrammar | None], vocab_size: int):
        self.xgr = xgr
        self.matchers = [None if g is None else xgr.GrammarMatcher(g) for g in grammars]
        self.constrained = [i for i, m in enumerate(self.matchers) if m is not None]
        self.bitmask = xgr.allocate_token_bitmask(len(grammars), vocab_size)
        self.started = False

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.constrained:
            return scores
        if self.started:  # the token chosen at the previous step: advance each row's grammar
            last = input_ids[:, -1].tolist()
            for i in self.constrained:
                matcher = self.matchers[i]
                if matcher is not None and not matcher.is_terminated():
                    matcher.accept_token(last[i])
        self.started = True
        for i in self.constrained:
            matcher = self.matchers[i]
            if matcher is not None and not matcher.is_terminated():
                matcher.fill_next_token_bitmask(self.bitmask, i)
        self.xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device), indices=self.constrained)
        return scores
