"""How a model is asked: in slm-swap's own text format (`prompt`), or the way it is trained and used
(`native`).

* **prompt** (the default): every model gets the same `[system, user]` messages — the track's answer
  instructions, the tools as JSON lines in the user message — and answers in text (`formats.py`). Both
  sides are asked like for like, and a fine-tune learns that one format.
* **native**: a hosted model gets the tools through its API (`tools`, `tool_choice: auto`) and answers
  with `tool_calls`, or, on the structured track, gets the answer's JSON Schema as `response_format`
  (`json_schema`, strict where the schema allows it); a local checkpoint gets the tools rendered by its own
  chat template and answers in its template's tool-call format (`templates.py`).

Whatever the protocol, an answer is scored in the track's format: a native answer is written into it
(`answer_text`), the calls exactly as the model gave them (arguments that are not a JSON object stay
malformed and score as a failed call), so the scoring, the run files and the comparison are the same for
both protocols. A native reply with no call is the no-call answer; text beside a call is not part of the
answer (the application would run the call).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from slm_swap.data.formats import SYSTEM_PROMPTS, answer_schema, dumps
from slm_swap.scoring.parse import TOOL_CALL_BLOCK, parse_structured
from slm_swap.types import Example, ToolSpec, Track

Protocol = Literal["prompt", "native"]  # how one model is asked (`run --both-protocols` asks each side both)
PROMPT: Protocol = "prompt"
NATIVE: Protocol = "native"
PROTOCOLS: tuple[Protocol, ...] = (PROMPT, NATIVE)

# The form an answer takes: a track's (calls of the offered tools, or the no-call answer), any JSON value
# (a free prompt on the structured track), or text (a free prompt on the toolcall track).
AnswerForm = Literal["toolcall", "structured", "json", "text"]


@dataclass(frozen=True)
class Request:
    """What a backend completes: one conversation, the tools it offers, the form its answer takes and the
    protocol it is asked in. Built once from a dataset row (`of`) or a free prompt (`free`), so every
    backend gets the same conversation; a backend only renders it (its chat template, its API's request).

    `messages` are already the protocol's: under `prompt`, the track's `[system, user]` messages with the
    tools as text (`Example.messages`); under `native`, the toolcall track's conversation as an API or chat
    template takes it (`native_messages`; the tools go beside it), the structured track's as under
    `prompt` (its native form is the answer's schema, given by the API or the grammar)."""

    id: str
    messages: tuple[dict[str, Any], ...]
    tools: tuple[ToolSpec, ...] = ()
    answer: AnswerForm = "text"
    protocol: Protocol = PROMPT

    @classmethod
    def of(cls, example: Example, protocol: Protocol = PROMPT) -> Request:
        native = protocol == NATIVE and example.track == "toolcall"
        messages = native_messages(example) if native else example.messages()
        return cls(example.id, tuple(messages), example.tools, example.track, protocol)

    @classmethod
    def free(cls, prompt: str, track: Track, protocol: Protocol = PROMPT) -> Request:
        """A question of the user's own: under `prompt` with the track's system prompt, natively as it is;
        on the structured track its answer is any JSON value."""
        messages = [{"role": "user", "content": prompt}]
        if protocol == PROMPT:
            messages.insert(0, {"role": "system", "content": SYSTEM_PROMPTS[track]})
        return cls("prompt", tuple(messages), (), "json" if track == "structured" else "text", protocol)

    @property
    def native_calls(self) -> bool:
        """Whether the answer is asked in the model's own tool-calling form (the API's `tool_calls`, the
        chat template's tool format)."""
        return self.protocol == NATIVE and self.answer == "toolcall"

    @property
    def native_schema(self) -> bool:
        """Whether the answer's schema goes with the request (a hosted API's `response_format`)."""
        return self.protocol == NATIVE and self.answer == "structured"


@dataclass(frozen=True)
class RawCall:
    """A call as a model gave it natively: the tool's name and its arguments as text (JSON, if the model
    wrote it well)."""

    name: str
    arguments: str


def openai_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The tools in OpenAI's `tools` form, as the API and chat templates take them."""
    return [
        {
            "type": "function",
            "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
        }
        for t in tools
    ]


def openai_calls(calls: Sequence[RawCall], first: int = 0) -> list[dict[str, Any]]:
    """Calls in OpenAI's `tool_calls` form (ids `call_<n>` from `first`)."""
    return [
        {
            "id": f"call_{first + n}",
            "type": "function",
            "function": {"name": c.name, "arguments": c.arguments},
        }
        for n, c in enumerate(calls)
    ]


def instructions(example: Example) -> str:
    """The conversation's own system text (a logged conversation's system message), without the track's
    answer instructions that the prompt protocol puts before it."""
    prompt = SYSTEM_PROMPTS[example.track]
    return example.system[len(prompt) :].lstrip("\n") if example.system.startswith(prompt) else example.system


_TOOL_RESPONSE = re.compile(r'<tool_response name="([^"]*)">(.*?)</tool_response>', re.S)


def native_messages(example: Example) -> list[dict[str, Any]]:
    """The conversation as the model's API or chat template takes it: the team's own system text (if
    any), the user's request, and the later turns with the assistant's calls as `tool_calls` and the
    tools' results as `tool` messages (read back from the turns as the split holds them)."""
    system = instructions(example)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": example.query})
    pending: list[str] = []  # ids of the last assistant turn's calls, answered in order
    count = 0
    for turn in example.turns:
        content = turn["content"]
        if turn["role"] == "assistant":
            text, calls = _calls_in(example.track, content)
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["tool_calls"] = openai_calls(calls, count)
                pending = [call["id"] for call in message["tool_calls"]]
                count += len(calls)
            messages.append(message)
        elif content.startswith("<tool_response") and not _TOOL_RESPONSE.sub("", content).strip():
            for n, match in enumerate(_TOOL_RESPONSE.finditer(content)):
                call_id = pending[n] if n < len(pending) else f"call_{count + n}"
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call_id,
                        "name": match.group(1),
                        "content": match.group(2),
                    }
                )
        else:
            messages.append({"role": "user", "content": content})
    return messages


