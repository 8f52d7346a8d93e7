"""The OpenAI chat-completions API as `serve` speaks it, as pydantic models: the request (the parts used;
other fields are accepted and ignored) and every object sent back.

The request's fields are strict, as the API types them: `"max_tokens": "5"` or `"stream": "yes"` is a
400 naming the field, not a value guessed from a string (clients send JSON numbers and booleans).

A response object's `model_dump()` is its JSON body exactly as OpenAI's: the fields OpenAI leaves out when
they have no value (a message's `tool_calls`, a chunk's `usage`, the parts of a delta) are left out when
None; every other field is sent, null included (`content: null` beside tool calls, `logprobs: null`),
because clients and SDKs read them.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from slm_swap.types import ToolSpec

FinishReason = Literal["stop", "length", "tool_calls"]


# --- shared by the request and the response --------------------------------------------------------


class Strict(BaseModel):
    """A model a request is read into: no value is converted from another JSON type (a string into a
    number), and fields it does not name are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class FunctionCall(Strict):
    name: str
    arguments: str = "{}"  # JSON text, as OpenAI sends it


class MessageToolCall(Strict):
    """A tool call in an assistant message: the model's answer, or an earlier turn sent back by the client."""

    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


# --- the request --------------------------------------------------------------------------------------


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class FunctionSpec(Strict):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Tool(Strict):
    type: Literal["function"] = "function"
    function: FunctionSpec


class NamedFunction(Strict):
    name: str


class NamedToolChoice(Strict):
    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaSpec(Strict):
    model_config = ConfigDict(populate_by_name=True)

    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(Strict):
    include_usage: bool = False


class ChatRequest(Strict):
    model: str = ""
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    n: int | None = None  # choices wanted: serve answers one
    stream: bool = False
    stream_options: StreamOptions | None = None

    def offered_tools(self) -> list[ToolSpec]:
        """The tools shown to the model: none under `tool_choice: none`."""
        if self.tool_choice == "none":
            return []
        return [
            ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in self.tools or []
        ]

    def include_usage(self) -> bool:
        """Whether a stream ends with a usage chunk (`stream_options.include_usage`)."""
        return self.stream_options is not None and self.stream_options.include_usage


# --- the response ------------------------------------------------------------------------------------


def completion_id() -> str:
    return f"chatcmpl-{secrets.token_hex(12)}"


def call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def _now() -> int:
    return int(time.time())


class Reply(BaseModel):
    """An object sent back. The fields named in `omitted_if_none` are left out of its JSON when None."""

    omitted_if_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _leave_out_nones(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        body: dict[str, Any] = handler(self)
        return {k: v for k, v in body.items() if v is not None or k not in self.omitted_if_none}


class CompletionUsage(Reply):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(Reply):
    """The answer: text in `content`, or `tool_calls` with `content` null."""

    omitted_if_none = frozenset({"tool_calls"})

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[MessageToolCall] | None = None


class Choice(Reply):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(Reply):
    id: str = Field(default_factory=completion_id)
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[Choice]
    usage: CompletionUsage


class ToolCallDelta(Reply):
    """A whole tool call in a stream (`index` says which of the message's calls it is)."""

    index: int
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Delta(Reply):
    omitted_if_none = frozenset({"role", "content", "tool_calls"})

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChunkChoice(Reply):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(Reply):
    """One server-sent event of a stream; the last, under `include_usage`, has no choices and the usage."""

    omitted_if_none = frozenset({"usage"})

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int = Field(default_factory=_now)
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None


class ModelCard(Reply):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "slm-swap"


class ModelList(Reply):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(Reply):
    status: Literal["ok"] = "ok"
    models: list[str]


class ErrorDetail(Reply):
    message: str
    type: str
    param: str | None = None  # the request field at fault
    code: str | None = None


class ErrorResponse(Reply):
    error: ErrorDetail
