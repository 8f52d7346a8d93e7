"""Grammar-constrained decoding: every gold answer is inside its grammar, and generation under a grammar
only ever produces text the grammar accepts (on the tiny model, whose free output is noise)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from slm_swap.backends.local import LocalBackend, LocalConfig
from slm_swap.data.formats import dumps
from slm_swap.data.prepare import prepare
from slm_swap.data.sources import sample_path, xlam_source
from slm_swap.data.splits import SplitSizes
from slm_swap.files import read_examples
from slm_swap.local.constrained import Constraint, Grammars
from slm_swap.local.stops import RULE
from slm_swap.runs import read_run
from slm_swap.scoring.parse import parse_structured, parse_toolcall
from slm_swap.types import Example, ToolSpec
from tests.cli import cli

TOKENIZER = Path(__file__).parent / "data" / "smollm2-tokenizer"


@pytest.fixture(scope="module")
def grammars() -> Grammars:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    return Grammars(tokenizer, 49152)


def accepts(grammars: Grammars, constraint: Constraint, text: str, *, complete: bool = True) -> bool:
    """Whether `text` (tokenized as the model would write it) is inside `constraint`'s grammar; with
    `complete`, also that the grammar may end there."""
    import xgrammar as xgr

    tokenizer = grammars.tokenizer
    matcher = xgr.GrammarMatcher(constraint.grammar)
    if not all(matcher.accept_token(t) for t in tokenizer(text, add_special_tokens=False)["input_ids"]):
        return False
    return not complete or matcher.accept_token(tokenizer.eos_token_id)


def test_every_gold_answer_of_the_shipped_sample_is_inside_its_grammar(
    grammars: Grammars, tmp_path: Path
) -> None:
    prepare(xlam_source(sample_path()), tmp_path, SplitSizes(300, 100, 200))
    for track in ("structured", "toolcall"):
        examples = [
            e
            for split in ("train", "val", "test")
            for e in read_examples(tmp_path / track / f"{split}.jsonl")
        ]
        assert len(examples) == 600
        rejected = [
            e.id for e in examples if not accepts(grammars, grammars.for_track(track, e.tools), e.completion)
        ]
        assert rejected == []


def test_grammars_reject_what_the_scorer_rejects(grammars: Grammars, prepared: list[Example]) -> None:
    example = prepared[0]
    toolcall = grammars.for_track("toolcall", example.tools)
    structured = grammars.for_track("structured", example.tools)
    call = example.gold[0]
    good = f'<tool_call name="{call.name}">{dumps(call.arguments)}</tool_call>'
    assert accepts(grammars, toolcall, good)
    assert not accepts(grammars, toolcall, good.replace(call.name, "no_such_tool"))
    assert not accepts(grammars, toolcall, "Sure! " + good)
    assert not accepts(grammars, toolcall, good[:-3])  # unfinished
    assert not accepts(grammars, structured, good)
    # No call is an answer (a plain reply; no `<` in it), unless calls are required.
    assert accepts(grammars, structured, '{"calls": []}')
    assert not accepts(
        grammars, grammars.for_track("structured", example.tools, no_call=False), '{"calls": []}'
    )
    assert accepts(grammars, toolcall, "None of these tools can do that.")
    assert not accepts(grammars, toolcall, "I will call <tool_call")
    assert not accepts(grammars, grammars.for_track("toolcall", example.tools, no_call=False), "No.")


def test_tool_call_grammar_checks_argument_types_and_undeclared_arguments(grammars: Grammars) -> None:
    tool = ToolSpec(
        "set_alarm",
        "",
        {
            "type": "object",
            "properties": {
                "hour": {"type": "integer"},
                "label": {"type": "string"},
                "extra": {"type": "object"},
            },
            "required": ["hour"],
        },
    )
    grammar = grammars.tool_calls([tool])
    assert accepts(grammars, grammar, '<tool_call name="set_alarm">{"hour": 7}</tool_call>')
    assert accepts(
        grammars, grammar, '<tool_call name="set_alarm">{"hour": 7, "extra": {"any": [1]}}</tool_call>'
    )
    assert not accepts(grammars, grammar, '<tool_call name="set_alarm">{"hour": "7"}</tool_call>')
    assert not accepts(grammars, grammar, '<tool_call name="set_alarm">{"label": "x"}</tool_call>')
    assert not accepts(grammars, grammar, '<tool_call name="set_alarm">{"hour": 7, "day": 1}</tool_call>')
    two = [
        '<tool_call name="set_alarm">{"hour": 7}</tool_call>',
        '<tool_call name="set_alarm">{"hour": 8}</tool_call>',
    ]
    assert accepts(grammars, grammar, "\n".join(two))


def test_constrained_generation_stays_inside_the_grammar(prepared: list[Example], tiny_model: Path) -> None:
    free = LocalBackend(LocalConfig(tiny_model, batch_size=4, max_new_tokens=48)).complete(prepared[:4])
    backend = LocalBackend(LocalConfig(tiny_model, batch_size=4, max_new_tokens=48, constrained=True))
    engine = backend.engine
    texts = [engine.render(e.messages()) for e in prepared[:4]]
    calls = [engine.grammars.for_track("toolcall", e.tools, no_call=False) for e in prepared[:4]]
    for answers, may_abstain in (
        (backend.complete(prepared[:4]), True),
        (engine.generate(texts, 48, constraints=calls), False),
    ):
        for example, completion in zip(prepared[:4], answers, strict=True):
            grammar = engine.grammars.for_track("toolcall", example.tools, no_call=may_abstain)
            if may_abstain and not completion.text.startswith("<"):
                assert "<" not in completion.text and completion.text.strip()  # a reply: no call
            else:
                assert completion.text.startswith('<tool_call name="')
                assert completion.text[len('<tool_call name="') :].split('"')[0] in {
                    t.name for t in example.tools
                }
            # Cut by the token limit or finished, the text is a prefix the grammar accepts.
            assert accepts(engine.grammars, grammar, completion.text, complete=False)
    assert not any(c.text.startswith("<tool_call") for c in free)


def test_a_bounded_schema_always_yields_a_parsed_answer(tiny_model: Path) -> None:
    backend = LocalBackend(LocalConfig(tiny_model, max_new_tokens=32, constrained=True))
    schema = {
        "type": "object",
        "properties": {"ok": {"type": "boolean"}, "level": {"enum": ["low", "high"]}},
        "required": ["ok", "level"],
        "additionalProperties": False,
    }
    texts = [backend.engine.render([{"role": "user", "content": q}]) for q in ("Is it ok?", "Level?")]
    answers = backend.generate_texts(texts, constraints=[backend.engine.grammars.json_schema(schema)] * 2)
    for answer in answers:
        value = json.loads(answer.text)
        assert (
            set(value) == {"ok", "level"}
            and isinstance(value["ok"], bool)
            and value["level"] in ("low", "high")
        )


def test_unconstrained_rows_of_a_mixed_batch_are_untouched(prepared: list[Example], tiny_model: Path) -> None:
    backend = LocalBackend(LocalConfig(tiny_model, max_new_tokens=16, constrained=True))
    texts = [backend.engine.render(e.messages()) for e in prepared[:2]]
    free = backend.generate_texts(texts)
    mixed = backend.generate_texts(
        texts,
        constraints=[backend.engine.grammars.for_track("toolcall", prepared[0].tools, no_call=False), None],
    )
    assert mixed[1].text == free[1].text
    assert mixed[0].text != free[0].text and mixed[0].text.startswith("<tool_call")


def test_structured_constrained_output_parses_as_far_as_it_goes(
    prepared: list[Example], tiny_model: Path
) -> None:
    backend = LocalBackend(LocalConfig(tiny_model, max_new_tokens=200, constrained=True))
    example = prepared[0]
    structured = replace(example, track="structured")
    grammar = backend.engine.grammars.for_track("structured", example.tools, no_call=False)
    rendered = backend.engine.render(structured.messages())
    text = backend.generate_texts([rendered], constraints=[grammar])[0].text
    assert text.startswith('{"calls": [{"name": "')
    assert accepts(backend.engine.grammars, grammar, text, complete=False)
    if accepts(backend.engine.grammars, grammar, text):
        assert parse_structured(text).calls


def test_eval_records_constrained_decoding(prepared: list[Example], tiny_model: Path) -> None:
    args = ["eval", "--track", "toolcall", "--model-kind", "slm", "--model-path", str(tiny_model)]
    result = cli([*args, "--max-new-tokens", "8", "--constrained"])
    assert result.exit_code == 0, result.output
    run = read_run(Path("05_eval/toolcall_slm_test.json"))
    assert run.meta.constrained is True
    assert run.meta.settings["decoding"] == f"greedy, grammar-constrained, {RULE}"
    # Each answer is a call or a reply (no call), as the grammar allows.
    assert all(r.output.startswith("<tool_call") or "<" not in r.output for r in run.results)
    # An unconstrained run is other inputs: it is not mistaken for the constrained one.
    again = cli([*args, "--max-new-tokens", "8"])
    assert again.exit_code == 2 and "other inputs" in again.output


def test_constrained_is_refused_for_hosted_models(workspace: Path) -> None:
    hosted = ["--model-kind", "openai", "--model", "m", "--base-url", "http://127.0.0.1:1/v1"]
    refused = cli(["eval", "--track", "toolcall", *hosted, "--constrained"])
    assert refused.exit_code == 2
    assert "--constrained applies to the local model" in refused.output
    assert "serve --constrained" in refused.output


def test_free_prompt_constrained_to_json(workspace: Path, tiny_model: Path) -> None:
    base = ["infer", "--model-kind", "slm", "--model-path", str(tiny_model), "--max-new-tokens", "12"]
    result = cli([*base, "--track", "structured", "--prompt", "hi", "--constrained"])
    assert result.exit_code == 0, result.output
    refused = cli([*base, "--track", "toolcall", "--prompt", "hi", "--constrained"])
    assert refused.exit_code == 2 and "no tools" in refused.output


def test_parse_toolcall_reads_what_the_grammar_writes(grammars: Grammars) -> None:
    text = '<tool_call name="a">{"x": 1}</tool_call>\n<tool_call name="b">{}</tool_call>'
    tools = [
        ToolSpec("a", "", {"type": "object", "properties": {"x": {"type": "integer"}}}),
        ToolSpec("b", "", {"type": "object", "properties": {}}),
    ]
    assert accepts(grammars, grammars.tool_calls(tools), text)
    assert [c.name for c in parse_toolcall(text).calls] == ["a", "b"]


def test_a_schema_xgrammar_cannot_compile_is_that_examples_error(
    prepared: list[Example], tiny_model: Path, workspace: Path
) -> None:
    """The backend contract: one example's failure is its completion's error; the batch and the run go on."""
    from dataclasses import replace

    from slm_swap.evaluate import evaluate, run_meta
    from slm_swap.tracing import NullTracer

    bad_tool = ToolSpec("odd", "", {"type": "object", "properties": {"x": {"type": "wat"}}})
    broken = replace(prepared[1], tools=(*prepared[1].tools, bad_tool))
    examples = [prepared[0], broken, prepared[2]]
    backend = LocalBackend(LocalConfig(tiny_model, batch_size=3, max_new_tokens=8, constrained=True))
    completions = backend.complete(examples)
    assert completions[1].text == "" and "grammar" in (completions[1].error or "")
    assert completions[0].error is None and completions[0].text
    assert completions[2].error is None and completions[2].text
    dataset = Path("02_dataset/toolcall/test.jsonl")
    outcome = evaluate(
        examples, backend, run_meta("toolcall", "test", dataset, backend), Path("r.json"), NullTracer()
    )
    assert [r.error_category for r in outcome.run.results][1] == "no_output"


def test_every_way_to_ask_for_calls_gets_the_stop_rules(grammars: Grammars) -> None:
    """The one rule set, by what the grammar allows: answers of calls stop at a repeat; where the grammar
    allows only the end or one more call, the likelier of the two is taken."""
    from slm_swap.serve import ChatRequest, choose_grammar, render_messages

    tools = [ToolSpec("set_mode", "", {"type": "object", "properties": {"mode": {"type": "string"}}})]
    for track in ("toolcall", "structured"):
        answer = grammars.for_track(track, tools)
        assert (answer.calls, answer.stop_or_continue) == (track, True)

    def constraint(constrained: bool = False, **fields: Any) -> Constraint | None:
        offered = [{"type": "function", "function": {"name": "set_mode", "parameters": tools[0].parameters}}]
        request = ChatRequest.model_validate(
            {"messages": [{"role": "user", "content": "eco"}], "tools": offered, **fields}
        )
        return choose_grammar(request, render_messages(request), grammars, constrained=constrained)  # type: ignore[no-any-return]

    required = constraint(tool_choice="required")
    assert required is not None and (required.calls, required.stop_or_continue) == ("toolcall", True)
    single = constraint(tool_choice="required", parallel_tool_calls=False)
    assert single is not None and (single.calls, single.stop_or_continue) == ("toolcall", False)
    named = constraint(tool_choice={"type": "function", "function": {"name": "set_mode"}})
    assert named is not None and (named.calls, named.stop_or_continue) == ("toolcall", False)
    auto = constraint(constrained=True)  # the toolcall answer: calls, or a reply chosen like the end
    assert auto is not None and (auto.calls, auto.stop_or_continue, auto.may_abstain) == (
        "toolcall",
        True,
        True,
    )
    assert constraint() is None  # auto, unconstrained: free decoding
    schema = {"type": "json_schema", "json_schema": {"name": "m", "schema": {"type": "object"}}}
    answer = constraint(response_format=schema, tool_choice="none")
    assert answer is not None and answer.calls is None  # a client's own JSON: not an answer of calls
