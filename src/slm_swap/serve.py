"""`slm-swap serve`: the local SLM behind the OpenAI chat-completions protocol.

Applications (Mastra, the openai SDKs, agent frameworks) call it as they called the hosted model:

* `POST /v1/chat/completions` — the request's `model` picks the base model or a named adapter, as vLLM
  does; `tools` are shown to the model exactly as in evaluation and training, and its
  `<tool_call name="...">{...}</tool_call>` answer comes back as OpenAI `tool_calls`;
* `POST /openai/deployments/<name>/chat/completions?api-version=...` — the same, Azure-shaped (the
  deployment name picks the model; the key goes in the `api-key` header), so `--model-kind azure` can
  point at it;
* `GET /v1/models`, `GET /health`.

Answers come from the one generation engine (`engine.py`) that `eval` uses: the same model and adapter
loading, prompt rendering, grammars and stop rules, so a request gives the text `eval` would. Concurrent
requests are queued and answered in shared `generate` calls (one batch per model), so many clients are
served faster than one at a time. An agent's second turn works: assistant messages with
`tool_calls` are shown as the `<tool_call>` blocks the model itself writes, and `tool` messages as
`<tool_response name="...">...</tool_response>` in a user turn.

`tool_choice` (required / a named tool) and `response_format` (json_schema / json_object) are honoured by
grammar-constrained decoding (`choose_grammar`); `stream: true` sends tokens as server-sent events while
the request shares its batch.
"""

from __future__ import annotations

import asyncio
import json
import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

# FastAPI reads the handlers' annotations at run time, so its names are imported here, not lazily; this
# module itself is only imported by `slm-swap serve` (the serve extra).
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from slm_swap import settings
from slm_swap.constrained import Constraint, Grammars
from slm_swap.data.formats import Turn, read_prompt, render_prompt, render_turns, system_text, track_of_system
from slm_swap.engine import Engine
from slm_swap.scoring.parse import parse_toolcall
from slm_swap.types import Completion, ToolCall, ToolSpec, Track

MAX_BODY_BYTES = 1_000_000
MAX_TOKENS_LIMIT = 4096


# --- the request, as the OpenAI API defines it (the parts we use; other fields are accepted and ignored) ---


class FunctionCall(BaseModel):
    name: str
    arguments: str = "{}"


class ToolCallIn(BaseModel):
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: keep the text ones
            return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")
        return self.content or ""


class FunctionSpec(BaseModel):
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Tool(BaseModel):
    type: Literal["function"] = "function"
    function: FunctionSpec


class NamedFunction(BaseModel):
    name: str


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = ""
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    def offered_tools(self) -> list[ToolSpec]:
        """The tools shown to the model: none under `tool_choice: none`."""
        if self.tool_choice == "none":
            return []
        return [
            ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in self.tools or []
        ]


# --- rendering: OpenAI messages -> the [system, user, ...] messages our renderer makes ---------------


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
    * `tool_choice` "auto" → free text, but every `<tool_call` begun is well formed;
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
        return grammars.optional_tool_calls(tools)
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


