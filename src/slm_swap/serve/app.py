"""The HTTP app: the routes, the API key and body-size guard, OpenAI-shaped errors, and tracing of answers."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any

# FastAPI reads the handlers' annotations at run time, so its names are imported here, not lazily; this
# package itself is only imported by `slm-swap serve` (the serve extra).
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect

from slm_swap import settings
from slm_swap.local import templates
from slm_swap.protocol import openai_tools
from slm_swap.serve.batcher import Answer, Batcher
from slm_swap.serve.render import (
    choose_grammar,
    native_response,
    openai_messages,
    render_messages,
    to_response,
)
from slm_swap.serve.schema import ChatRequest, ErrorDetail, ErrorResponse, Health, ModelCard, ModelList
from slm_swap.serve.stream import chunks_of, sse, stream_text
from slm_swap.types import Completion

MAX_BODY_BYTES = 1_000_000
MAX_TOKENS_LIMIT = 4096


def _error(
    status: int, message: str, kind: str, code: str | None = None, param: str | None = None
) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(message=message, type=kind, param=param, code=code))
    return JSONResponse(status_code=status, content=body.model_dump())


def _gone() -> JSONResponse:
    """The answer to a client that hung up: no one reads it (499, as proxies log a closed request)."""
    return _error(499, "The client closed the request.", "invalid_request_error")


async def _answered(answer: Answer, request: Request) -> Completion | None:
    """The completion, or None once the client hangs up first: its answer is then cancelled, which
    stops its generation at the next decoding step."""
    finished = asyncio.wrap_future(answer)
    gone = asyncio.ensure_future(_hung_up(request))
    try:
        await asyncio.wait((finished, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not finished.done():  # the client has gone, or the server is stopping
            finished.cancel()  # cancels `answer` too
    return None if finished.cancelled() else finished.result()


async def _hung_up(request: Request) -> None:
    """Returns once the client disconnects (its body has been read, so nothing else is received)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def create_app(
    batcher: Batcher,
    *,
    api_key: str | None = None,
    tracer: Any = None,
    constrained: bool = False,
    family: str | None = None,
) -> Any:
    """The FastAPI application over `batcher`'s engine. With `api_key`, every request must carry it
    (Bearer, or `api-key` on the Azure path); with `constrained`, see `choose_grammar`. With `family`
    (`serve --protocol native`), a request with tools and no constraint on its answer is rendered by the
    model's own chat template and its answer read in that family's tool format (`templates.py`)."""
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
        return Health(models=engine.model_names).model_dump()

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return ModelList(data=[ModelCard(id=name) for name in engine.model_names]).model_dump()

    async def complete(http: Request, raw: bytes, model_override: str | None) -> Any:
        try:
            request = ChatRequest.model_validate_json(raw)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return _error(
                400,
                f"Invalid request: {where}: {first.get('msg')}",
                "invalid_request_error",
                param=where or None,
            )
        if request.n not in (None, 1):
            return _error(
                400,
                f"n is {request.n}: serve answers with one choice per request; leave n out or set it to 1.",
                "invalid_request_error",
                param="n",
            )
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
            field = "max_completion_tokens" if request.max_completion_tokens else "max_tokens"
            return _error(
                400, f"{field} is {limit}; at most {MAX_TOKENS_LIMIT}.", "invalid_request_error", param=field
            )
        auto = request.tool_choice in (None, "auto") and request.response_format is None
        if family is not None and auto and request.offered_tools():
            return await native(http, request, model, limit)
        try:
            messages = render_messages(request)
            constraint = await asyncio.to_thread(
                choose_grammar, request, messages, engine.grammars, constrained=constrained
            )
        except ValueError as e:
            return _error(400, f"Invalid request: {e}", "invalid_request_error")
        has_tools = bool(request.offered_tools())
        text = engine.render(messages)
        start = time.time()
        if request.stream and not has_tools:
            return StreamingResponse(
                stream_text(
                    batcher, messages, model, text, limit, constraint, request.include_usage(), on_done
                ),
                media_type="text/event-stream",
            )
        completion = await _answered(batcher.submit(model, text, limit, constraint=constraint), http)
        if completion is None:
            return _gone()
        on_done(model, messages, completion, start)
        response = to_response(model, completion, has_tools, limit)
        if request.stream:  # with tools: the answer is parsed whole, then sent as chunks
            chunks = chunks_of(response, request.include_usage())
            return StreamingResponse(sse(chunks), media_type="text/event-stream")
        return response.model_dump()

    async def native(http: Request, request: ChatRequest, model: str, limit: int) -> Any:
        assert family is not None
        tools = openai_tools(request.offered_tools())
        messages = openai_messages(request)
        text = templates.render(engine.tokenizer, messages, tools)
        try:
            constraint = (
                await asyncio.to_thread(engine.grammars.native_calls, family, request.offered_tools())
                if constrained
                else None
            )
        except ValueError as e:
            return _error(400, f"Invalid request: {e}", "invalid_request_error")
        start = time.time()
        completion = await _answered(
            batcher.submit(model, text, limit, constraint=constraint, special_tokens=True), http
        )
        if completion is None:
            return _gone()
        on_done(model, messages, completion, start)
        reading = templates.read(family, completion.text, engine.tokenizer, text, tools)
        response = native_response(model, completion, reading, limit)
        if request.stream:
            return StreamingResponse(
                sse(chunks_of(response, request.include_usage())), media_type="text/event-stream"
            )
        return response.model_dump()

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
        try:
            raw = await read_body(request)
        except ClientDisconnect:  # it hung up while sending its request
            return _gone()
        if raw is None:
            return _error(413, f"Request body over {MAX_BODY_BYTES} bytes.", "invalid_request_error")
        return await complete(request, raw, model_override)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        return await answer(request, None)

    @app.post("/openai/deployments/{deployment}/chat/completions")
    async def azure_chat(deployment: str, request: Request) -> Any:
        if "api-version" not in request.query_params:
            return _error(400, "Missing required query parameter: api-version.", "invalid_request_error")
        return await answer(request, deployment)

    return app


def _trace(
    tracer: Any, model: str, messages: list[dict[str, str]], completion: Completion, start: float
) -> None:
    from datetime import UTC, datetime

    from slm_swap.tracing import Generation

    with tracer.run(
        f"serve {model}", input=messages, metadata={"model": model}, tags=("mode=serve",)
    ) as trace:
        trace.generation(
            Generation(
                name=f"serve/{model}",
                model=model,
                input=messages,
                output=completion.text,
                usage={"input": completion.usage.prompt_tokens, "output": completion.usage.completion_tokens},
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.now(UTC),
            )
        )
