"""The small types that cross every boundary: examples, tool calls, completions, results.

Backends turn provider data into `Completion`; scoring turns a `Completion` into an `ExampleResult`;
`compare` and `report` read `RunResult` files only. Nothing downstream sees a raw provider dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Track = Literal["structured", "toolcall"]
TRACKS: tuple[Track, ...] = ("structured", "toolcall")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ToolSpec:
    """A tool offered to the model; `parameters` is a JSON Schema object (OpenAI / BFCL form)."""

    name: str
    description: str
    parameters: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolSpec:
        return cls(name=data["name"], description=data.get("description", ""), parameters=data["parameters"])


@dataclass(frozen=True)
class ToolCall:
    """One call of a tool with concrete arguments."""

    name: str
    arguments: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolCall:
        return cls(name=data["name"], arguments=dict(data["arguments"]))


@dataclass(frozen=True)
class AcceptableCall:
    """What a correct call may look like, in BFCL's possible-answer form.

    `arguments` maps each parameter to the list of acceptable values; `""` in a list means the
    parameter may be omitted. A parameter absent from the map must not be passed.
    """

    name: str
    arguments: dict[str, list[Any]]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AcceptableCall:
        return cls(name=data["name"], arguments={k: list(v) for k, v in data["arguments"].items()})


_STR = {"type": "string"}
_CALL = {
    "type": "object",
    "required": ["name", "arguments"],
    "properties": {"name": _STR, "arguments": {"type": "object"}},
}
# A prepared split row as `Example.from_json` reads it (checked before it is read).
FILE_FORMATS: dict[int, list[Any]] = {}  # id -> [schema, its compiled check once made] (files.schema_problem)


def file_format(schema: dict[str, Any]) -> dict[str, Any]:
    """Marks `schema` as one of slm-swap's file formats, defined once at import: `files.schema_problem`
    then checks values against it compiled to Python (fastjsonschema: microseconds a row, where jsonschema
    takes a hundred or more, which at 60,000 rows was most of `compare` and `report`). Returns it."""
    FILE_FORMATS[id(schema)] = [schema, None]
    return schema


EXAMPLE_SCHEMA: dict[str, Any] = file_format(
    {
        "type": "object",
        "required": [
            "id",
            "track",
            "source",
            "query",
            "tools",
            "gold",
            "acceptable",
            "system",
            "prompt",
            "completion",
        ],
        "properties": {
            "id": {"type": ["string", "integer"]},
            "track": {"enum": list(TRACKS)},
            **{k: _STR for k in ("source", "query", "system", "prompt", "completion")},
            "tools": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "parameters"],
                    "properties": {"name": _STR, "description": _STR, "parameters": {"type": "object"}},
                },
            },
            "gold": {"type": "array", "items": _CALL},
            "labelled_by": _STR,
            "turns": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["role", "content"],
                    "properties": {"role": {"enum": ["user", "assistant"]}, "content": _STR},
                    "additionalProperties": False,
                },
            },
            "acceptable": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "arguments"],
                    "properties": {
                        "name": _STR,
                        "arguments": {"type": "object", "additionalProperties": {"type": "array"}},
                    },
                },
            },
        },
    }
)
# A latency and a token count as files may carry them: finite, not negative, and within what a run can
# take (a year of seconds; a billion tokens), so that sums and costs stay ordinary floats.
LATENCY_SCHEMA: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 31_536_000}
TOKENS_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 1_000_000_000}
METRIC_SCHEMA: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1}  # every metric is a share
USAGE_PROPERTIES: dict[str, Any] = {"prompt_tokens": TOKENS_SCHEMA, "completion_tokens": TOKENS_SCHEMA}
# One per-example result as stored in run files and journals.
RESULT_SCHEMA: dict[str, Any] = file_format(
    {
        "type": "object",
        "required": [
            "id",
            "output",
            "calls",
            "metrics",
            "error_category",
            "error_detail",
            "latency_s",
            "usage",
        ],
        "properties": {
            "id": _STR,
            "output": _STR,
            "calls": {"type": ["array", "null"], "items": _CALL},
            "metrics": {"type": "object", "additionalProperties": METRIC_SCHEMA},
            "error_category": {"type": ["string", "null"]},
            "error_detail": {"type": ["string", "null"]},
            "latency_s": LATENCY_SCHEMA,
            "usage": {"type": "object", "properties": USAGE_PROPERTIES, "additionalProperties": False},
            "backend_error": {"type": ["string", "null"]},
        },
        "additionalProperties": False,
    }
)


@dataclass(frozen=True)
class Example:
    """One dataset row: everything needed to prompt a model and to score its answer offline."""

    id: str
    track: Track
    source: str
    query: str
    tools: tuple[ToolSpec, ...]
    gold: tuple[ToolCall, ...]
    acceptable: tuple[AcceptableCall, ...]
    system: str
    prompt: str
    completion: str
    # A logged conversation's turns after its first user message, rendered (`formats.render_turns`).
    turns: tuple[dict[str, str], ...] = ()
    # The hosted model whose answer is the gold (`slm-swap label`): scores on it measure agreement.
    labelled_by: str = ""

    def messages(self) -> list[dict[str, str]]:
        """The messages every backend receives, for evaluation, training and serving: `[system, user]`,
        then the conversation's later turns, if any."""
        first = [{"role": "system", "content": self.system}, {"role": "user", "content": self.prompt}]
        return first + [dict(t) for t in self.turns]

    def to_json(self) -> dict[str, Any]:
        return (
            {
                "id": self.id,
                "track": self.track,
                "source": self.source,
                "prompt": self.prompt,
                "completion": self.completion,
                "system": self.system,
                "query": self.query,
                "tools": [t.to_json() for t in self.tools],
                "gold": [c.to_json() for c in self.gold],
                "acceptable": [c.to_json() for c in self.acceptable],
            }
            | ({"turns": [dict(t) for t in self.turns]} if self.turns else {})
            | ({"labelled_by": self.labelled_by} if self.labelled_by else {})
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Example:
        return cls(
            id=str(data["id"]),
            track=data["track"],
            source=data["source"],
            query=data["query"],
            tools=tuple(ToolSpec.from_json(t) for t in data["tools"]),
            gold=tuple(ToolCall.from_json(c) for c in data["gold"]),
            acceptable=tuple(AcceptableCall.from_json(c) for c in data["acceptable"]),
            system=data["system"],
            prompt=data["prompt"],
            completion=data["completion"],
            turns=tuple({"role": t["role"], "content": t["content"]} for t in data.get("turns", ())),
            labelled_by=str(data.get("labelled_by", "")),
        )


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    """What a backend returns for one example: text, or the error that stopped it."""

    text: str
    latency_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    error: str | None = None


@dataclass(frozen=True)
class ExampleResult:
    """One scored example as stored in a run file."""

    id: str
    output: str
    calls: list[dict[str, Any]] | None
    metrics: dict[str, float]
    error_category: str | None
    error_detail: str | None
    latency_s: float
    usage: Usage
    backend_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As stored (the fields in order; nested values shared, not copied: dataclasses.asdict's deep
        copy was a third of a 60,000-example replay)."""
        return {
            "id": self.id,
            "output": self.output,
            "calls": self.calls,
            "metrics": self.metrics,
            "error_category": self.error_category,
            "error_detail": self.error_detail,
            "latency_s": self.latency_s,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "completion_tokens": self.usage.completion_tokens,
            },
            "backend_error": self.backend_error,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExampleResult:
        fields = dict(data)
        fields["usage"] = Usage(**fields.get("usage", {}))
        return cls(**fields)