def to_response(request_model: str, completion: Completion, has_tools: bool, limit: int) -> dict[str, Any]:
    """An OpenAI chat.completion object; a `<tool_call>` answer becomes `tool_calls`."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.text}
    finish = _finish(completion, limit)
    if has_tools:
        parsed = parse_toolcall(completion.text)
        if parsed.calls:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{secrets.token_hex(12)}",
                        "type": "function",
                        "function": {
                            "name": c.name,
                            "arguments": json.dumps(c.arguments, ensure_ascii=False),
                        },
                    }
                    for c in parsed.calls
                ],
            }
            finish = "tool_calls"
    return {
        "id": f"chatcmpl-{secrets.token_hex(12)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request_model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": _usage(completion),
    }


def _finish(completion: Completion, limit: int) -> str:
    return "length" if completion.usage.completion_tokens >= limit else "stop"


def _usage(completion: Completion) -> dict[str, int]:
    usage = completion.usage
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
    }


# --- the queue: concurrent requests batched for the one engine -------------------------------------


@dataclass
class Job:
    model: str
    text: str
    max_tokens: int
    future: Future[Completion]
    constraint: Constraint | None = None  # what the answer must follow
    on_token: Callable[[int], None] | None = None  # streaming: called with each new token id


class _Streams:
    """A transformers streamer for a batch: hands each row's new tokens to its job's `on_token`, up to
    the job's own limit and its end of sequence."""

    def __init__(self, jobs: Sequence[Job], stop_ids: set[int]):
        self.jobs = jobs
        self.stop_ids = stop_ids
        self.sent = [0] * len(jobs)
        self.ended = [False] * len(jobs)

    def put(self, value: Any) -> None:
        if value.dim() > 1:  # the prompt, sent once before the first step
            return
        for i, token in enumerate(value.tolist()):
            job = self.jobs[i]
            if job.on_token is None or self.ended[i]:
                continue
            if token in self.stop_ids or self.sent[i] >= job.max_tokens:
                self.ended[i] = True
                continue
            self.sent[i] += 1
            job.on_token(token)

    def end(self) -> None:
        pass


class Batcher:
    """Queues rendered prompts for the one generation engine (`engine.Engine`, the same that `eval`
    answers with); a worker thread answers queued prompts of the same model in one batch."""

    def __init__(self, engine: Engine, *, max_batch: int = 8, max_wait_s: float = 0.05):
        self.engine = engine
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.batches: list[int] = []  # sizes of the batches run, for tests and benchmarks
        self.worker = threading.Thread(target=self._work, name="slm-swap-engine", daemon=True)
        self.worker.start()

    def submit(
        self,
        model: str,
        text: str,
        max_tokens: int,
        *,
        constraint: Constraint | None = None,
        on_token: Callable[[int], None] | None = None,
    ) -> Future[Completion]:
        """Queues a rendered prompt; the future resolves to its completion. `constraint` constrains the
        answer; `on_token` receives its tokens as they are generated (called on the engine's thread)."""
        future: Future[Completion] = Future()
        self.jobs.put(Job(model, text, max_tokens, future, constraint, on_token))
        return future

    def close(self) -> None:
        self.jobs.put(None)
        self.worker.join(timeout=30)

    def _work(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            batch = [job]
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    more = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if more is None:
                    self.jobs.put(None)
                    break
                batch.append(more)
            # A request whose client went away (its future cancelled) is not computed.
            batch = [j for j in batch if j.future.set_running_or_notify_cancel()]
            for model in dict.fromkeys(j.model for j in batch):
                self._run([j for j in batch if j.model == model])

    def _run(self, jobs: Sequence[Job]) -> None:
        try:
            with self.engine.using(jobs[0].model):
                completions = self._generate(jobs)
            self.batches.append(len(jobs))
            for job, completion in zip(jobs, completions, strict=True):
                job.future.set_result(completion)
        except Exception as e:
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(e)

    def _generate(self, jobs: Sequence[Job]) -> list[Completion]:
        tokenizer = self.engine.tokenizer
        streams = None
        if any(j.on_token for j in jobs):
            streams = _Streams(jobs, {tokenizer.eos_token_id, tokenizer.pad_token_id})
        completions = self.engine.generate(
            [j.text for j in jobs],
            max(j.max_tokens for j in jobs),
            constraints=[j.constraint for j in jobs],
            streamer=streams,
        )
        # Greedy answers share their first k tokens whatever the limit: cut each to its own.
        return [
            c if c.usage.completion_tokens <= j.max_tokens else self._cut(c, j.max_tokens)
            for c, j in zip(completions, jobs, strict=True)
        ]

    def _cut(self, completion: Completion, limit: int) -> Completion:
        tokenizer = self.engine.tokenizer
        ids = tokenizer(completion.text, add_special_tokens=False)["input_ids"][:limit]
        text = str(tokenizer.decode(ids, skip_special_tokens=True))
        usage = type(completion.usage)(completion.usage.prompt_tokens, len(ids))
        return Completion(text=text, latency_s=completion.latency_s, usage=usage)


# --- the HTTP app ----------------------------------------------------------------------------------


def _error(status: int, message: str, kind: str, code: str | None = None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"message": message, "type": kind, "param": None, "code": code}}
    )


