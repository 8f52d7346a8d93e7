"""Grammar-constrained decoding with xgrammar: at every step, tokens that would break the answer format are
masked out, so a constrained answer always parses.

Grammars, per example (built from the tools the example offers):

* structured: the JSON Schema of the answer (`formats.answer_schema`): `{"calls": [...]}` where each call
  names an offered tool and its arguments satisfy that tool's parameters;
* toolcall: one or more `<tool_call name="TOOL">{arguments}</tool_call>` blocks, one per line, each TOOL
  an offered tool and its arguments that tool's parameter schema;
* for `serve`: a client's JSON Schema (`response_format`), any JSON (`json_object`), and tool calls under
  `auto` (free text, but a `<tool_call` once begun must be well formed).

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

from slm_swap.data.formats import answer_schema, strict_parameters
from slm_swap.errors import ConfigError
from slm_swap.types import ToolSpec, Track

if TYPE_CHECKING:
    import torch
    import xgrammar

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
    calls: Track | None = None
    stop_or_continue: bool = False


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

    def for_track(self, track: Track, tools: Sequence[ToolSpec]) -> Constraint:
        """The answer of `track` for an example offering `tools`: one or more calls."""
        if track == "structured":
            return Constraint(self._json_schema(answer_schema(tools)), "structured", stop_or_continue=True)
        return self.tool_calls(tools)

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
        alternatives = " | ".join(
            f'{json.dumps(_begin(t.name))} @args{i} "</tool_call>"' for i, t in enumerate(tools)
        )
        repeat = ' ("\\n" call)*' if parallel else ""
        lark = f"start: call{repeat}\ncall: {alternatives}\n"
        try:
            arguments = {
                f"args{i}": self.xgr.Grammar.from_json_schema(json.dumps(strict_parameters(t)), **JSON_LAYOUT)
                for i, t in enumerate(tools)
            }
            grammar = self.compiler.compile_lark(lark, named_grammars=arguments)
        except (RuntimeError, TypeError) as e:  # xgrammar's report of a schema it cannot compile
            raise ValueError(f"cannot build a tool-call grammar: {e}") from e
        return Constraint(grammar, "toolcall", stop_or_continue=parallel)

    def optional_tool_calls(self, tools: Sequence[ToolSpec]) -> Constraint:
        """Free text, in which every `<tool_call` begun must be a well-formed call of one of `tools`
        (`tool_choice: auto` under `serve --constrained`)."""
        st = self.xgr.structural_tag
        tags = [
            st.TagFormat(
                begin=_begin(t.name),
                content=st.JSONSchemaFormat(json_schema=strict_parameters(t), max_whitespace_cnt=1),
                end="</tool_call>",
            )
            for t in tools
        ]
        tag = st.StructuralTag(format=st.TriggeredTagsFormat(triggers=["<tool_call"], tags=tags))
        try:
            grammar = self.compiler.compile_structural_tag(tag)
        except RuntimeError as e:
            raise ValueError(f"cannot build a tool-call grammar: {e}") from e
        # Calls within free text: a repeated call still ends the answer; prose may follow any call.
        return Constraint(grammar, "toolcall")

    def processor(self, grammars: Sequence[xgrammar.CompiledGrammar | None]) -> GrammarProcessor:
        """A logits processor for one `generate` call over a batch; row i follows `grammars[i]`
        (None: unconstrained)."""
        return GrammarProcessor(self.xgr, grammars, self.vocab_size)


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
