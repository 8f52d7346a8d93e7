"""The battery's hostile tool schemas, through the commands that read them: a `$ref` to a URL or a local
file, a `$ref` to itself or to nothing, schemas and answers nested 1,000 deep, and a `pattern` that
backtracks catastrophically. Each is refused at `prepare` (exit 2 naming the file and row, nothing fetched
and nothing written), a split carrying one is refused at `eval`, and a pattern that would run for ages is
cut short: a failed value, never a hang. A reference inside the schema itself (`#/$defs/x`) still works.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import Result

from slm_swap.files import read_examples
from slm_swap.schemas import mismatch
from tests.cli import cli
from tests.conftest import xlam_row

SIZES = ["--train-size", "0", "--val-size", "0", "--test-size", "2"]
# Only a guard against a hang (before the bounds, these commands ran forever): they take about a second.
HANG_GUARD_S = 30
# Python's `re` takes exponential time on these; `regex` answers the first at once and times out on the
# second.
BACKTRACKING = ["^(a+)+$", "^(a|aa)+$"]
HOSTILE_VALUE = "a" * 50 + "!"
FINE_VALUE = "aaaa"


def tool(parameters: Any, name: str = "lookup") -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "parameters": parameters}}


def conversation(parameters: Any, arguments: Any, id: str, name: str = "lookup") -> dict[str, Any]:
    """One logged conversation offering one tool, answered by one call of it with `arguments` (a value,
    or JSON text as it stands)."""
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": text}}
    return {
        "id": id,
        "messages": [
            {"role": "user", "content": f"Question {id}?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
        ],
        "tools": [tool(parameters, name)],
    }


PLAIN = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def write_log(rows: list[dict[str, Any]], name: str = "log.jsonl") -> Path:
    path = Path(name)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def prepare_log(*rows: dict[str, Any]) -> Result:
    """`prepare --source openai` of a good row and then `rows`, one split row each."""
    log = write_log([conversation(PLAIN, {"q": "fine"}, "good"), *rows])
    return cli(["prepare", "--source", "openai", "--dataset-path", str(log), *SIZES])


def replay_eval(track: str, predictions: Path, *options: str) -> Result:
    """`eval` of the test split with replayed predictions."""
    command = ["eval", "--track", track, "--model-kind", "replay", "--split", "test"]
    return cli([*command, "--predictions", str(predictions), *options])


def refused(result: Result, *said: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "fix:" in result.output, result.output
    for words in said:
        assert words in result.output, result.output


def nothing_in(folder: Path) -> None:
    assert not folder.exists() or not any(folder.rglob("*")), sorted(folder.rglob("*"))


def deep_json(levels: int, inner: str = '"x"') -> str:
    """JSON text of `inner` inside `levels` arrays (written out: json.dumps would recurse that deep)."""
    return "[" * levels + inner + "]" * levels


@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that would serve a schema at any path; yields its address and the paths it was
    asked for."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = b'{"type": "integer"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/schema+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", asked
    finally:
        server.shutdown()
        server.server_close()


# --- references ------------------------------------------------------------------------------------------


def test_a_reference_to_a_url_is_refused_and_never_fetched(
    workspace: Path, listener: tuple[str, list[str]]
) -> None:
    address, asked = listener
    url = f"{address}/x.json"
    parameters = {"type": "object", "properties": {"q": {"$ref": url}}}
    result = prepare_log(conversation(parameters, {"q": "text"}, "remote"))
    refused(result, "log.jsonl:line 2", url, "only references into the schema itself")
    assert asked == []
    nothing_in(Path("02_dataset"))


@pytest.mark.parametrize(
    ("parameters", "said"),
    [
        pytest.param(
            {"type": "object", "properties": {"q": {"$ref": "file:///etc/hostname"}}},
            ["'file:///etc/hostname'", "nothing is fetched or read"],
            id="local file",
        ),
        pytest.param({"$ref": "#"}, ["come back to #", "checking it would never end"], id="itself"),
        pytest.param(
            {"type": "object", "properties": {"q": {"$ref": "#/$defs/missing"}}},
            ["'#/$defs/missing', which points at nothing"],
            id="dangling",
        ),
        pytest.param(
            {"$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}, "properties": {"q": {"$ref": "#/$defs/a"}}},
            ["come back to #/$defs/a"],
            id="a loop through allOf",
        ),
        pytest.param(
            {"type": "object", "properties": {"q": {"type": "string", "pattern": "(a{65535}){65535}"}}},
            ["too large once its counted repetitions are written out"],
            id="a pattern four billion long written out",
        ),
        pytest.param(
            {"type": "object", "properties": {"q": {"type": "string", "pattern": "a{99999999999}"}}},
            ["a pattern Python cannot compile"],
            id="a count too large",
        ),
        pytest.param(
            json.loads(deep_json(300, '{"type": "object"}').replace("[", '{"allOf": [').replace("]", "]}")),
            ["nested deeper than 64 levels"],
            id="300 deep",
        ),
    ],
)
def test_a_schema_that_reaches_outside_or_never_ends_is_refused_by_prepare(
    workspace: Path, parameters: Any, said: list[str]
) -> None:
    result = prepare_log(conversation(parameters, {"q": "text"}, "hostile"))
    refused(result, "log.jsonl:line 2", "tool 'lookup'", *said)
    nothing_in(Path("02_dataset"))


def test_a_split_carrying_such_a_schema_is_refused_by_eval(
    workspace: Path, listener: tuple[str, list[str]]
) -> None:
    """A split written by hand (or by an older slm-swap) is read with the same checks."""
    assert prepare_log(conversation(PLAIN, {"q": "other"}, "second")).exit_code == 0
    split = Path("02_dataset/toolcall/test.jsonl")
    row = json.loads(split.read_text().splitlines()[0])
    predictions = Path("preds.jsonl")
    predictions.write_text(json.dumps({"id": row["id"], "output": row["completion"]}) + "\n")
    address, asked = listener
    for parameters, said in [
        ({"$ref": "#"}, "come back to #"),
        ({"type": "object", "properties": {"q": {"$ref": "#/$defs/missing"}}}, "points at nothing"),
        ({"type": "object", "properties": {"q": {"$ref": f"{address}/x.json"}}}, f"{address}/x.json"),
    ]:
        row["tools"][0]["parameters"] = parameters
        split.write_text(json.dumps(row) + "\n")
        result = replay_eval("toolcall", predictions)
        refused(result, f"{split}:1", said)
    assert asked == []
    nothing_in(Path("05_eval"))


def test_a_reference_inside_the_schema_itself_is_followed(workspace: Path) -> None:
    parameters = {
        "type": "object",
        "properties": {"q": {"$ref": "#/$defs/query"}},
        "required": ["q"],
        "$defs": {"query": {"type": "string", "minLength": 2}},
    }
    # Followed: a gold answer that breaks the referred schema is refused for it.
    refused(prepare_log(conversation(parameters, {"q": "x"}, "short")), "line 2", "at q:", "is too short")
    result = prepare_log(conversation(parameters, {"q": "Oslo"}, "defs"))
    assert result.exit_code == 0, result.output
    for track in ("structured", "toolcall"):
        split = Path(f"02_dataset/{track}/test.jsonl")
        (example,) = [e for e in read_examples(split) if e.id == "openai-defs"]
        broken = example.completion.replace('"Oslo"', "5")
        for output, valid in [(example.completion, 1.0), (broken, 0.0)]:
            Path("preds.jsonl").write_text(json.dumps({"id": example.id, "output": output}) + "\n")
            result = replay_eval(track, Path("preds.jsonl"), "--out", "run.json", "--force")
            assert result.exit_code == 0, result.output
            (scored,) = [
                r for r in json.loads(Path("run.json").read_text())["results"] if r["id"] == example.id
            ]
            assert scored["metrics"]["schema_valid"] == valid, (track, scored)


# --- nesting ---------------------------------------------------------------------------------------------


def xlam_tools(default: str = '"x"', type_: str = "str") -> str:
    """The `tools` field of an xLAM row as JSON text, with a parameter's default and type as given."""
    return (
        '[{"name": "get_weather", "description": "Weather.", "parameters": {"city": {"type": '
        + json.dumps(type_)
        + ', "description": "City", "default": '
        + default
        + "}}}]"
    )


