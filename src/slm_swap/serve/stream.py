"""`stream: true`: an answer sent as server-sent events of chat.completion.chunk objects."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence

from slm_swap.local.constrained import Constraint
from slm_swap.serve.batcher import Batcher
from slm_swap.serve.render import finish_reason, usage_of
from slm_swap.serve.schema import (
    ChatCompletion,
    ChatCompletionChunk,
    ChunkChoice,
    CompletionUsage,
    Delta,
    FinishReason,
    ToolCallDelta,
    completion_id,
)
from slm_swap.types import Completion

OnDone = Callable[[str, list[dict[str, str]], Completion, float], None]

_DONE = "data: [DONE]\n\n"


def chunks_of(response: ChatCompletion, include_usage: bool) -> list[ChatCompletionChunk]:
    """A finished chat.completion as the chunks a streaming client expects."""
    rid, model = response.id, response.model
    choice = response.choices[0]
    message = choice.message
    chunks = [_chunk(rid, model, Delta(role="assistant", content=""))]
    if message.tool_calls:
        calls = [
            ToolCallDelta(index=i, id=call.id, type=call.type, function=call.function)
            for i, call in enumerate(message.tool_calls)
        ]
        chunks.append(_chunk(rid, model, Delta(tool_calls=calls)))
    elif message.content:
        chunks.append(_chunk(rid, model, Delta(content=message.content)))
    chunks.append(_chunk(rid, model, Delta(), choice.finish_reason))
    if include_usage:
        chunks.append(_usage_chunk(rid, model, response.usage))
    return chunks


async def sse(chunks: Sequence[ChatCompletionChunk]) -> AsyncIterator[str]:
    for chunk in chunks:
        yield _event(chunk)
    yield _DONE


async def stream_text(
    batcher: Batcher,
    messages: list[dict[str, str]],
    model: str,
    text: str,
    limit: int,
    constraint: Constraint | None,
    include_usage: bool,
    on_done: OnDone,
) -> AsyncIterator[str]:
    """Server-sent events of a text answer, token by token as the engine generates them (in a shared
    batch with other requests). A client that goes away (the stream is cancelled or closed) cancels its
    answer, which stops its generation at the next decoding step."""
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue[int | None] = asyncio.Queue()
    start = time.time()

    def on_token(token: int) -> None:
        loop.call_soon_threadsafe(tokens.put_nowait, token)

    future = batcher.submit(model, text, limit, constraint=constraint, on_token=on_token)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(tokens.put_nowait, None))
    rid = completion_id()
    ids: list[int] = []
    sent = ""
    try:
        yield _event(_chunk(rid, model, Delta(role="assistant", content="")))
        while (token := await tokens.get()) is not None:
            ids.append(token)
            decoded = str(batcher.engine.tokenizer.decode(ids, skip_special_tokens=True))
            if decoded.endswith("\ufffd"):  # an unfinished UTF-8 character: wait for its other bytes
                continue
            if len(decoded) > len(sent):
                yield _event(_chunk(rid, model, Delta(content=decoded[len(sent) :])))
                sent = decoded
        completion = future.result()
    finally:
        if not future.done():
            future.cancel()
    if len(completion.text) > len(sent) and completion.text.startswith(sent):
        yield _event(_chunk(rid, model, Delta(content=completion.text[len(sent) :])))
    yield _event(_chunk(rid, model, Delta(), finish_reason(completion, limit)))
    if include_usage:
        yield _event(_usage_chunk(rid, model, usage_of(completion)))
    yield _DONE
    on_done(model, messages, completion, start)


def _chunk(rid: str, model: str, delta: Delta, finish: FinishReason | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=rid, model=model, choices=[ChunkChoice(delta=delta, finish_reason=finish)])


def _usage_chunk(rid: str, model: str, usage: CompletionUsage) -> ChatCompletionChunk:
    return ChatCompletionChunk(id=rid, model=model, choices=[], usage=usage)


def _event(chunk: ChatCompletionChunk) -> str:
    return f"data: {json.dumps(chunk.model_dump(), ensure_ascii=False)}\n\n"