def _calls_in(track: Track, content: str) -> tuple[str, list[RawCall]]:
    """An assistant turn's text and calls, as `formats.render_turns` wrote them in `track`'s format."""
    if track == "toolcall":
        calls = [RawCall(m.group(1), m.group(2)) for m in TOOL_CALL_BLOCK.finditer(content)]
        return TOOL_CALL_BLOCK.sub("", content).strip(), calls
    text, _, tail = content.rpartition("\n")
    parsed = parse_structured(tail if text or tail.startswith("{") else content)
    if not parsed.calls:
        return content, []
    return text.strip(), [RawCall(c.name, dumps(c.arguments)) for c in parsed.calls]


def answer_text(track: Track, calls: Sequence[RawCall], content: str) -> str:
    """A native answer in `track`'s format, for scoring: the calls when there are any (their arguments
    as the model wrote them), else the reply (the no-call answer)."""
    if not calls:
        return content
    if track == "toolcall":
        return "\n".join(f'<tool_call name="{c.name}">{c.arguments}</tool_call>' for c in calls)
    # Arguments that are not JSON stay as written: the answer is then not valid JSON, a failed call.
    entries = ", ".join(
        f'{{"name": {json.dumps(c.name, ensure_ascii=False)}, "arguments": {c.arguments}}}' for c in calls
    )
    return f'{{"calls": [{entries}]}}'


# --- the structured track's response_format -------------------------------------------------------


def response_format(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """The structured answer's JSON Schema as an OpenAI `response_format`: strict when every object in
    it declares its properties (strict mode wants each object closed and every property required, so an
    optional one becomes nullable, and a null is read back as left out: `without_nulls`); otherwise the
    schema as it is, not strict (a free-form object cannot be written in strict mode)."""
    schema = answer_schema(tools, min_calls=0)
    strict = _strict(schema)
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "calls",
            "schema": strict if strict is not None else schema,
            "strict": strict is not None,
        },
    }


def _strict(schema: Any) -> Any:
    """`schema` in strict mode's subset, or None when it cannot be."""
    if isinstance(schema, list):
        items = [_strict(s) for s in schema]
        return None if any(s is None for s in items) else items
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "const":
            out["enum"] = [value]
        elif key in ("properties", "$defs", "definitions"):
            children = {k: _strict(v) for k, v in value.items()}
            if any(v is None for v in children.values()):
                return None
            out[key] = children
        elif key in ("items", "anyOf", "additionalProperties") and isinstance(value, dict | list):
            child = _strict(value)
            if child is None:
                return None
            out[key] = child
        else:
            out[key] = value
    if out.get("type") == "object" or "properties" in out:
        properties = out.get("properties")
        if not properties:
            return None
        required = set(out.get("required", ()))
        out["properties"] = {
            k: v if k in required else {"anyOf": [v, {"type": "null"}]} for k, v in properties.items()
        }
        out["required"] = list(properties)
        out["additionalProperties"] = False
    return out


def without_nulls(text: str, tools: Sequence[ToolSpec]) -> str:
    """A strict structured answer with the nulls that stand for optional arguments left out, rewritten in
    the track's JSON; any other text as it is (it is scored as it is)."""
    parsed = parse_structured(text)
    if not parsed.valid or not parsed.calls:
        return text
    by_name = {t.name: t.parameters for t in tools}
    calls = [
        {"name": c.name, "arguments": _drop_nulls(c.arguments, by_name.get(c.name, {}))} for c in parsed.calls
    ]
    if len(calls) != len(parsed.document.get("calls", [])):
        return text
    return dumps({"calls": calls})


def _drop_nulls(value: Any, schema: dict[str, Any]) -> Any:
    if not isinstance(value, dict):
        return value
    required = set(schema.get("required", ()))
    properties = schema.get("properties", {})
    return {
        k: _drop_nulls(v, properties.get(k, {}))
        for k, v in value.items()
        if not (v is None and k not in required)
    }
