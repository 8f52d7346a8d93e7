"""The Berkeley Function Calling Leaderboard (BFCL) data, as shipped inside the `bfcl-eval` wheel.

The wheel pins dozens of heavy packages, so it is never installed: `pip download --no-deps` fetches it
into the cache, its checksum is verified, and the JSON Lines files are read straight out of the zip.
Each category has a question file (`BFCL_v4_<category>.json`) and a `possible_answer/` file that lists,
per argument, every acceptable value (`""` meaning the argument may be left out). The irrelevance
categories have no answer file: no offered function can serve their requests, so the answer is no call
(a question that offers no function at all is left out, counted: abstaining is its only answer).
`live_relevance` is not read: any well-formed call of an offered function is right there, which a row's
gold calls cannot express.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from slm_swap import wheels
from slm_swap.data.rows import NO_TOOL, OMITTED, RowError, RowLeftOut, SourceRow
from slm_swap.data.schema import bfcl_to_json_schema, json_type_of
from slm_swap.errors import InputError, SlmSwapError
from slm_swap.files import json_lines, require_file
from slm_swap.schemas import MAX_DEPTH, deeper_than, tool_schema_problem
from slm_swap.types import AcceptableCall, ToolCall, ToolSpec

BFCL_WHEEL = "bfcl_eval-2026.3.23-py3-none-any.whl"
BFCL_REQUIREMENT = "bfcl-eval==2026.3.23"
BFCL_SHA256 = "3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a"
NO_CALL_CATEGORIES = ("irrelevance", "live_irrelevance")  # the answer is no call; no answer file
CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    *NO_CALL_CATEGORIES,
)


def fetch_wheel(cache: Path) -> Path:
    """The verified `bfcl-eval` wheel, downloaded (without dependencies) into `cache` on first use."""
    return wheels.fetch_wheel(BFCL_REQUIREMENT, BFCL_WHEEL, BFCL_SHA256, cache=cache)


def _read_bytes(location: Path, name: str) -> tuple[str, bytes]:
    """(label for messages, content) of one data file inside a wheel or an unpacked `data/` folder."""
    if location.is_file() and zipfile.is_zipfile(location):
        with zipfile.ZipFile(location) as zf:
            member = f"bfcl_eval/data/{name}"
            if member not in zf.namelist():
                raise InputError(location, None, f"has no {member}")
            label, content = f"{location}!{member}", zf.read(member)
    else:
        path = location / name
        require_file(path, "pass the bfcl-eval wheel or its bfcl_eval/data folder")
        label, content = str(path), path.read_bytes()
    if not content.strip():
        raise InputError(
            label, None, "the file is empty", "pass the bfcl-eval wheel or its bfcl_eval/data folder"
        )
    return label, content


def _files(category: str) -> tuple[str, ...]:
    """The question file of a category, then its answer file (none for the irrelevance categories)."""
    questions = f"BFCL_v4_{category}.json"
    if category in NO_CALL_CATEGORIES:
        return (questions,)
    return questions, f"possible_answer/BFCL_v4_{category}.json"


def content_digest(location: Path, category: str) -> str:
    """SHA-256 over one category's question and answer files (the identity of a BFCL source)."""
    digest = hashlib.sha256()
    for name in _files(_category(category)):
        digest.update(_read_bytes(location, name)[1])
    return digest.hexdigest()


