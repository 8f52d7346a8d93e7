"""A team's own traffic in OpenAI's chat format: JSON Lines of logged requests or fine-tuning rows.

Each line is `{"messages": [...], "tools": [{"type": "function", "function": {name, description,
parameters}}], ...}` (other keys, such as `id`, `model` or `metadata`, are allowed; `id` names the row).
The final assistant message's `tool_calls` (one or several, `arguments` a JSON string) is the gold answer:
every call names one of the row's `tools` and its arguments satisfy that tool's parameter schema. A final
assistant message without a tool call is an answer too, no call (small talk, a request no offered tool
can serve, a clarifying question): the row's gold is no call and its text the reply the toolcall track
is taught (`formats.render_completion`; `NO_CALL_REPLY` where the message has no text).

How a conversation reaches the prompt, alike in evaluation, training and serving (`formats`):

* the row's system (or developer) messages follow the track's own system prompt (`system_text`);
* the first user message is the request, shown after the tools (`render_prompt`);
* later turns follow as chat messages (`render_turns`): an assistant's earlier calls in the track's
  answer format, tool results as `<tool_response name="...">` user turns, further user messages as they
  are.

Rows that are well formed but make no example are left out and counted, not errors: a conversation that
ends before the assistant's answer (label those with `slm-swap label`). A row must offer tools (a
conversation without any is refused as a bad row, as before: with nothing to call, abstaining is the only
possible answer, so it teaches and measures nothing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.data.formats import Turn
from slm_swap.data.rows import RowError, RowLeftOut, SourceRow, acceptable_from_gold
from slm_swap.files import json_lines, loads, require_file, schema_problem, tool_schema_problem
from slm_swap.types import ToolCall, ToolSpec

WHAT = 'one conversation per line: {"messages": [...], "tools": [...]}'
UNLABELLED = "the conversation ends before the assistant's answer (label it with `slm-swap label`)"
ROLES = ("system", "developer", "user", "assistant", "tool")
LABEL_KEY = "slm_swap_label"  # in a row's metadata: who labelled it and when (`slm-swap label`)


def iter_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """Yields ("line N", decoded row) for each non-blank line. Raises InputError for a missing file or a
    line that is not JSON."""
    require_file(path, f"pass the JSON Lines file with {settings.DATASET_PATH}")
    with path.open("rb") as f:
        for lineno, data in json_lines(f, path, WHAT):
            yield f"line {lineno}", data


def _text(message: dict[str, Any], where: str) -> str:
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise RowError(f"{where}: content part of type {kind!r}; only text parts can be used")
            parts.append(part["text"])
        return "".join(parts)
    raise RowError(f"{where}: content must be a string or a list of text parts")


def _tools(raw: Any) -> dict[str, ToolSpec]:
    if not isinstance(raw, list) or not raw:
        raise RowError(
            '"tools" must be a non-empty list', "give the tools the request offered, as in the API"
        )
    tools: dict[str, ToolSpec] = {}
    for position, entry in enumerate(raw):
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict) or entry.get("type", "function") != "function":
            raise RowError(f'tools[{position}] is not {{"type": "function", "function": {{...}}}}')
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise RowError(f"tools[{position}] has no name")
        if any(ch in name for ch in '"<>'):
            raise RowError(f"tool name {name!r} contains a quote or angle bracket")
        if name in tools:
            raise RowError(f"tool {name!r} is offered twice")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise RowError(f"tool {name!r}: parameters must be a JSON Schema of an object")
        problem = tool_schema_problem(name, parameters)
        if problem is not None:
            raise RowError(problem)
        description = function.get("description", "")
        tools[name] = ToolSpec(name, description if isinstance(description, str) else "", parameters)
    return tools


def _calls(message: dict[str, Any], where: str, tools: dict[str, ToolSpec]) -> tuple[ToolCall, ...]:
    raw = message.get("tool_calls") or []
    if not isinstance(raw, list):
        raise RowError(f"{where}: tool_calls must be a list")
    calls = []
    for position, entry in enumerate(raw):
        at = f"{where}.tool_calls[{position}]"
        function = entry.get("function") if isinstance(entry, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RowError(f'{at} is not {{"type": "function", "function": {{"name", "arguments"}}}}')
        name, arguments = function["name"], function.get("arguments", "{}")
        if isinstance(arguments, str):
            try:
                arguments = loads(arguments) if arguments.strip() else {}
            except ValueError as e:
                raise RowError(f"{at}: arguments are not valid JSON ({e})") from e
            except RecursionError as e:
                raise RowError(f"{at}: arguments are nested too deeply to read") from e
        if not isinstance(arguments, dict):
            raise RowError(f"{at}: arguments must be a JSON object")
        tool = tools.get(name)
        if tool is None:
            raise RowError(f"{at} calls {name!r}, which is not among the row's tools ({', '.join(tools)})")
        problem = schema_problem(arguments, tool.parameters)
        if problem is not None:
            raise RowError(f"{at}: the arguments do not satisfy {name!r}'s parameters {problem}")
        calls.append(ToolCall(name, arguments))
    return tuple(calls)


@dataclass(frozen=True)
class Conversation:
    """One validated row: its tools, its request (the first user message), its own system text, the
    turns after the request (the final answer included, when there is one) and who labelled it."""

    row_id: str
    tools: dict[str, ToolSpec]
    query: str
    instructions: str
    turns: tuple[Turn, ...]
    labelled_by: str = ""  # the hosted model that wrote the final answer (`slm-swap label`), if any

    @property
    def answered(self) -> bool:
        """Whether the conversation ends with the assistant's answer (not at a user or tool turn)."""
        return bool(self.turns) and self.turns[-1].role == "assistant"

    def source_row(
        self, gold: tuple[ToolCall, ...], turns: tuple[Turn, ...], source: str = "openai", reply: str = ""
    ) -> SourceRow:
        """The row whose answer is `gold` (no call: `()`, with `reply` its text) after `turns`."""
        return SourceRow(
            id=f"{source}-{self.row_id}",
            source=source,
            query=self.query,
            tools=tuple(self.tools.values()),
            gold=gold,
            acceptable=tuple(acceptable_from_gold(c, self.tools[c.name]) for c in gold),
            instructions=self.instructions,
            turns=turns,
            labelled_by=self.labelled_by,
            reply=reply,
        )


