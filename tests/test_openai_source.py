"""`prepare --source openai`: a team's own conversations in OpenAI's chat format, each format rule and each
bad-input message; the rendering shared with `serve`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from slm_swap.data.formats import SYSTEM_PROMPTS
from slm_swap.files import read_examples
from slm_swap.types import Example
from tests.cli import cli

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            },
            "required": ["city"],
        },
    },
}
BOOK = {
    "type": "function",
    "function": {
        "name": "book_table",
        "parameters": {
            "type": "object",
            "properties": {"restaurant": {"type": "string"}, "people": {"type": "integer", "minimum": 1}},
            "required": ["restaurant", "people"],
        },
    },
}


def call(name: str, arguments: dict[str, Any], id: str = "call_1") -> dict[str, Any]:
    return {"id": id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


def answer(*calls: dict[str, Any], content: str | None = None) -> dict[str, Any]:
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


def row(*messages: dict[str, Any], tools: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {"messages": list(messages), "tools": [WEATHER, BOOK] if tools is None else tools, **extra}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def conversations() -> list[dict[str, Any]]:
    many_tools = [
        {"type": "function", "function": {"name": f"tool_{i}", "parameters": {"type": "object"}}}
        for i in range(40)
    ]
    return [
        row(user("Weather in Paris?"), answer(call("get_weather", {"city": "Paris"})), id="one"),
        row(
            {"role": "system", "content": "You work for Café Zoë."},
            user("Wetter in München und Zürich?"),
            answer(
                call("get_weather", {"city": "München"}, "a"), call("get_weather", {"city": "Zürich"}, "b")
            ),
            id="parallel-unicode",
        ),
        row(
            {"role": "system", "content": "Be brief."},
            user("Book for us where it is warm: Nice or Oslo?"),
            answer(call("get_weather", {"city": "Nice"}, "c1"), call("get_weather", {"city": "Oslo"}, "c2")),
            {"role": "tool", "tool_call_id": "c1", "content": "24°C"},
            {"role": "tool", "tool_call_id": "c2", "content": "3°C"},
            {"role": "assistant", "content": "Nice is warm. How many people?"},
            user([{"type": "text", "text": "Four of us"}]),  # content parts
            answer(call("book_table", {"restaurant": "Chez Nice", "people": 4})),
            id="multi-turn",
        ),
        row(
            user("Use tool 39. " + "Lorem ipsum " * 2000),  # a very long row with dozens of tools
            answer(call("tool_39", {})),
            tools=many_tools,
            id="long",
        ),
        row(user("Hi!"), {"role": "assistant", "content": "Hello! How can I help?"}, id="text-answer"),
        row(user("Weather in Rome?"), id="unlabelled"),
    ]


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def prepare(*args: str) -> Any:
    sizes = ["--train-size", "2", "--val-size", "0", "--test-size", "2"]
    return cli(["prepare", "--source", "openai", *sizes, *args])


def examples(track: str) -> dict[str, Example]:
    rows = [
        e for split in ("train", "test") for e in read_examples(Path(f"02_dataset/{track}/{split}.jsonl"))
    ]
    return {e.id: e for e in rows}


def test_conversations_become_both_tracks_and_rows_without_a_call_are_counted(workspace: Path) -> None:
    result = prepare("--dataset-path", str(write(Path("log.jsonl"), conversations())), "--test-size", "3")
    assert result.exit_code == 0, result.output
    assert "6 rows read, 0 skipped" in result.output
    # A final answer in text is no call, an answer: a row, not left out.
    assert "text without a tool call" not in result.output
    assert "left out 1 row: the conversation ends before the assistant's answer" in result.output
    toolcall, structured = examples("toolcall"), examples("structured")
    assert (
        set(toolcall)
        == set(structured)
        == {"openai-one", "openai-parallel-unicode", "openai-multi-turn", "openai-long", "openai-text-answer"}
    )
    text = toolcall["openai-text-answer"]
    assert text.gold == () and text.acceptable == () and text.completion == "Hello! How can I help?"
    assert structured["openai-text-answer"].completion == '{"calls": []}'

    one = toolcall["openai-one"]
    assert one.system == SYSTEM_PROMPTS["toolcall"] and one.turns == ()
    assert one.messages()[1]["content"].endswith("User request: Weather in Paris?")
    assert one.completion == '<tool_call name="get_weather">{"city": "Paris"}</tool_call>'
    # An optional parameter the gold leaves out may be left out or set to its default.
    assert one.acceptable[0].arguments["unit"] == ["", "celsius"]

    parallel = structured["openai-parallel-unicode"]
    assert parallel.system == SYSTEM_PROMPTS["structured"] + "\n\nYou work for Café Zoë."
    assert [c.arguments["city"] for c in parallel.gold] == ["München", "Zürich"]
    assert "München" in parallel.completion  # unicode kept, not escaped

    multi = toolcall["openai-multi-turn"]
    assert multi.query == "Book for us where it is warm: Nice or Oslo?"
    assert multi.turns == (
        {
            "role": "assistant",
            "content": '<tool_call name="get_weather">{"city": "Nice"}</tool_call>\n'
            '<tool_call name="get_weather">{"city": "Oslo"}</tool_call>',
        },
        {
            "role": "user",
            "content": '<tool_response name="get_weather">24°C</tool_response>\n'
            '<tool_response name="get_weather">3°C</tool_response>',
        },
        {"role": "assistant", "content": "Nice is warm. How many people?"},
        {"role": "user", "content": "Four of us"},
    )
    assert multi.gold[0].arguments == {"restaurant": "Chez Nice", "people": 4}
    # On the structured track an earlier answer is shown in that track's own format.
    assert structured["openai-multi-turn"].turns[0]["content"].startswith('{"calls": [{"name": "get_weather"')
    assert len(toolcall["openai-long"].tools) == 40


def test_the_conversation_renders_as_serve_renders_the_same_request(workspace: Path) -> None:
    """Evaluation, training and serving show a conversation alike: a client sending the logged request to
    `serve` gets the messages the prepared example holds, and the stand-in knows them for an evaluation
    request of that track."""
    from slm_swap.serve import ChatRequest, evaluation_request, render_messages

    rows = conversations()[:4]
    assert prepare("--dataset-path", str(write(Path("log.jsonl"), rows))).exit_code == 0
    toolcall = examples("toolcall")
    for logged in rows:
        example = toolcall[f"openai-{logged['id']}"]
        request = ChatRequest(messages=logged["messages"][:-1], tools=logged["tools"])
        assert render_messages(request) == example.messages()
        assert evaluation_request(example.messages()) == ("toolcall", list(example.tools))
    for example in examples("structured").values():
        assert evaluation_request(example.messages()) == ("structured", list(example.tools))


BAD = [
    ("not json", "log.jsonl:1: not valid JSON"),
    (json.dumps({"messages": []}), 'log.jsonl:line 1: "messages" must be a non-empty list'),
    (json.dumps({"messages": [user("x")]}), 'line 1: no "tools"'),
    (json.dumps(row(user("x"), answer(call("send_mail", {})))), "calls 'send_mail', which is not among"),
    (
        json.dumps(row(user("x"), answer(call("book_table", {"restaurant": "A", "people": 0})))),
        "the arguments do not satisfy 'book_table''s parameters at people",
    ),
    (
        json.dumps(row(user("x"), answer(call("book_table", {"restaurant": "A"})))),
        "'people' is a required property",
    ),
    (
        json.dumps(
            row(
                user("x"),
                answer(
                    {"id": "1", "type": "function", "function": {"name": "get_weather", "arguments": "{"}}
                ),
            )
        ),
        "arguments are not valid JSON",
    ),
    (
        json.dumps(
            row({"role": "assistant", "content": "hi"}, user("x"), answer(call("get_weather", {"city": "A"})))
        ),
        "messages[0] is a assistant message before any user message",
    ),
    (
        json.dumps(row({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]})),
        "content part of type 'image_url'; only text parts",
    ),
    (
        json.dumps(row(user("x"), answer(call("get_weather", {"city": "A"})), tools=[WEATHER, WEATHER])),
        "offered twice",
    ),
    (
        json.dumps(
            row(
                user("x"),
                answer(call("f", {})),
                tools=[
                    {
                        "type": "function",
                        "function": {"name": "f", "parameters": {"type": "object", "properties": 5}},
                    }
                ],
            )
        ),
        "tool 'f': parameters are not a JSON Schema",
    ),
    (
        json.dumps(row(user(""), answer(call("get_weather", {"city": "A"})))),
        "the first user message is empty",
    ),
]


@pytest.mark.parametrize(("line", "expected"), BAD)
def test_a_bad_row_is_named_exits_2_and_writes_nothing(workspace: Path, line: str, expected: str) -> None:
    good = json.dumps(conversations()[0])
    path = Path("log.jsonl")
    path.write_text(f"{line}\n{good}\n", encoding="utf-8")
    result = prepare("--dataset-path", str(path))
    assert result.exit_code == 2, result.output
    assert f"{path}:line 1" in result.output or f"{path}:1" in result.output
    assert expected in result.output
    assert "fix:" in result.output
    assert not Path("02_dataset").exists()


def test_skip_invalid_leaves_bad_rows_out_and_counts_them(workspace: Path) -> None:
    rows = [*conversations()[:4], {"messages": []}]
    result = prepare("--dataset-path", str(write(Path("log.jsonl"), rows)), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "5 rows read, 1 skipped" in result.output
    assert 'skipped line 5: "messages" must be a non-empty list' in result.output


def test_without_a_file_the_source_asks_for_one(workspace: Path) -> None:
    result = prepare()
    assert result.exit_code == 2 and "--dataset-path" in result.output
