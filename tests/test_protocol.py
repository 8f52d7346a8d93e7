"""The native protocol: a model asked the way it is used (`protocol.py`). Hosted models through the real
`openai` client against a stand-in server (tests/openai_server.py) that answers with `tool_calls`."""

from __future__ import annotations

import json
from pathlib import Path

from slm_swap import protocol
from slm_swap.data.formats import Turn, render_turns
from slm_swap.files import read_examples, schema_problem
from slm_swap.runs import read_run
from slm_swap.types import Example, ToolCall, ToolSpec
from tests.cli import cli
from tests.openai_server import FakeOpenAIServer
from tests.test_hosted import openai_args

WEATHER = ToolSpec(
    "get_weather",
    "Current weather",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}, "required": ["lat"]},
        },
        "required": ["city"],
    },
)
FREE_FORM = ToolSpec("log", "", {"type": "object", "properties": {"fields": {"type": "object"}}})


def tool_call(name: str, arguments: str, n: int = 0) -> dict[str, object]:
    return {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": arguments}}


def test_the_structured_answer_schema_is_made_strict_where_it_can_be() -> None:
    strict = protocol.response_format([WEATHER])["json_schema"]
    assert strict["strict"] is True
    call = strict["schema"]["properties"]["calls"]["items"]["anyOf"][0]
    arguments = call["properties"]["arguments"]
    # Strict mode: every object closed, every property required, an optional one nullable.
    assert arguments["required"] == ["city", "unit", "where"] and arguments["additionalProperties"] is False
    assert arguments["properties"]["unit"] == {
        "anyOf": [{"type": "string", "enum": ["c", "f"]}, {"type": "null"}]
    }
    assert arguments["properties"]["city"] == {"type": "string"}
    where = arguments["properties"]["where"]["anyOf"][0]
    assert where["additionalProperties"] is False and where["required"] == ["lat"]
    assert call["properties"]["name"] == {"enum": ["get_weather"]}
    # An answer in the strict schema, with a null for a left-out argument, is read as the call without it.
    answer = (
        '{"calls": [{"name": "get_weather", "arguments": {"city": "Oslo", "unit": null, "where": null}}]}'
    )
    assert schema_problem(json.loads(answer), strict["schema"]) is None
    assert (
        protocol.without_nulls(answer, [WEATHER])
        == '{"calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]}'
    )
    # A free-form object cannot be written in strict mode: the schema goes as it is, not strict.
    loose = protocol.response_format([WEATHER, FREE_FORM])["json_schema"]
    assert loose["strict"] is False and loose["schema"]["properties"]["calls"]["minItems"] == 0


def test_native_messages_carry_calls_and_results_as_the_api_has_them() -> None:
    turns = [
        Turn("assistant", "Checking.", (ToolCall("get_weather", {"city": "Oslo"}),)),
        Turn("tool", '{"temp": 3}', name="get_weather"),
        Turn("user", "And tomorrow?"),
    ]
    for track in ("toolcall", "structured"):
        example = Example(
            id="r1", track=track, source="openai", query="Weather in Oslo?", tools=(WEATHER,), gold=(),
            acceptable=(), system=f"{protocol.SYSTEM_PROMPTS[track]}\n\nBe brief.", prompt="p", completion="",
            turns=tuple(render_turns(track, turns)),
        )  # fmt: skip
        assert protocol.native_messages(example) == [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [tool_call("get_weather", '{"city": "Oslo"}')],
            },
            {"role": "tool", "tool_call_id": "call_0", "name": "get_weather", "content": '{"temp": 3}'},
            {"role": "user", "content": "And tomorrow?"},
        ], track


def test_hosted_native_toolcall_eval_scores_tool_calls(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    """Each kind of native answer, through `eval --protocol native`: right calls, a call with text beside
    it, arguments that are not JSON, a tool that was not offered, and a reply with no call."""
    singles = [e for e in prepared if len(e.gold) == 1]
    others = [e for e in prepared if e not in singles[:2]]
    bad_json, unknown, right, with_text, no_call = singles[:2] + others[:3]
    rows = {e.id for e in (right, with_text, bad_json, unknown, no_call)}
    for e in (right, with_text):
        calls = [tool_call(c.name, json.dumps(c.arguments), n) for n, c in enumerate(e.gold)]
        openai_server.answers[e.query] = {"content": "Sure." if e is with_text else None, "tool_calls": calls}
    openai_server.answers[bad_json.query] = {"tool_calls": [tool_call(bad_json.gold[0].name, '{"a": ')]}
    openai_server.answers[unknown.query] = {"tool_calls": [tool_call("launch_rocket", "{}")]}
    openai_server.answers[no_call.query] = "I can't help with that."
    split = Path("02_dataset/toolcall/test.jsonl")
    Path("five/toolcall").mkdir(parents=True)
    lines = [line for line in split.read_text().splitlines(True) if json.loads(line)["id"] in rows]
    Path("five/toolcall/test.jsonl").write_text("".join(lines))
    out = "05_eval/native.json"
    result = cli(["eval", "--track", "toolcall", *openai_args(openai_server), "--protocol", "native",
         "--dataset-dir", "five", "--out", out],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    run = read_run(Path(out))
    by_id = {r.id: r for r in run.results}
    assert by_id[right.id].metrics["ast_match"] == 1.0
    assert by_id[with_text.id].metrics["ast_match"] == 1.0  # the text beside a call is not the answer
    assert by_id[bad_json.id].error_category == "invalid_format"  # a malformed call, not an abstention
    assert by_id[unknown.id].metrics["ast_match"] == 0.0 and by_id[unknown.id].error_category == "wrong_tool"
    assert by_id[no_call.id].error_category == "missed_call"  # a call was due; the reply made none
    assert run.meta.settings["protocol"] == "native"
    assert run.meta.identity()["protocol"] == "native"
    for sent in openai_server.requests:
        assert [m["role"] for m in sent.body["messages"]] == ["user"]  # no slm-swap instructions
        assert sent.body["tool_choice"] == "auto"
        assert sent.body["tools"][0]["type"] == "function"
    asked = next(r for r in openai_server.requests if r.body["messages"][0]["content"] == right.query)
    assert [t["function"]["name"] for t in asked.body["tools"]] == [t.name for t in right.tools]


def test_hosted_native_structured_eval_asks_for_the_schema(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    examples = read_examples(Path("02_dataset/structured/test.jsonl"))
    for e in examples:
        openai_server.answers[e.prompt] = e.completion
    result = cli(["eval", "--track", "structured", *openai_args(openai_server), "--protocol", "native"])
    assert result.exit_code == 0, result.output
    run = read_run(Path("05_eval/structured_openai_test.json"))
    assert run.summary.metrics["exact_match"] == 1.0
    for sent in openai_server.requests:
        assert [m["role"] for m in sent.body["messages"]] == ["system", "user"]
        assert sent.body["response_format"]["type"] == "json_schema"
        assert "tools" not in sent.body


def test_the_prompt_protocol_is_todays_request_and_identity(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    """Without the flag nothing changes: the same request, and an identity without a protocol, so runs
    made before the setting existed still resume and compare."""
    for e in prepared:
        openai_server.answers[e.prompt] = e.completion
    result = cli(["eval", "--track", "toolcall", *openai_args(openai_server)])
    assert result.exit_code == 0, result.output
    run = read_run(Path("05_eval/toolcall_openai_test.json"))
    assert "protocol" not in run.meta.identity() and run.meta.settings["protocol"] == "prompt"
    assert all("tools" not in r.body and "response_format" not in r.body for r in openai_server.requests)
