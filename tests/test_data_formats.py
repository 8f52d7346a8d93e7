"""xLAM and BFCL rows → JSON Schema tools, gold calls and acceptable answers."""

from __future__ import annotations

import json

import pytest

from slm_swap.data import bfcl, xlam
from slm_swap.data.formats import answer_schema, read_prompt, render_completion, render_prompt
from slm_swap.data.rows import RowError
from slm_swap.data.schema import bfcl_to_json_schema, parse_python_type
from slm_swap.types import ToolCall, ToolSpec


@pytest.mark.parametrize(
    ("text", "schema", "optional"),
    [
        ("str", {"type": "string"}, False),
        ("int", {"type": "integer"}, False),
        ("float", {"type": "number"}, False),
        ("bool", {"type": "boolean"}, False),
        ("List[int]", {"type": "array", "items": {"type": "integer"}}, False),
        ("list", {"type": "array"}, False),
        ("List[Dict[str, Any]]", {"type": "array", "items": {"type": "object"}}, False),
        ("Dict[str, int]", {"type": "object"}, False),
        ("dict", {"type": "object"}, False),
        ("Tuple[int, int]", {"type": "array", "items": {"type": "integer"}}, False),
        ("Tuple[int, str]", {"type": "array"}, False),
        ("str, optional", {"type": "string"}, True),
        ("List[str], optional", {"type": "array", "items": {"type": "string"}}, True),
        ("Optional[int]", {"type": "integer"}, True),
        ("Union[str, None]", {"type": "string"}, True),
        ("Any", {}, False),
    ],
)
def test_python_types_convert_to_json_schema(text: str, schema: dict, optional: bool) -> None:
    parsed = parse_python_type(text)
    assert parsed.schema == schema
    assert parsed.optional is optional
    assert parsed.unknown == ()


def test_unknown_types_become_any_and_are_recorded() -> None:
    parsed = parse_python_type("datetime.date")
    assert parsed.schema == {}
    assert parsed.unknown == ("datetime.date",)
    assert parse_python_type("List[Widget]").schema == {"type": "array", "items": {}}


def test_bfcl_dialect_converts_recursively() -> None:
    converted = bfcl_to_json_schema(
        {
            "type": "dict",
            "properties": {
                "x": {"type": "float"},
                "pts": {"type": "array", "items": {"type": "tuple"}},
                "opt": {"type": "any"},
                "sub": {"type": "dict", "properties": {"y": {"type": "integer"}}},
            },
        }
    )
    assert converted == {
        "type": "object",
        "properties": {
            "x": {"type": "number"},
            "pts": {"type": "array", "items": {"type": "array"}},
            "opt": {},
            "sub": {"type": "object", "properties": {"y": {"type": "integer"}}},
        },
    }


def _row(tools: list, answers: list, **extra: object) -> dict:
    return {"id": 3, "query": "q", "tools": json.dumps(tools), "answers": json.dumps(answers), **extra}


TOOL = {
    "name": "search",
    "description": "Search.",
    "parameters": {
        "q": {"type": "str", "description": "query"},
        "limit": {"type": "int, optional", "description": "max", "default": 10},
        "lang": {"type": "Optional[str]", "description": "language"},
        "filters": {"type": "Dict[str, Any]", "description": "filters", "default": None},
    },
}


def test_xlam_required_and_optional_parameters() -> None:
    row = xlam.convert_row(_row([TOOL], [{"name": "search", "arguments": {"q": "cats"}}]))
    assert row.id == "xlam-3"
    assert row.tools[0].parameters["required"] == ["q"]
    assert row.tools[0].parameters["properties"]["limit"] == {
        "type": "integer",
        "description": "max",
        "default": 10,
    }


