"""The stop rule of constrained decoding: an answer ends at a repeated call, cut back before it; several
different calls stay possible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slm_swap.scoring.parse import parse_structured, parse_toolcall
from slm_swap.stops import cut_at_repeat
from slm_swap.types import ToolSpec


def block(name: str, arguments: dict[str, Any]) -> str:
    return f'<tool_call name="{name}">{json.dumps(arguments)}</tool_call>'


def test_a_repeated_call_is_cut_and_different_calls_are_kept() -> None:
    paris, rome = block("weather", {"city": "Paris"}), block("weather", {"city": "Rome"})
    assert cut_at_repeat(f"{paris}\n{rome}") is None  # two different calls: a legitimate parallel answer
    assert cut_at_repeat(f"{paris}\n{rome}\n{paris}") == f"{paris}\n{rome}"
    assert cut_at_repeat(f"{paris}\n{paris}\n{paris}") == paris
    assert cut_at_repeat(f'{paris}\n<tool_call name="weather">{{"city": "Par') is None  # not complete yet
    # Same arguments in another key order are the same call.
    a, b = block("f", {"x": 1, "y": 2}), block("f", {"y": 2, "x": 1})
    assert cut_at_repeat(f"{a}\n{b}") == a


def test_a_repeated_structured_call_is_cut_and_the_answer_closed() -> None:
    one = {"name": "weather", "arguments": {"city": "Paris"}}
    two = {"name": "time", "arguments": {"tz": "CET"}}
    text = '{"calls": [' + ", ".join(json.dumps(c) for c in (one, two, one))
    cut = cut_at_repeat(text)
    assert cut is not None and json.loads(cut) == {"calls": [one, two]}
    assert parse_structured(cut).valid
    assert cut_at_repeat(json.dumps({"calls": [one, two]})) is None
    assert cut_at_repeat('{"calls": [' + json.dumps(one) + ', {"name": "wea') is None


def test_constrained_generation_stops_at_the_repeat(tiny_model: Path) -> None:
    """EOS is held off (transformers' MinNewTokensLengthLogitsProcessor), so under the grammar the model
    can only add calls: without the rule it fills the token limit with them, with it the answer stops
    at the first repeat and every call in it is different."""
    from transformers import MinNewTokensLengthLogitsProcessor

    from slm_swap.backends.local import LocalBackend, chat_text, generate_batch

    backend = LocalBackend(tiny_model, constrained=True)
    assert backend.grammars is not None
    tools = (
        ToolSpec("f", "", {"type": "object", "properties": {}}),
        ToolSpec("g", "", {"type": "object", "properties": {}}),
    )
    grammar = backend.grammars.tool_calls(tools)
    text = chat_text(backend.tokenizer, [{"role": "user", "content": "call"}])
    prompt_length = len(backend.tokenizer(text, add_special_tokens=False)["input_ids"])
    hold_eos = MinNewTokensLengthLogitsProcessor(prompt_length, 400, backend.tokenizer.eos_token_id)

    def answer(stop: bool) -> Any:
        grammar_mask = backend.grammars.processor([grammar])  # type: ignore[union-attr]

        def processor(input_ids: Any, scores: Any) -> Any:
            return grammar_mask(input_ids, hold_eos(input_ids, scores))

        return generate_batch(
            backend.llm, backend.tokenizer, [text], 160, processor=processor, stop_at_repeat=[stop]
        )[0]

    runaway, stopped = answer(False), answer(True)
    runaway_calls = parse_toolcall(runaway.text).calls or ()
    calls = parse_toolcall(stopped.text).calls or ()
    assert len(runaway_calls) > len({c.name for c in runaway_calls})  # it repeats itself
    assert parse_toolcall(stopped.text).valid and 1 <= len(calls) <= 2
    assert len({c.name for c in calls}) == len(calls)  # no call twice
    assert stopped.usage.completion_tokens < runaway.usage.completion_tokens
    assert runaway.text.startswith(stopped.text)  # greedy: the same answer, cut at the repeat