@pytest.mark.parametrize(
    ("field", "text", "said"),
    [
        ("tools", xlam_tools(default=deep_json(1000)), '"tools" is nested too deeply'),
        ("tools", xlam_tools(default=deep_json(100)), '"tools" is nested deeper than 64 levels'),
        ("tools", xlam_tools(type_="List[" * 1000 + "str" + "]" * 1000), "nested deeper than 32 brackets"),
        (
            "answers",
            '[{"name": "get_weather", "arguments": {"city": ' + deep_json(1000) + "}}]",
            '"answers" is nested too deeply',
        ),
    ],
    ids=["tools 1000 deep", "tools 100 deep", "a type 1000 deep", "answers 1000 deep"],
)
def test_xlam_fields_nested_1000_deep_are_refused(
    workspace: Path, write_xlam: Any, field: str, text: str, said: str
) -> None:
    rows = [xlam_row(i) for i in range(4)]
    rows[1][field] = text
    path = write_xlam(rows)
    result = cli(["prepare", "--dataset-path", str(path), *SIZES])
    refused(result, f"{path}:row 1", said)
    nothing_in(Path("02_dataset"))


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        ('{"q": ' + deep_json(1000) + "}", "arguments are nested too deeply to read"),
        ('{"q": ' + deep_json(300) + "}", "nested deeper than 64 levels"),
    ],
    ids=["1000 deep", "300 deep"],
)
def test_logged_answers_nested_deep_are_refused(workspace: Path, arguments: str, said: str) -> None:
    schema = {"type": "object", "properties": {"q": {}}}
    result = prepare_log(conversation(schema, arguments, "deep"))
    refused(result, "log.jsonl:line 2", said)
    nothing_in(Path("02_dataset"))


