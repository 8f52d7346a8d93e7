"""The stop rules of constrained decoding: an answer ends where ending is likelier than one more call, and
at a repeated call, cut back before it; several different calls stay possible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slm_swap.local.constrained import Constraint
from slm_swap.local.engine import Engine
from slm_swap.local.stops import (
    LOOP_WINDOW,
    WAYS,
    LoopStop,
    closes_next,
    could_end,
    cut_at_repeat,
    loop_length,
)
from slm_swap.scoring.parse import parse_structured, parse_toolcall
from slm_swap.types import ToolSpec, Track


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


def test_the_points_where_an_answer_could_end_are_found_in_both_formats() -> None:
    paris = block("weather", {"city": "Paris}>"})  # closing characters inside a string are not the end
    assert could_end("toolcall", paris) and not could_end("toolcall", paris[:-1])
    assert closes_next("toolcall", paris[:-1]) and not closes_next("toolcall", paris)
    entry = json.dumps({"name": "weather", "arguments": {"city": "a}", "at": {"day": 1}}})
    text = '{"calls": [' + entry
    assert could_end("structured", text) and could_end("structured", f"{text}, {entry}")
    assert closes_next("structured", text[:-1])  # the arguments closed: the entry closes next
    assert not closes_next("structured", text[: text.index("}}") + 1])  # an inner object closed
    assert not could_end("structured", text[:-1]) and not could_end("structured", text + "]}")
    assert not could_end("structured", '{"calls": [{"name": "a}')


class Collect:
    """A transformers streamer keeping each row's generated tokens."""

    def __init__(self, rows: int):
        self.ids: list[list[int]] = [[] for _ in range(rows)]

    def put(self, value: Any) -> None:
        if value.dim() == 1:  # one step's tokens (the prompt comes first, as a matrix)
            for row, token in zip(self.ids, value.tolist(), strict=True):
                row.append(token)

    def end(self) -> None:
        pass


def likelihoods(engine: Engine, context: list[int], track: Track) -> tuple[float, float]:
    """log P(end), log P(one more call) after `context`, computed here by plain teacher forcing."""
    import torch

    ways, tokenizer = WAYS[track], engine.tokenizer
    end = tokenizer(ways.end, add_special_tokens=False)["input_ids"] if ways.end else []
    more = tokenizer(ways.more, add_special_tokens=False)["input_ids"]
    totals = []
    for way in ([*end, tokenizer.eos_token_id], more):
        with torch.inference_mode():
            log_probs = torch.log_softmax(engine.llm(torch.tensor([context + way])).logits[0].float(), -1)
        totals.append(sum(float(log_probs[len(context) + j - 1, t]) for j, t in enumerate(way)))
    return totals[0], totals[1]


def check_choices(
    engine: Engine, texts: list[str], constraints: list[Constraint], track: Track
) -> dict[str, int]:
    """Generates, then checks against likelihoods computed independently here on the tokens generated:
    after every call of every answer, it went on if and only if the model found the opening of one more
    call likelier than the end. Returns how many of each choice were checked."""
    collect = Collect(len(texts))
    engine.generate(texts, 160, constraints=constraints, streamer=collect)
    eos = engine.tokenizer.eos_token_id
    decisions = {"end": 0, "more": 0}
    for text, ids in zip(texts, collect.ids, strict=True):
        prompt = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
        ended = eos in ids
        ids = ids[: ids.index(eos)] if ended else ids
        points = [k for k in range(1, len(ids) + 1) if could_end(track, engine.tokenizer.decode(ids[:k]))]
        for k in points:
            if k == len(ids) and not ended:
                continue  # stopped there by the repeat rule or the token limit, not by a choice
            end, more = likelihoods(engine, prompt + ids[:k], track)
            went_on = engine.tokenizer.decode(ids[k:]).startswith(WAYS[track].more[0])
            assert went_on == (more > end), (engine.tokenizer.decode(ids), k, end, more)
            decisions["more" if went_on else "end"] += 1
    return decisions


@pytest.mark.parametrize(
    ("track", "adapted"), [("toolcall", False), ("structured", False), ("toolcall", True)]
)
def test_an_answer_ends_where_the_end_is_likelier(
    track: Track, adapted: bool, tiny_model: Path, tiny_adapter: Path
) -> None:
    """Tools without parameters, so that a random tiny model completes calls; to such a model the end
    (one or three tokens) is always likelier than the opening of one more call (five or more). The other
    choice is checked on the real model (`test_embedded_model.py`). With an adapter, the choice is the
    adapted model's."""
    engine = Engine(tiny_model, {"adapter": tiny_adapter} if adapted else None)
    tools = [ToolSpec(name, "", {"type": "object", "properties": {}}) for name in ("f", "g", "h", "k")]
    queries = ["call", "call them all", "one", "f then g", "nothing", "k", "h and k", "all four"]
    texts = [engine.render([{"role": "user", "content": q}]) for q in queries]
    answers = [engine.grammars.for_track(track, tools, no_call=False)] * len(texts)
    decisions = check_choices(engine, texts, answers, track)
    assert decisions["end"] >= 4, decisions