def test_xlam_acceptable_answers_allow_defaults_and_omission() -> None:
    row = xlam.convert_row(
        _row([TOOL], [{"name": "search", "arguments": {"q": "cats", "limit": 10, "filters": {"a": 1}}}])
    )
    accepted = row.acceptable[0].arguments
    assert accepted["q"] == ["cats"]
    assert accepted["limit"] == [10, ""]  # passed explicitly, and equal to its default
    assert accepted["lang"] == [""]  # optional, not in gold: may be left out
    assert accepted["filters"] == [{"a": [1]}]  # dict values in BFCL's nested form
    omitted = xlam.convert_row(_row([TOOL], [{"name": "search", "arguments": {"q": "x"}}]))
    assert omitted.acceptable[0].arguments["limit"] == ["", 10]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ({"id": 1, "query": "q", "tools": "[]"}, "missing field(s) answers"),
        (_row([TOOL], []) | {"tools": [TOOL]}, '"tools" is a list, not a JSON-encoded string'),
        (_row([TOOL], []) | {"answers": "[{"}, '"answers" is not valid JSON'),
        (
            _row([TOOL], [{"name": "nope", "arguments": {}}]),
            "calls 'nope', which is not among the offered tools",
        ),
        (_row([TOOL], [{"name": "search", "arguments": {"q": "a", "zzz": 1}}]), "passes 'zzz'"),
        (_row([TOOL, TOOL], [{"name": "search", "arguments": {"q": "a"}}]), "offered twice"),
        (_row([TOOL], [{"name": "search", "arguments": {"q": "a"}}]) | {"query": " "}, "non-empty string"),
    ],
)
def test_bad_xlam_rows_are_named(row: object, message: str) -> None:
    with pytest.raises(RowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        xlam.convert_row(row)


def test_completions_in_both_formats() -> None:
    calls = [ToolCall("a", {"x": 1, "s": "Zürich"}), ToolCall("b", {})]
    assert render_completion("structured", calls) == (
        '{"calls": [{"name": "a", "arguments": {"x": 1, "s": "Zürich"}}, {"name": "b", "arguments": {}}]}'
    )
    assert render_completion("toolcall", calls) == (
        '<tool_call name="a">{"x": 1, "s": "Zürich"}</tool_call>\n<tool_call name="b">{}</tool_call>'
    )


def test_answer_schema_forbids_undeclared_arguments_and_unknown_tools() -> None:
    import jsonschema

    row = xlam.convert_row(_row([TOOL], [{"name": "search", "arguments": {"q": "cats"}}]))
    validator = jsonschema.Draft202012Validator(answer_schema(row.tools))
    assert validator.is_valid({"calls": [{"name": "search", "arguments": {"q": "c", "limit": 2}}]})
    assert not validator.is_valid({"calls": [{"name": "search", "arguments": {"q": "c", "page": 2}}]})
    assert not validator.is_valid({"calls": [{"name": "other", "arguments": {}}]})
    assert not validator.is_valid({"calls": []})
    assert not validator.is_valid({"calls": [{"name": "search", "arguments": {"limit": 2}}]})


def test_bfcl_gold_is_the_shortest_acceptable_answer() -> None:
    question = {
        "id": "simple_0",
        "question": [[{"role": "user", "content": "area of base 10 height 5"}]],
        "function": [
            {
                "name": "area",
                "description": "",
                "parameters": {
                    "type": "dict",
                    "properties": {
                        "base": {"type": "integer"},
                        "height": {"type": "integer"},
                        "unit": {"type": "string"},
                        "opts": {"type": "dict", "properties": {"round": {"type": "boolean"}}},
                    },
                    "required": ["base", "height"],
                },
            }
        ],
    }
    answer = {
        "id": "simple_0",
        "ground_truth": [
            {"area": {"base": [10], "height": [5], "unit": ["units", ""], "opts": [{"round": [True]}]}}
        ],
    }
    row = bfcl.convert_row(question, answer)
    assert row.gold == (ToolCall("area", {"base": 10, "height": 5, "opts": {"round": True}}),)
    assert row.acceptable[0].arguments["unit"] == ["units", ""]
    assert row.tools[0].parameters["type"] == "object"


def test_a_rendered_prompt_reads_back_exactly_and_nothing_else_does() -> None:
    tools = [
        ToolSpec("weather", "Weather.\n\nUser request: a trap in a description", {"type": "object"}),
        ToolSpec("time", "", {"type": "object", "properties": {"tz": {"type": "string"}}}),
    ]
    for query in ("Rain in Paris?", "two\n\nUser request: lines", ""):
        assert read_prompt(render_prompt(query, tools)) == (tools, query)
    rendered = render_prompt("Rain?", tools)
    assert read_prompt(rendered.replace("Available tools:", "Tools:")) is None
    assert read_prompt(rendered.replace("\n\nUser request: ", "\n\nRequest: ")) is None
    assert read_prompt(rendered.replace('"name": "time"', '"title": "time"')) is None
    assert read_prompt("Available tools:\n") is None
