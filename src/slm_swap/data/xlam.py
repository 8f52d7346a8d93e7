"""The xLAM function-calling-60k format: read it as a stream and convert rows.

A file is a JSON array (the published form) or JSON Lines of rows `{id, query, tools, answers}` where
`tools` and `answers` are JSON-encoded strings. Parameters are a flat map `{param: {type, description,
default}}` with Python-style type strings, converted here to JSON Schema (see `schema.py`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ijson

from slm_swap import settings
from slm_swap.data.rows import RowError, SourceRow, acceptable_from_gold
from slm_swap.data.schema import parse_python_type
from slm_swap.errors import InputError
from slm_swap.files import json_lines, loads, require_file
from slm_swap.schemas import MAX_DEPTH, deeper_than
from slm_swap.types import ToolCall, ToolSpec

REQUIRED_FIELDS = ("id", "query", "tools", "answers")


@dataclass(frozen=True)
class RawRow:
    index: int  # 0-based position in the file
    where: str  # "line 17" (JSON Lines) or "row 17" (JSON array), for messages
    data: Any


def _head(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(4096).lstrip()


def _syntax_error_location(path: Path, index: int) -> str:
    """Where a JSON array stops being valid JSON; only computed on the error path, so the stream
    parser's speed and flat memory are kept for good files."""
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        return f"line {e.lineno} column {e.colno} (in row {index})"
    except UnicodeDecodeError as e:
        return f"byte {e.start} (in row {index})"
    return f"row {index}"


def iter_raw_rows(path: Path) -> Iterator[RawRow]:
    """Yields the rows of an xLAM file without loading it whole. Raises InputError on a file that is not
    JSON / JSON Lines, with the line of the fault."""
    require_file(path, f"pass the xLAM JSON file with {settings.DATASET_PATH}")
    head = _head(path)
    if not head:
        raise InputError(path, None, "the file is empty", "pass the xLAM JSON (or JSONL) file")
    if not head.startswith(b"["):
        with path.open("rb") as f:
            for index, (lineno, data) in enumerate(
                json_lines(f, path, "one xLAM row (a JSON object) per line")
            ):
                yield RawRow(index, f"line {lineno}", data)
        return
    index = 0
    try:
        with path.open("rb") as f:
            for data in ijson.items(f, "item", use_float=True):
                yield RawRow(index, f"row {index}", data)
                index += 1
    except (ijson.JSONError, UnicodeDecodeError) as e:
        raise InputError(
            path,
            _syntax_error_location(path, index),
            "not valid JSON",
            "was the file truncated or edited by hand?",
        ) from e


def _decode_field(data: dict[str, Any], key: str) -> Any:
    value = data[key]
    if not isinstance(value, str):
        raise RowError(
            f'"{key}" is a {type(value).__name__}, not a JSON-encoded string',
            f'xLAM rows carry "{key}" as a string of JSON; re-encode it with json.dumps',
        )
    try:
        decoded = loads(value)
    except json.JSONDecodeError as e:
        raise RowError(f'"{key}" is not valid JSON ({e.msg})') from e
    except ValueError as e:  # NaN, Infinity, a lone surrogate
        raise RowError(f'"{key}" is not valid JSON ({e})') from e
    except RecursionError as e:
        raise RowError(f'"{key}" is nested too deeply to read') from e
    # Tools and arguments no deeper than this convert to schemas and values that can be checked.
    if deeper_than(decoded):
        raise RowError(f'"{key}" is nested deeper than {MAX_DEPTH} levels')
    return decoded


def _convert_tool(raw: Any, position: int) -> tuple[ToolSpec, tuple[str, ...]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise RowError(f"tool {position} has no name")
    name = raw["name"]
    if any(ch in name for ch in '"<>'):
        raise RowError(f"tool name {name!r} contains a quote or angle bracket")
    params = raw.get("parameters", {})
    if not isinstance(params, dict):
        raise RowError(f"tool {name!r}: parameters must be an object of {{param: {{type, description}}}}")
    properties: dict[str, Any] = {}
    required: list[str] = []
    unknown: list[str] = []
    for pname, spec in params.items():
        if not isinstance(spec, dict):
            raise RowError(f"tool {name!r}: parameter {pname!r} must be an object with a type")
        try:
            parsed = parse_python_type(str(spec.get("type", "")))
        except ValueError as e:
            raise RowError(f"tool {name!r}: parameter {pname!r}: {e}") from e
        unknown.extend(parsed.unknown)
        schema = dict(parsed.schema)
        if spec.get("description"):
            schema["description"] = spec["description"]
        if "default" in spec:
            schema["default"] = spec["default"]
        properties[pname] = schema
        if not parsed.optional and "default" not in spec:
            required.append(pname)
    parameters = {"type": "object", "properties": properties, "required": required}
    return ToolSpec(name=name, description=str(raw.get("description", "")), parameters=parameters), tuple(
        unknown
    )


def convert_row(data: Any, source: str = "xlam") -> SourceRow:
    """Validates one xLAM row and converts it. Raises RowError naming what is wrong."""
    if not isinstance(data, dict):
        raise RowError(f"a row must be a JSON object, not {type(data).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in data]
    if missing:
        raise RowError(
            f"missing field(s) {', '.join(missing)}", "every row needs id, query, tools and answers"
        )
    if not isinstance(data["query"], str) or not data["query"].strip():
        raise RowError('"query" must be a non-empty string')
    raw_tools = _decode_field(data, "tools")
    raw_answers = _decode_field(data, "answers")
    if not isinstance(raw_tools, list) or not raw_tools:
        raise RowError('"tools" must encode a non-empty list of tools')
    if not isinstance(raw_answers, list) or not raw_answers:
        raise RowError('"answers" must encode a non-empty list of {name, arguments}')
    tools: dict[str, ToolSpec] = {}
    unknown: list[str] = []
    for position, raw in enumerate(raw_tools):
        tool, tool_unknown = _convert_tool(raw, position)
        if tool.name in tools:
            raise RowError(f"tool {tool.name!r} is offered twice")
        tools[tool.name] = tool
        unknown.extend(tool_unknown)
    gold: list[ToolCall] = []
    for position, answer in enumerate(raw_answers):
        if not isinstance(answer, dict) or not isinstance(answer.get("name"), str):
            raise RowError(f"answer {position} has no tool name")
        arguments = answer.get("arguments", {})
        if not isinstance(arguments, dict):
            raise RowError(f"answer {position}: arguments must be an object")
        called = tools.get(answer["name"])
        if called is None:
            raise RowError(
                f"answer {position} calls {answer['name']!r}, which is not among the offered tools "
                f"({', '.join(sorted(tools))})"
            )
        undeclared = sorted(set(arguments) - set(called.parameters["properties"]))
        if undeclared:
            raise RowError(
                f"answer {position} passes {', '.join(map(repr, undeclared))}, which tool "
                f"{called.name!r} does not declare"
            )
        gold.append(ToolCall(name=called.name, arguments=arguments))
    return SourceRow(
        id=f"{source}-{data['id']}",
        source=source,
        query=data["query"],
        tools=tuple(tools.values()),
        gold=tuple(gold),
        acceptable=tuple(acceptable_from_gold(c, tools[c.name]) for c in gold),
        unknown_types=tuple(unknown),
    )