def read_conversation(data: Any, where: str) -> Conversation:
    """Validates one row. Raises RowError naming what is wrong."""
    if not isinstance(data, dict):
        raise RowError(f"a row must be a JSON object, not {type(data).__name__}", WHAT)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RowError('"messages" must be a non-empty list', WHAT)
    if "tools" not in data:
        raise RowError('no "tools"', "log the tools each request offered beside its messages")
    tools = _tools(data["tools"])
    names: dict[str, str] = {}  # tool_call_id -> the tool it called
    instructions: list[str] = []
    query: str | None = None
    turns: list[Turn] = []
    for position, message in enumerate(messages):
        at = f"messages[{position}]"
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise RowError(f"{at} has no role among {', '.join(ROLES)}")
        role, text = message["role"], _text(message, at)
        if role in ("system", "developer"):
            instructions.append(text)
        elif query is None:
            if role != "user":
                raise RowError(f"{at} is a {role} message before any user message")
            query = text
        elif role == "assistant":
            calls = _calls(message, at, tools)
            for entry, call in zip(message.get("tool_calls") or [], calls, strict=True):
                if isinstance(entry.get("id"), str):
                    names[entry["id"]] = call.name
            turns.append(Turn("assistant", text, calls))
        elif role == "tool":
            name = message.get("name") or names.get(str(message.get("tool_call_id")), "tool")
            turns.append(Turn("tool", text, name=str(name)))
        else:
            turns.append(Turn("user", text))
    if not query:
        raise RowError("no user message with text" if query is None else "the first user message is empty")
    row_id = data.get("id", where.replace(" ", "-"))
    if not isinstance(row_id, (str, int)) or isinstance(row_id, bool):
        raise RowError('"id" must be a string or a number')
    metadata = data.get("metadata")
    label = metadata.get(LABEL_KEY) if isinstance(metadata, dict) else None
    labelled_by = str(label.get("model", "")) if isinstance(label, dict) else ""
    return Conversation(
        str(row_id), tools, query, "\n\n".join(t for t in instructions if t), tuple(turns), labelled_by
    )


def convert_row(data: Any, where: str, source: str = "openai") -> SourceRow:
    """Validates one conversation and converts it: its final answer's calls are the gold, or, for an
    answer without a call, no call with the answer's text as its reply. Raises RowError naming what is
    wrong, RowLeftOut for a well-formed row that makes no example."""
    conversation = read_conversation(data, where)
    if not conversation.answered:
        raise RowLeftOut(UNLABELLED)
    answer = conversation.turns[-1]
    reply = "" if answer.calls else answer.content
    return conversation.source_row(answer.calls, conversation.turns[:-1], source, reply)


# --- writing the format ----------------------------------------------------------------------------------


def assistant_message(
    calls: Sequence[ToolCall], content: str | None = None, first: int = 0
) -> dict[str, Any]:
    """An assistant message making `calls`, as the API returns it (ids `call_<n>` from `first`)."""
    return {
        "role": "assistant",
        "content": content,
        "tool_calls": [
            {
                "id": f"call_{first + i}",
                "type": "function",
                "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)},
            }
            for i, c in enumerate(calls)
        ],
    }


def openai_tool(tool: ToolSpec) -> dict[str, Any]:
    return {"type": "function", "function": tool.to_json()}


def conversation_messages(row: SourceRow) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A row as the messages of the request (system text, the request, later turns) and its answer: the
    inverse of `convert_row` for any source, so a prepared row can be written in this format."""
    messages: list[dict[str, Any]] = []
    if row.instructions:
        messages.append({"role": "system", "content": row.instructions})
    messages.append({"role": "user", "content": row.query})
    made = 0
    for turn in row.turns:
        if turn.role == "assistant":
            messages.append(assistant_message(turn.calls, turn.content or None, made))
            made += len(turn.calls)
        elif turn.role == "tool":
            messages.append({"role": "tool", "name": turn.name, "content": turn.content})
        else:
            messages.append({"role": "user", "content": turn.content})
    return messages, assistant_message(row.gold, row.reply or None, made)