def create_app(
    batcher: Batcher, *, api_key: str | None = None, tracer: Any = None, constrained: bool = False
) -> Any:
    """The FastAPI application over `batcher`'s engine. With `api_key`, every request must carry it
    (Bearer, or `api-key` on the Azure path); with `constrained`, see `choose_grammar`."""
    app = FastAPI(title="slm-swap serve", docs_url=None, redoc_url=None)
    engine = batcher.engine

    def on_done(model: str, messages: list[dict[str, str]], completion: Completion, start: float) -> None:
        if tracer is not None:
            _trace(tracer, model, messages, completion, start)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if request.url.path != "/health" and api_key:
            bearer = request.headers.get("authorization", "")
            given = bearer[7:] if bearer.lower().startswith("bearer ") else request.headers.get("api-key", "")
            if not secrets.compare_digest(given.encode(), api_key.encode()):
                return _error(401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > MAX_BODY_BYTES:
            return _error(413, f"Request body over {MAX_BODY_BYTES} bytes.", "invalid_request_error")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(
            400, f"Invalid request: {where}: {first.get('msg', 'malformed')}", "invalid_request_error"
        )

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "models": engine.model_names}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "slm-swap"}
                for name in engine.model_names
            ],
        }

    async def complete(raw: bytes, model_override: str | None) -> Any:
        try:
            request = ChatRequest.model_validate_json(raw)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return _error(400, f"Invalid request: {where}: {first.get('msg')}", "invalid_request_error")
        model = model_override or request.model or engine.base_name
        if model not in engine.model_names:
            return _error(
                404,
                f"The model '{model}' does not exist; serving: {', '.join(engine.model_names)}",
                "invalid_request_error",
                "model_not_found",
            )
        limit = request.max_completion_tokens or request.max_tokens or settings.API_MAX_TOKENS
        if limit > MAX_TOKENS_LIMIT:
            return _error(400, f"max_tokens is {limit}; at most {MAX_TOKENS_LIMIT}.", "invalid_request_error")
        try:
            messages = render_messages(request)
            constraint = await asyncio.to_thread(
                choose_grammar, request, messages, engine.grammars, constrained=constrained
            )
        except ValueError as e:
            return _error(400, f"Invalid request: {e}", "invalid_request_error")
        text = engine.render(messages)
        has_tools = bool(request.offered_tools())
        start = time.time()
        if request.stream and not has_tools:
            return StreamingResponse(
                _stream_text(batcher, request, messages, model, text, limit, constraint, on_done),
                media_type="text/event-stream",
            )
        completion = await asyncio.wrap_future(batcher.submit(model, text, limit, constraint=constraint))
        on_done(model, messages, completion, start)
        response = to_response(model, completion, has_tools, limit)
        if request.stream:  # with tools: the answer is parsed whole, then sent as chunks
            return StreamingResponse(_sse(_chunks_of(response, request)), media_type="text/event-stream")
        return response

    async def read_body(request: Request) -> bytes | None:
        """The body, or None once it passes MAX_BODY_BYTES (a chunked body declares no length)."""
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > MAX_BODY_BYTES:
                return None
            parts.append(part)
        return b"".join(parts)

    async def answer(request: Request, model_override: str | None) -> Any:
        raw = await read_body(request)
        if raw is None:
            return _error(413, f"Request body over {MAX_BODY_BYTES} bytes.", "invalid_request_error")
        return await complete(raw, model_override)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await answer(request, None)

    @app.post("/openai/deployments/{deployment}/chat/completions")
    async def azure_chat(deployment: str, request: Request) -> Any:
        if "api-version" not in request.query_params:
            return _error(400, "Missing required query parameter: api-version.", "invalid_request_error")
        return await answer(request, deployment)

    return app


