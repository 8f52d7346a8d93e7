"""Between the API and the engine: a request becomes the chat-template messages and the grammar the engine
answers with, and the engine's completion becomes the API's chat.completion."""

from __future__ import annotations

import json
from typing import Any

from slm_swap.data.formats import Turn, read_prompt, render_prompt, render_turns, system_text, track_of_system
from slm_swap.local.constrained import Grammars
from slm_swap.local.templates import Reading
from slm_swap.scoring.parse import parse_toolcall
from slm_swap.serve.schema import (
    AssistantMessage,
    ChatCompletion,
    ChatRequest,
    Choice,
    CompletionUsage,
    FinishReason,
    FunctionCall,
    Message,
    MessageToolCall,
    NamedToolChoice,
    call_id,
)
from slm_swap.types import Completion, ToolCall, ToolSpec, Track

# --- the request: OpenAI messages -> the [system, user, ...] messages our renderer makes -------------


def render_messages(request: ChatRequest) -> list[dict[str, str]]:
    """The chat-template messages for a request. With tools, the conversation is rendered exactly as a
    logged one is for evaluation and training (`formats`): the toolcall system prompt and then the
    client's own system text, the first user turn as `Available tools: ... User request: ...`, later
    turns by `render_turns`. Raises ValueError (a 400) for an earlier call whose arguments are not JSON."""
    tools = request.offered_tools()
    system = "\n\n".join(m.text() for m in request.messages if m.role in ("system", "developer"))
    names = {tc.id: tc.function.name for m in request.messages for tc in m.tool_calls or []}
    system = system_text("toolcall", system) if tools else system
    rendered = [{"role": "system", "content": system}] if system else []
    rest = [m for m in request.messages if m.role not in ("system", "developer")]
    first = next((i for i, m in enumerate(rest) if m.role == "user"), None) if tools else None
    if first is None:
        return rendered + render_turns("toolcall", [_turn(m, names) for m in rest])
    before = render_turns("toolcall", [_turn(m, names) for m in rest[:first]])
    request_turn = {"role": "user", "content": render_prompt(rest[first].text(), tools)}
    return [
        *rendered,
        *before,
        request_turn,
        *render_turns("toolcall", [_turn(m, names) for m in rest[first + 1 :]]),
    ]


def _turn(message: Message, names: dict[str, str]) -> Turn:
    if message.role == "assistant":
        calls = []
        for tc in message.tool_calls or []:
            try:
                arguments = json.loads(tc.function.arguments or "{}")
            except ValueError as e:
                raise ValueError(f"the arguments of tool call {tc.id!r} are not JSON") from e
            if not isinstance(arguments, dict):
                raise ValueError(f"the arguments of tool call {tc.id!r} are not a JSON object")
            calls.append(ToolCall(tc.function.name, arguments))
        return Turn("assistant", message.text(), tuple(calls))
    if message.role == "tool":
        return Turn(
            "tool", message.text(), name=message.name or names.get(message.tool_call_id or "", "tool")
        )
    return Turn("user", message.text())


def choose_grammar(
    request: ChatRequest, messages: list[dict[str, str]], grammars: Grammars, *, constrained: bool
) -> Any:
    """The grammar a request's answer must follow, or None (free text). Raises ValueError (a 400).

    The OpenAI contract is honoured by constraining:
    * `tool_choice` "required" → one or more calls of the offered tools (one with
      `parallel_tool_calls: false`); a named tool → one call of that tool;
    * `response_format` `json_schema` → JSON of that schema; `json_object` → any JSON.
    With `constrained` (`serve --constrained`), also:
    * `tool_choice` "auto" → the toolcall track's answer: calls, or a plain-text reply (no call), chosen
      on the model's likelihood of each as in evaluation;
    * a request in slm-swap's evaluation format (a track's system prompt and rendered tools, as
      `eval --model-kind openai` sends) → that track's grammar, as `eval --constrained` in process.
    """
    tools = request.offered_tools()
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        chosen = [t for t in tools if t.name == choice.function.name]
        if not chosen:
            raise ValueError(f"tool_choice names {choice.function.name!r}, which is not among the tools")
        return grammars.tool_calls(chosen, parallel=False)
    if choice == "required":
        if not tools:
            raise ValueError("tool_choice is 'required' but no tools were given")
        return grammars.tool_calls(tools, parallel=request.parallel_tool_calls)
    response_format = request.response_format
    if response_format is not None and response_format.type == "json_schema":
        if response_format.json_schema is None or not response_format.json_schema.schema_:
            raise ValueError("response_format json_schema needs json_schema.schema")
        return grammars.json_schema(response_format.json_schema.schema_)
    if response_format is not None and response_format.type == "json_object":
        return grammars.any_json()
    if not constrained:
        return None
    if tools:
        return grammars.for_track("toolcall", tools)
    evaluation = evaluation_request(messages)
    return None if evaluation is None else grammars.for_track(*evaluation)