def test_a_runaway_answer_stops_at_the_repeat(tiny_model: Path) -> None:
    """EOS is held off (transformers' MinNewTokensLengthLogitsProcessor), so under the grammar the model
    can only add calls: without the rule it fills the token limit with them, with it the answer stops
    at the first repeat and every call in it is different."""
    from transformers import MinNewTokensLengthLogitsProcessor

    engine = Engine(tiny_model)
    tools = (
        ToolSpec("f", "", {"type": "object", "properties": {}}),
        ToolSpec("g", "", {"type": "object", "properties": {}}),
    )
    grammar = engine.grammars.tool_calls(tools).grammar
    text = engine.render([{"role": "user", "content": "call"}])
    hold_eos = MinNewTokensLengthLogitsProcessor(
        engine.prompt_tokens(text), 400, engine.tokenizer.eos_token_id
    )

    def answer(calls: Track | None) -> Any:
        constraint = Constraint(grammar, calls)  # the repeat rule alone: EOS is held off anyway
        return engine.generate([text], 160, constraints=[constraint], processors=[hold_eos])[0]

    runaway, stopped = answer(None), answer("toolcall")
    runaway_calls = parse_toolcall(runaway.text).calls or ()
    calls = parse_toolcall(stopped.text).calls or ()
    assert len(runaway_calls) > len({c.name for c in runaway_calls})  # it repeats itself
    assert parse_toolcall(stopped.text).valid and 1 <= len(calls) <= 2
    assert len({c.name for c in calls}) == len(calls)  # no call twice
    assert stopped.usage.completion_tokens < runaway.usage.completion_tokens
    assert runaway.text.startswith(stopped.text)  # greedy: the same answer, cut at the repeat


def test_a_loop_is_a_stretch_that_repeats_one_short_unit() -> None:
    assert loop_length([1, 2, 3, 4]) == 0
    assert loop_length([7, 1, 1, 1, 1, 9]) == 4
    assert loop_length([5, 1, 2, 1, 2, 1, 8]) == 5  # (1 2) twice and a half
    assert loop_length([1, 2, 3] * 5, max_unit=2) == 0  # its unit is longer than allowed
    import torch

    prompt = [9, 9]
    rows = torch.tensor([prompt + [4, 5] * (LOOP_WINDOW // 2), prompt + list(range(LOOP_WINDOW))])
    assert LoopStop(2, [True, True])(rows, None).tolist() == [True, False]
    assert LoopStop(2, [False, True])(rows, None).tolist() == [False, False]  # not asked for
    assert LoopStop(2, [True, True])(rows[:, :-1], None).tolist() == [False, False]  # not yet a window


class Force:
    """A logits processor that makes the model write `ids`, one per step: a model caught in a loop."""

    def __init__(self, ids: list[int]):
        self.ids = ids
        self.step = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        forced = torch.full_like(scores, -torch.inf)
        forced[:, self.ids[self.step]] = 0.0
        self.step += 1
        return forced


def test_a_looping_constrained_answer_stops_early_and_a_free_one_is_left_alone(tiny_model: Path) -> None:
    engine = Engine(tiny_model)
    loop = engine.tokenizer('["x"' + ', "x"' * 200, add_special_tokens=False)["input_ids"]
    text = engine.render([{"role": "user", "content": "a list"}])
    strings = engine.grammars.json_schema({"type": "array", "items": {"type": "string"}})
    free = engine.generate([text], 200, processors=[Force(loop)])[0]
    stopped = engine.generate([text], 200, constraints=[strings], processors=[Force(loop)])[0]
    assert free.usage.completion_tokens == 200
    assert LOOP_WINDOW <= stopped.usage.completion_tokens < LOOP_WINDOW + 16
    assert free.text.startswith(stopped.text)


def test_no_call_or_a_first_call_is_chosen_on_the_likelihood_of_each(tiny_model: Path) -> None:
    """Rule 0: at the answer's start the model writes the no-call answer exactly where it finds the first
    token of that answer (structured `]}` after `{"calls": [`, toolcall `NO_CALL_REPLY`'s first word)
    likelier than the first token of a call's opening, computed here independently by a forward pass;
    otherwise it calls."""
    import torch

    engine = Engine(tiny_model)
    tools = [ToolSpec(name, "", {"type": "object", "properties": {}}) for name in ("f", "g")]
    texts = [engine.render([{"role": "user", "content": q}]) for q in ("call f", "hello", "g", "weather?")]
    chosen = set()
    for track, start in (("toolcall", ""), ("structured", '{"calls": [')):
        way = WAYS[track]
        collect = Collect(len(texts))
        answers = engine.generate(
            texts, 24, constraints=[engine.grammars.for_track(track, tools)] * len(texts), streamer=collect
        )
        for text, answer, ids in zip(texts, answers, collect.ids, strict=True):
            prompt = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
            k = next(k for k in range(len(ids) + 1) if engine.tokenizer.decode(ids[:k]) == start)
            context = prompt + ids[:k]
            with torch.inference_mode():
                log_probs = torch.log_softmax(engine.llm(torch.tensor([context])).logits[0, -1].float(), -1)
            no_call, call = (
                float(log_probs[engine.tokenizer(w, add_special_tokens=False)["input_ids"][0]])
                for w in (way.no_call, way.first)
            )
            called = answer.text.startswith(start + "{" if start else "<")  # a call began (it may be cut)
            assert called == (call > no_call), (track, answer.text, no_call, call)
            assert called or answer.text == '{"calls": []}' or "<" not in answer.text
            chosen.add(called)
    assert chosen == {True, False}, "both ways should be taken somewhere in this set"