def _chunk(response_id: str, model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def _usage_chunk(response_id: str, model: str, usage: dict[str, int]) -> dict[str, Any]:
    return {**_chunk(response_id, model, {}, None), "choices": [], "usage": usage}


def _chunks_of(response: dict[str, Any], request: ChatRequest) -> list[dict[str, Any]]:
    """A finished chat.completion as the chunks a streaming client expects."""
    rid, model = response["id"], response["model"]
    choice = response["choices"][0]
    message = choice["message"]
    chunks = [_chunk(rid, model, {"role": "assistant", "content": ""}, None)]
    if message.get("tool_calls"):
        calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
        chunks.append(_chunk(rid, model, {"tool_calls": calls}, None))
    elif message["content"]:
        chunks.append(_chunk(rid, model, {"content": message["content"]}, None))
    chunks.append(_chunk(rid, model, {}, choice["finish_reason"]))
    if request.stream_options and request.stream_options.include_usage:
        chunks.append(_usage_chunk(rid, model, response["usage"]))
    return chunks


async def _sse(chunks: Sequence[dict[str, Any]]) -> AsyncIterator[str]:
    for chunk in chunks:
        yield _event(chunk)
    yield "data: [DONE]\n\n"


async def _stream_text(
    batcher: Batcher,
    request: ChatRequest,
    messages: list[dict[str, str]],
    model: str,
    text: str,
    limit: int,
    constraint: Constraint | None,
    on_done: Callable[[str, list[dict[str, str]], Completion, float], None],
) -> AsyncIterator[str]:
    """Server-sent events of a text answer, token by token as the engine generates them (in a shared
    batch with other requests)."""
    loop = asyncio.get_running_loop()
    tokens: asyncio.Queue[int | None] = asyncio.Queue()
    start = time.time()

    def on_token(token: int) -> None:
        loop.call_soon_threadsafe(tokens.put_nowait, token)

    future = batcher.submit(model, text, limit, constraint=constraint, on_token=on_token)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(tokens.put_nowait, None))
    rid = f"chatcmpl-{secrets.token_hex(12)}"
    ids: list[int] = []
    sent = ""
    try:
        yield _event(_chunk(rid, model, {"role": "assistant", "content": ""}, None))
        while (token := await tokens.get()) is not None:
            ids.append(token)
            decoded = str(batcher.engine.tokenizer.decode(ids, skip_special_tokens=True))
            if decoded.endswith("\ufffd"):  # an unfinished UTF-8 character: wait for its other bytes
                continue
            if len(decoded) > len(sent):
                yield _event(_chunk(rid, model, {"content": decoded[len(sent) :]}, None))
                sent = decoded
        completion = future.result()
    except asyncio.CancelledError:
        future.cancel()
        raise
    if len(completion.text) > len(sent) and completion.text.startswith(sent):
        yield _event(_chunk(rid, model, {"content": completion.text[len(sent) :]}, None))
    yield _event(_chunk(rid, model, {}, _finish(completion, limit)))
    if request.stream_options and request.stream_options.include_usage:
        yield _event(_usage_chunk(rid, model, _usage(completion)))
    yield "data: [DONE]\n\n"
    on_done(model, messages, completion, start)


def _event(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"


def _trace(
    tracer: Any, model: str, messages: list[dict[str, str]], completion: Completion, start: float
) -> None:
    from datetime import UTC, datetime

    with tracer.run(
        f"serve {model}", input=messages, metadata={"model": model}, tags=("mode=serve",)
    ) as trace:
        trace.generation(
            name=f"serve/{model}",
            model=model,
            input=messages,
            output=completion.text,
            usage={"input": completion.usage.prompt_tokens, "output": completion.usage.completion_tokens},
            start_time=datetime.fromtimestamp(start, UTC),
            end_time=datetime.now(UTC),
        )