# --- patterns --------------------------------------------------------------------------------------------


def pattern_schema(pattern: str, where: str) -> dict[str, Any]:
    if where == "pattern":
        return {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}}
    return {
        "type": "object",
        "patternProperties": {pattern: {"type": "string"}},
        "additionalProperties": False,
    }


def arguments(value: str, where: str) -> dict[str, str]:
    return {"code": value} if where == "pattern" else {value: "x"}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where", ["pattern", "patternProperties"])
@pytest.mark.parametrize("pattern", BACKTRACKING, ids=["nested-plus", "overlapping-alternation"])
def test_a_backtracking_pattern_refuses_a_gold_answer_promptly(
    workspace: Path, pattern: str, where: str
) -> None:
    started = time.monotonic()
    result = prepare_log(conversation(pattern_schema(pattern, where), arguments(HOSTILE_VALUE, where), "bad"))
    assert time.monotonic() - started < HANG_GUARD_S
    refused(result, "log.jsonl:line 2", "the arguments do not satisfy 'lookup'")
    if pattern == "^(a|aa)+$":  # the one `regex` cannot answer at once: cut short, and said so
        assert f"the pattern {pattern!r} did not finish" in result.output
    nothing_in(Path("02_dataset"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("track", ["toolcall", "structured"])
def test_a_backtracking_pattern_scores_a_failed_value_promptly(workspace: Path, track: str) -> None:
    tools = [tool(pattern_schema(p, "pattern"), f"check_{n}") for n, p in enumerate(BACKTRACKING)]
    rows = [conversation(PLAIN, {"q": "fine"}, "good")]
    for n in range(len(BACKTRACKING)):
        row = conversation(
            pattern_schema(BACKTRACKING[n], "pattern"), {"code": FINE_VALUE}, f"p{n}", f"check_{n}"
        )
        rows.append({**row, "tools": tools})
    log = write_log(rows)
    sizes = ["--train-size", "0", "--val-size", "0", "--test-size", "3"]
    result = cli(["prepare", "--source", "openai", "--dataset-path", str(log), *sizes])
    assert result.exit_code == 0, result.output
    examples = {e.id: e for e in read_examples(Path(f"02_dataset/{track}/test.jsonl"))}
    predictions = [
        {"id": e.id, "output": e.completion.replace(FINE_VALUE, HOSTILE_VALUE)} for e in examples.values()
    ]
    Path("preds.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    started = time.monotonic()
    result = replay_eval(track, Path("preds.jsonl"), "--out", "run.json")
    assert time.monotonic() - started < HANG_GUARD_S
    assert result.exit_code == 0, result.output
    scored = {r["id"]: r for r in json.loads(Path("run.json").read_text())["results"]}
    assert scored["openai-good"]["metrics"]["schema_valid"] == 1.0
    for n, pattern in enumerate(BACKTRACKING):
        row = scored[f"openai-p{n}"]
        assert row["metrics"]["schema_valid"] == 0.0 and row["metrics"]["exact_match"] == 0.0, row
        assert row["error_category"] == "wrong_value", row
        if pattern == "^(a|aa)+$":
            assert f"the pattern {pattern!r} did not finish" in row["error_detail"], row


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[a-zA-Z0-9_-]+$",
        r"^\d{4}-\d{2}-\d{2}$",
        r"^https?://",
        r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        r"^(?!.*\s).+$",
        r"(\w+) \1",
        r"^[À-ÿ]+$",
        r"colou?r",
        r"^$",
    ],
)
def test_ordinary_patterns_match_as_before(pattern: str) -> None:
    """The bounded engine answers as jsonschema with Python's `re` does, on ordinary patterns."""
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": pattern}}}
    values = ["", "abc", "ABC_12-x", "2024-01-31", "2024-1-31", "https://x.org", "a@b.co", "x@y", "a b"]
    values += ["a\nb", "hey hey", "Zoë", "ÀÉÎ", "\u00ff", "color", "colour", "12345678901234567890"]
    stock = jsonschema.Draft202012Validator(schema)
    assert [mismatch({"s": v}, schema) is None for v in values] == [stock.is_valid({"s": v}) for v in values]