def evaluation_request(messages: list[dict[str, str]]) -> tuple[Track, list[ToolSpec]] | None:
    """The track and tools of a request written by slm-swap's evaluation renderer (`Example.messages`:
    a track's system message, the rendered tools and request, perhaps later turns), or None."""
    if len(messages) < 2 or [m["role"] for m in messages[:2]] != ["system", "user"]:
        return None
    if messages[-1]["role"] != "user":
        return None
    track = track_of_system(messages[0]["content"])
    prompt = read_prompt(messages[1]["content"])
    if track is None or prompt is None:
        return None
    return track, prompt[0]


def openai_messages(request: ChatRequest) -> list[dict[str, Any]]:
    """The request's messages as a chat template takes them (the native protocol): text content, calls as
    `tool_calls`, a tool's result with its call's id and name; a developer message is a system one."""
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        message: dict[str, Any] = {"role": "system" if m.role == "developer" else m.role, "content": m.text()}
        if m.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tc.id,
                    "type": "function",
                    "function": {"name": tc.function.name, "arguments": tc.function.arguments},
                }
                for tc in m.tool_calls
            ]
        if m.role == "tool":
            message |= {"tool_call_id": m.tool_call_id or "", "name": m.name or ""}
        messages.append(message)
    return messages


# --- the answer: the engine's completion -> an OpenAI chat.completion --------------------------------


def native_response(
    request_model: str, completion: Completion, reading: Reading, limit: int
) -> ChatCompletion:
    """The chat.completion of an answer read in the model's own tool format: its calls as `tool_calls`
    when each is well formed (a name and a JSON object of arguments), else the answer's text as it is,
    as vLLM's tool parsers answer what they cannot read."""
    calls = [c for c in reading.calls if c.name and _object(c.arguments)]
    if reading.calls and len(calls) == len(reading.calls):
        message = AssistantMessage(
            content=reading.content or None,
            tool_calls=[
                MessageToolCall(id=call_id(), function=FunctionCall(name=c.name, arguments=c.arguments))
                for c in calls
            ],
        )
        finish: FinishReason = "tool_calls"
    else:
        message = AssistantMessage(content=reading.content if not reading.calls else completion.text)
        finish = finish_reason(completion, limit)
    return ChatCompletion(
        model=request_model,
        choices=[Choice(message=message, finish_reason=finish)],
        usage=usage_of(completion),
    )


def _object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


def to_response(request_model: str, completion: Completion, has_tools: bool, limit: int) -> ChatCompletion:
    """The chat.completion of an answer; with tools offered, a `<tool_call>` answer becomes `tool_calls`."""
    message = AssistantMessage(content=completion.text)
    finish = finish_reason(completion, limit)
    if has_tools:
        parsed = parse_toolcall(completion.text)
        if parsed.calls:
            message = AssistantMessage(
                content=None,
                tool_calls=[
                    MessageToolCall(
                        id=call_id(),
                        function=FunctionCall(
                            name=c.name, arguments=json.dumps(c.arguments, ensure_ascii=False)
                        ),
                    )
                    for c in parsed.calls
                ],
            )
            finish = "tool_calls"
    return ChatCompletion(
        model=request_model,
        choices=[Choice(message=message, finish_reason=finish)],
        usage=usage_of(completion),
    )


def finish_reason(completion: Completion, limit: int) -> FinishReason:
    """A text answer's finish reason: "length" when it used all `limit` tokens, else "stop"."""
    return "length" if completion.usage.completion_tokens >= limit else "stop"


def usage_of(completion: Completion) -> CompletionUsage:
    usage = completion.usage
    return CompletionUsage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.prompt_tokens + usage.completion_tokens,
    )
