"""How an example is shown to a model and how its gold answer is written, per track.

This is the single renderer used for evaluation, training and serving, so a model is always asked in the
same words it is trained and served with.

Answer formats:

* structured: one JSON object `{"calls": [{"name": <tool>, "arguments": {...}}, ...]}`; a list even for a
  single call so that parallel calls need no second shape. `answer_schema()` is its JSON Schema.
* toolcall: one `<tool_call name="TOOL">{JSON arguments}</tool_call>` block per call, one per line.

No call is an answer too, when no offered tool fits the request or it needs none: structured
`{"calls": []}`; toolcall, a reply in plain text with no `<tool_call` in it (`NO_CALL_REPLY` where the
source gives no words of its own). A malformed attempt at a call is a failed call, never this answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from slm_swap.types import ToolCall, ToolSpec, Track

STRUCTURED_SYSTEM = (
    "You are a function-calling assistant. Choose the tool call(s) that fulfil the user's request, using "
    "only the tools listed. Answer with a single JSON object and nothing else, no prose and no code fences:"
    ' {"calls": [{"name": "<tool name>", "arguments": {"<parameter>": <value>}}]}.'
    ' Put one entry in "calls" for each call needed.'
    ' If no listed tool fits the request, or it needs no tool, answer {"calls": []}.'
)
TOOLCALL_SYSTEM = (
    "You are a function-calling assistant. Choose the tool call(s) that fulfil the user's request, using "
    "only the tools listed. Answer with one block per call, one per line, and nothing else:"
    ' <tool_call name="<tool name>">{"<parameter>": <value>}</tool_call>'
    " If no listed tool fits the request, or it needs no tool, reply in plain text without any block."
)
# The toolcall track's no-call answer where the source has no reply of its own (BFCL's irrelevance rows,
# rows made by removing the right tools): training teaches this reply; scoring accepts any plain text.
NO_CALL_REPLY = "None of the listed tools can do this."
SYSTEM_PROMPTS: dict[str, str] = {"structured": STRUCTURED_SYSTEM, "toolcall": TOOLCALL_SYSTEM}


def dumps(value: Any) -> str:
    """Compact, unicode-preserving JSON used in prompts and answers (stable across runs)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def render_tools(tools: Sequence[ToolSpec]) -> str:
    """One tool per line, each as `{"name", "description", "parameters"}` with JSON Schema parameters."""
    return "\n".join(dumps(t.to_json()) for t in tools)


TOOLS_HEADER = "Available tools:\n"
REQUEST_HEADER = "\n\nUser request: "


def render_prompt(query: str, tools: Sequence[ToolSpec]) -> str:
    """The user message: the tools offered, then the request."""
    return f"{TOOLS_HEADER}{render_tools(tools)}{REQUEST_HEADER}{query}"


def read_prompt(text: str) -> tuple[list[ToolSpec], str] | None:
    """The tools and request of a user message that `render_prompt` wrote, or None for any other text.

    Exact, not a guess: each tool is one line of JSON (which escapes newlines), so the tools end at the
    first line that is not a tool, and the result must render back to `text`."""
    if not text.startswith(TOOLS_HEADER):
        return None
    tools: list[ToolSpec] = []
    rest = text[len(TOOLS_HEADER) :]
    while True:
        line, _, rest = rest.partition("\n")
        try:
            tools.append(ToolSpec.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        if rest.startswith(REQUEST_HEADER[1:]):
            query = rest[len(REQUEST_HEADER) - 1 :]
            return (tools, query) if render_prompt(query, tools) == text else None
        if not rest:
            return None


def render_completion(track: Track, calls: Sequence[ToolCall], reply: str = "") -> str:
    """The gold answer text for `calls` in the format of `track`; with no calls, the no-call answer
    (toolcall: `reply`, the conversation's own text, else `NO_CALL_REPLY`)."""
    if track == "structured":
        return dumps({"calls": [c.to_json() for c in calls]})
    if not calls:
        return reply.strip() or NO_CALL_REPLY
    return "\n".join(f'<tool_call name="{c.name}">{dumps(c.arguments)}</tool_call>' for c in calls)


def system_text(track: Track, instructions: str = "") -> str:
    """The system message: the track's answer instructions, then the team's own system text (a logged
    conversation's system message, a client's under `serve`), if any."""
    return f"{SYSTEM_PROMPTS[track]}\n\n{instructions}" if instructions else SYSTEM_PROMPTS[track]


def track_of_system(text: str) -> Track | None:
    """The track whose system message `system_text` wrote as `text`, or None."""
    for track, prompt in SYSTEM_PROMPTS.items():
        if text == prompt or text.startswith(prompt + "\n\n"):
            return track  # type: ignore[return-value]
    return None


@dataclass(frozen=True)
class Turn:
    """A turn of a conversation after its first user message, in OpenAI's roles: a user's text, an
    assistant's text and calls, or a tool's result (`name`: the tool that gave it)."""

    role: Literal["user", "assistant", "tool"]
    content: str = ""
    calls: tuple[ToolCall, ...] = ()
    name: str = "tool"


def render_turns(track: Track, turns: Sequence[Turn]) -> list[dict[str, str]]:
    """The chat messages for the turns after the first user message, as evaluation, training and
    serving show them: an assistant's calls in the track's own answer format (after its text, if any),
    and tool results as `<tool_response name="...">...</tool_response>` in a user turn (the results of
    one round of calls together)."""
    rendered: list[dict[str, str]] = []
    for turn in turns:
        if turn.role == "assistant":
            calls = render_completion(track, turn.calls) if turn.calls else ""
            rendered.append({"role": "assistant", "content": "\n".join([turn.content, calls]).strip()})
        elif turn.role == "tool":
            reply = f'<tool_response name="{turn.name}">{turn.content}</tool_response>'
            last = rendered[-1] if rendered else None
            if last is not None and last["role"] == "user" and last["content"].startswith("<tool_response"):
                last["content"] += "\n" + reply
            else:
                rendered.append({"role": "user", "content": reply})
        else:
            rendered.append({"role": "user", "content": turn.content})
    return rendered


def strict_parameters(tool: ToolSpec) -> dict[str, Any]:
    """The tool's parameter schema with undeclared arguments forbidden at the top level."""
    params = dict(tool.parameters)
    if params.get("type") == "object":
        params.setdefault("additionalProperties", False)
    return params


def answer_schema(tools: Sequence[ToolSpec], min_calls: int = 1) -> dict[str, Any]:
    """JSON Schema of a structured answer for these tools: each call names an offered tool and its
    arguments satisfy that tool's parameter schema; at least `min_calls` calls (0: no call is an answer)."""
    call_schemas = [
        {
            "type": "object",
            "properties": {"name": {"const": t.name}, "arguments": strict_parameters(t)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    # With no tool offered the only answer is no call (JSON Schema's anyOf needs at least one schema).
    entries = {"items": {"anyOf": call_schemas}} if call_schemas else {"maxItems": 0}
    return {
        "type": "object",
        "properties": {"calls": {"type": "array", "minItems": min_calls, **entries}},
        "required": ["calls"],
        "additionalProperties": False,
    }