def _read_lines(location: Path, name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yields (where, row) for each row of one data file; a row that is not an object with an id is an
    InputError naming the file and line."""
    label, content = _read_bytes(location, name)
    for lineno, row in json_lines(content.splitlines(), label, "BFCL data (one JSON object per line)"):
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise InputError(label, str(lineno), 'a BFCL row must be a JSON object with a string "id"')
        yield f"{label}:{lineno}", row


def _category(category: str) -> str:
    category = "simple_python" if category == "simple" else category
    if category == "live_relevance":
        raise SlmSwapError(
            "BFCL category 'live_relevance' has no gold answer (any well-formed call of an offered function "
            "is right), which the dataset's rows cannot hold\n"
            f"  fix: choose one of: {', '.join(CATEGORIES)}"
        )
    if category not in CATEGORIES:
        raise SlmSwapError(f"unknown BFCL category {category!r}; choose one of: {', '.join(CATEGORIES)}")
    return category


def _canonical(schema: dict[str, Any], options: list[Any]) -> Any:
    """The first acceptable value, as a plain value (BFCL nests acceptable lists inside dicts)."""
    value = next(o for o in options if o != OMITTED)

    def plain_dict(d: dict[str, Any]) -> dict[str, Any]:
        return {
            k: next(x for x in v if x != OMITTED)
            for k, v in d.items()
            if isinstance(v, list) and v and OMITTED not in v
        }

    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    if json_type_of(schema) == "object" and isinstance(value, dict):
        return plain_dict(value)
    if (
        json_type_of(schema) == "array"
        and json_type_of(items or {}) == "object"
        and isinstance(value, list)
        and all(isinstance(v, dict) for v in value)
    ):
        return [plain_dict(v) for v in value]
    return value


def convert_row(question: dict[str, Any], answer: dict[str, Any] | None) -> SourceRow:
    """Converts one BFCL question and its possible answer into a source row; `answer` None: the question
    of an irrelevance category, whose answer is no call. Raises RowLeftOut for such a question that offers
    no function."""
    turns = question.get("question")
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], list):
        raise RowError('"question" must be a list of turns, each a list of messages')
    query = "\n".join(m["content"] for m in turns[0] if isinstance(m, dict) and m.get("role") == "user")
    if not query:
        raise RowError("the first turn has no user message")
    tools: dict[str, ToolSpec] = {}
    for f in question.get("function", []):
        if deeper_than(f.get("parameters")):  # before converting them, which recurses
            raise RowError(f"function {f['name']!r}: parameters are nested deeper than {MAX_DEPTH} levels")
        params = bfcl_to_json_schema(f.get("parameters", {}))
        params.setdefault("type", "object")
        params.setdefault("properties", {})
        params.setdefault("required", [])
        problem = tool_schema_problem(f["name"], params)
        if problem is not None:
            raise RowError(problem)
        tools[f["name"]] = ToolSpec(name=f["name"], description=f.get("description", ""), parameters=params)
    if answer is None and not tools:
        raise RowLeftOut(NO_TOOL)
    acceptable: list[AcceptableCall] = []
    gold: list[ToolCall] = []
    for entry in [] if answer is None else answer.get("ground_truth", []):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise RowError("each ground_truth entry must be {function name: {param: [values]}}")
        ((name, params),) = entry.items()
        if name not in tools:
            raise RowError(f"possible answer calls {name!r}, which is not among the offered functions")
        properties = tools[name].parameters["properties"]
        required = set(tools[name].parameters["required"])
        accepted = {p: list(v) for p, v in params.items()}
        acceptable.append(AcceptableCall(name=name, arguments=accepted))
        # The gold call leaves out what may be left out (and what the function does not declare, a
        # slip in a few BFCL answers), so it is the shortest acceptable answer.
        gold.append(
            ToolCall(
                name=name,
                arguments={
                    p: _canonical(properties[p], v)
                    for p, v in accepted.items()
                    if p in properties
                    and any(x != OMITTED for x in v)
                    and (OMITTED not in v or p in required)
                },
            )
        )
    if not gold and answer is not None:
        raise RowError("the possible answer has no ground_truth calls")
    return SourceRow(
        id=f"bfcl-{question['id']}",
        source="bfcl",
        query=query,
        tools=tuple(tools.values()),
        gold=tuple(gold),
        acceptable=tuple(acceptable),
    )


def iter_category(
    location: Path, category: str
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """Yields (where, question, possible answer) for one category, pairing rows by id; the answer is None
    in the irrelevance categories (no call)."""
    questions, *possible = _files(_category(category))
    answers = {row["id"]: row for name in possible for _, row in _read_lines(location, name)}
    for where, question in _read_lines(location, questions):
        answer = answers.get(question.get("id"))
        if answer is None and possible:
            raise InputError(where, None, f"question {question.get('id')!r} has no possible answer")
        yield where, question, answer
