"""`slm-swap serve`: the real openai client against the running server (tiny model, real HTTP)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from slm_swap.data.formats import TOOLCALL_SYSTEM, render_prompt
from slm_swap.local.engine import Engine
from slm_swap.runs import read_run
from slm_swap.serve import Batcher, ChatRequest, render_messages, to_response
from slm_swap.types import Completion, Example, ToolSpec, Usage
from tests.cli import cli

from .langfuse_receiver import LangfuseReceiver
from .serving import Running

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture(scope="module")
def server(tiny_model: Path, tiny_adapter: Path) -> Iterator[Running]:
    running = Running(
        Batcher(Engine(tiny_model, {"toolcall": tiny_adapter}), max_batch=8, max_wait_s=0.05),
        api_key="serve-key",
    )
    yield running
    running.stop()


def client(server: Running, key: str = "serve-key") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=60)


def test_plain_chat_and_models(server: Running) -> None:
    c = client(server)
    assert [m.id for m in c.models.list()] == ["tiny-llama", "toolcall"]
    reply = c.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Hi"}], max_tokens=5
    )
    assert reply.choices[0].message.role == "assistant"
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 5
    assert reply.choices[0].finish_reason in ("stop", "length")
    again = c.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Hi"}], max_tokens=5
    )
    assert again.choices[0].message.content == reply.choices[0].message.content  # greedy, deterministic
    adapted = c.chat.completions.create(
        model="toolcall", messages=[{"role": "user", "content": "Hi"}], max_tokens=5
    )
    assert adapted.choices[0].message.content != reply.choices[0].message.content


def test_auth_and_bad_requests_get_openai_shaped_errors(server: Running) -> None:
    with pytest.raises(openai.AuthenticationError):
        client(server, key="wrong").chat.completions.create(
            model="tiny-llama", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client(server).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client(server).chat.completions.create(
            model="tiny-llama", messages=[{"role": "user", "content": "x"}], max_tokens=1_000_000
        )
    headers = {"Authorization": "Bearer serve-key"}
    big = httpx.post(server.url + "/v1/chat/completions", headers=headers, content=b"x" * 1_100_000)
    assert big.status_code == 413 and big.json()["error"]["message"]
    junk = httpx.post(server.url + "/v1/chat/completions", headers=headers, content=b"{not json")
    assert junk.status_code == 400 and junk.json()["error"]["type"] == "invalid_request_error"
    empty = httpx.post(
        server.url + "/v1/chat/completions", headers=headers, json={"model": "x", "messages": []}
    )
    assert empty.status_code == 400
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # still up


def test_azure_shaped_path(server: Running) -> None:
    azure = openai.AzureOpenAI(
        azure_endpoint=server.url,
        api_key="serve-key",
        api_version="2024-05-01-preview",
        azure_deployment="tiny-llama",
        max_retries=0,
    )
    reply = azure.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Hi"}], max_tokens=3
    )
    assert reply.choices[0].message.role == "assistant"


def test_concurrent_clients_are_batched_and_all_answered(server: Running) -> None:
    c = client(server)
    alone = {
        i: c.chat.completions.create(
            model="tiny-llama", messages=[{"role": "user", "content": f"n {i}"}], max_tokens=4
        )
        .choices[0]
        .message.content
        for i in range(4)
    }
    before = len(server.batcher.batches)

    def ask(i: int) -> str | None:
        return (
            c.chat.completions.create(
                model="tiny-llama", messages=[{"role": "user", "content": f"n {i % 4}"}], max_tokens=4
            )
            .choices[0]
            .message.content
        )

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(ask, range(32)))
    assert len(answers) == 32 and all(a is not None for a in answers)
    sizes = server.batcher.batches[before:]
    assert sum(sizes) == 32 and max(sizes) > 1  # shared generate calls
    agree = sum(answers[i] == alone[i % 4] for i in range(32))
    print(f"\nbatched vs alone answers identical for {agree}/32 requests (padding can change float order)")


def test_tools_are_rendered_as_in_evaluation_and_second_turns_work() -> None:
    request = ChatRequest.model_validate(
        {
            "model": "m",
            "tools": [WEATHER],
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 21}'},
            ],
        }
    )
    tool = ToolSpec("get_weather", "Weather in a city.", WEATHER["function"]["parameters"])  # type: ignore[index]
    assert render_messages(request) == [
        {"role": "system", "content": TOOLCALL_SYSTEM + "\n\nBe brief."},
        {"role": "user", "content": render_prompt("Weather in Paris?", [tool])},
        {"role": "assistant", "content": '<tool_call name="get_weather">{"city": "Paris"}</tool_call>'},
        {"role": "user", "content": '<tool_response name="get_weather">{"temp_c": 21}</tool_response>'},
    ]


def test_tool_call_output_becomes_openai_tool_calls() -> None:
    text = '<tool_call name="get_weather">{"city": "Zürich"}</tool_call>'
    response = to_response("m", Completion(text, usage=Usage(10, 12)), has_tools=True, limit=100).model_dump()
    choice = response["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Zürich"}
    plain = to_response(
        "m", Completion("It is sunny.", usage=Usage(10, 3)), has_tools=True, limit=100
    ).model_dump()
    assert plain["choices"][0]["message"]["content"] == "It is sunny."
    assert plain["choices"][0]["finish_reason"] == "stop"


def test_eval_against_serve_as_openai_and_as_azure(
    prepared: list[Example], server: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    openai_args = ["--base-url", server.url + "/v1", "--api-key", "serve-key", "--model", "tiny-llama"]
    result = cli(
        ["eval", "--track", "toolcall", "--model-kind", "openai", *openai_args, "--max-new-tokens", "4"]
    )
    assert result.exit_code == 0, result.output
    for key, value in {
        "AZURE_ENDPOINT": server.url,
        "AZURE_DEPLOYMENT": "toolcall",
        "AZURE_API_KEY": "serve-key",
        "AZURE_API_VERSION": "2024-05-01-preview",
    }.items():
        monkeypatch.setenv(key, value)
    result = cli(["eval", "--track", "toolcall", "--model-kind", "azure", "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    hosted, azure = (
        read_run(Path("05_eval/toolcall_openai_test.json")),
        read_run(Path("05_eval/toolcall_azure_test.json")),
    )
    assert len(hosted.results) == len(azure.results) == len(prepared)
    assert azure.meta.model == "toolcall" and all(r.backend_error is None for r in azure.results)


MODE = {
    "type": "function",
    "function": {
        "name": "set_mode",
        "description": "Set the device mode.",
        "parameters": {
            "type": "object",
            "properties": {"mode": {"enum": ["eco", "boost"]}, "on": {"type": "boolean"}},
            "required": ["mode", "on"],
        },
    },
}
LIGHT = {
    "type": "function",
    "function": {
        "name": "light",
        "description": "Turn the light on or off.",
        "parameters": {"type": "object", "properties": {"on": {"type": "boolean"}}, "required": ["on"]},
    },
}
CHOICE_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"enum": ["yes", "no"]}, "sure": {"type": "boolean"}},
    "required": ["answer", "sure"],
    "additionalProperties": False,
}


def test_json_schema_response_format_is_honoured(server: Running) -> None:
    c = client(server)
    free = c.chat.completions.create(
        model="tiny-llama", messages=[{"role": "user", "content": "Yes or no?"}], max_tokens=24
    )
    reply = c.chat.completions.create(
        model="tiny-llama",
        messages=[{"role": "user", "content": "Yes or no?"}],
        max_tokens=24,
        response_format={"type": "json_schema", "json_schema": {"name": "choice", "schema": CHOICE_SCHEMA}},
    )
    value = json.loads(reply.choices[0].message.content or "")
    assert (
        set(value) == {"answer", "sure"}
        and value["answer"] in ("yes", "no")
        and isinstance(value["sure"], bool)
    )
    assert free.choices[0].message.content != reply.choices[0].message.content  # it was constrained
    json_object = c.chat.completions.create(
        model="tiny-llama",
        messages=[{"role": "user", "content": "Some JSON"}],
        max_tokens=8,
        response_format={"type": "json_object"},
    )
    started = (json_object.choices[0].message.content or "").lstrip()[:1]
    assert started and started in '{["-0123456789tfn'  # the start of a JSON value, never prose


def test_tool_choice_named_and_required_give_valid_tool_calls(server: Running) -> None:
    c = client(server)
    messages = [{"role": "user", "content": "Switch to eco mode."}]
    for choice in ({"type": "function", "function": {"name": "set_mode"}}, "required"):
        reply = c.chat.completions.create(
            model="tiny-llama",
            messages=messages,  # type: ignore[arg-type]
            tools=[LIGHT, MODE],  # type: ignore[list-item]
            tool_choice=choice,  # type: ignore[arg-type]
            parallel_tool_calls=False,
            max_tokens=64,
        )
        assert reply.choices[0].finish_reason == "tool_calls", (choice, reply.choices[0].message.content)
        calls = reply.choices[0].message.tool_calls or []
        assert len(calls) == 1
        arguments = json.loads(calls[0].function.arguments)  # type: ignore[union-attr]
        if calls[0].function.name == "set_mode":  # type: ignore[union-attr]
            assert arguments["mode"] in ("eco", "boost") and isinstance(arguments["on"], bool)
        else:
            assert choice == "required" and isinstance(arguments["on"], bool)


def test_contract_violations_are_400(server: Running) -> None:
    c = client(server)
    messages = [{"role": "user", "content": "x"}]
    with pytest.raises(openai.BadRequestError, match="not among the tools"):
        c.chat.completions.create(
            model="tiny-llama",
            messages=messages,  # type: ignore[arg-type]
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    with pytest.raises(openai.BadRequestError, match="no tools"):
        c.chat.completions.create(model="tiny-llama", messages=messages, tool_choice="required")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="schema"):
        c.chat.completions.create(
            model="tiny-llama",
            messages=messages,  # type: ignore[arg-type]
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "wat"}}},
        )


def test_streaming_sends_tokens_as_they_come_and_matches_the_whole_answer(server: Running) -> None:
    c = client(server)
    messages = [{"role": "user", "content": "Tell me a story."}]
    whole = c.chat.completions.create(model="tiny-llama", messages=messages, max_tokens=16)  # type: ignore[arg-type]
    chunks = list(
        c.chat.completions.create(
            model="tiny-llama",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [ch.choices[0].delta.content for ch in chunks if ch.choices and ch.choices[0].delta.content]
    assert "".join(pieces) == whole.choices[0].message.content
    assert len(pieces) > 3  # token by token, not one piece at the end
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert (
        chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    )  # type: ignore[union-attr]


def test_streaming_with_tools_sends_tool_call_chunks(server: Running) -> None:
    stream = client(server).chat.completions.create(
        model="tiny-llama",
        messages=[{"role": "user", "content": "Eco mode please."}],
        tools=[MODE],  # type: ignore[list-item]
        tool_choice={"type": "function", "function": {"name": "set_mode"}},
        max_tokens=64,
        stream=True,
    )
    chunks = list(stream)
    deltas = [call for ch in chunks for call in ch.choices[0].delta.tool_calls or []]
    assert [d.function.name for d in deltas] == ["set_mode"]  # type: ignore[union-attr]
    assert json.loads(deltas[0].function.arguments)["mode"] in ("eco", "boost")  # type: ignore[union-attr,arg-type]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_constrained_server_answers_evaluation_requests_like_eval_constrained(
    prepared: list[Example], tiny_model: Path
) -> None:
    batcher = Batcher(Engine(tiny_model, {}), max_batch=8, max_wait_s=0.05)
    running = Running(batcher, api_key=None, constrained=True)
    try:
        args = ["--base-url", running.url + "/v1", "--api-key", "none", "--model", "tiny-llama"]
        served = cli(
            ["eval", "--track", "toolcall", "--model-kind", "openai", *args, "--max-new-tokens", "24"]
        )
        assert served.exit_code == 0, served.output
    finally:
        running.stop()
    local_args = ["--model-kind", "slm", "--model-path", str(tiny_model), "--constrained"]
    local = cli(["eval", "--track", "toolcall", *local_args, "--max-new-tokens", "24"])
    assert local.exit_code == 0, local.output
    hosted = read_run(Path("05_eval/toolcall_openai_test.json"))
    in_process = read_run(Path("05_eval/toolcall_slm_test.json"))
    # A call or a reply (no call), as the track's grammar allows either way.
    assert all(r.output.startswith('<tool_call name="') or "<" not in r.output for r in hosted.results)
    same = sum(a.output == b.output for a, b in zip(hosted.results, in_process.results, strict=True))
    assert same >= len(hosted.results) - 1, f"{same}/{len(hosted.results)} identical"


def test_requests_are_traced_like_eval_generations(
    tiny_model: Path, langfuse_receiver: LangfuseReceiver
) -> None:
    from slm_swap.tracing import LangfuseSettings, LangfuseTracer

    tracer = LangfuseTracer(
        LangfuseSettings(f"pk-lf-serve-{secrets.token_hex(4)}", "sk-lf-serve-SECRET", langfuse_receiver.url),
        timeout_s=2,
    )
    batcher = Batcher(Engine(tiny_model, {}), max_batch=8, max_wait_s=0.05)
    running = Running(batcher, api_key=None, tracer=tracer)
    try:
        c = openai.OpenAI(base_url=running.url + "/v1", api_key="none", max_retries=0)
        reply = c.chat.completions.create(
            model="tiny-llama", messages=[{"role": "user", "content": "Hi"}], max_tokens=4
        )
        streamed = list(
            c.chat.completions.create(
                model="tiny-llama", messages=[{"role": "user", "content": "Yo"}], max_tokens=4, stream=True
            )
        )
    finally:
        running.stop()
    assert tracer.flush().delivered
    tracer.close()
    generations = langfuse_receiver.spans_named("serve/tiny-llama")
    assert len(generations) == 2 and streamed
    outputs = {g.attr("langfuse.observation.output") for g in generations}
    assert reply.choices[0].message.content in outputs
    first = next(
        g for g in generations if g.attr("langfuse.observation.output") == reply.choices[0].message.content
    )
    assert first.json_attr("langfuse.observation.input") == [{"role": "user", "content": "Hi"}]
    assert first.attr("langfuse.observation.type") == "generation"
    assert {s.attr("langfuse.trace.tags")[0] for s in langfuse_receiver.spans_named("serve tiny-llama")} == {
        "mode=serve"
    }
    assert all(b"sk-lf-serve-SECRET" not in r.body for r in langfuse_receiver.requests)


def test_a_constrained_server_answers_tool_choice_auto_with_calls_or_a_reply(tiny_model: Path) -> None:
    """`tool_choice: auto` under --constrained follows evaluation's grammar and rule 0: the answer is calls
    or a plain reply, never prose with a call in it. A finished call reaches the client as tool_calls; an
    answer the token limit cut is returned as it stands (finish_reason length)."""
    batcher = Batcher(Engine(tiny_model, {}), max_batch=8, max_wait_s=0.05)
    running = Running(batcher, api_key=None, constrained=True)
    try:
        c = openai.OpenAI(base_url=running.url + "/v1", api_key="none", max_retries=0, timeout=60)
        for question in ("What's the weather in Paris?", "Tell me a joke."):
            reply = c.chat.completions.create(
                model="tiny-llama",
                messages=[{"role": "user", "content": question}],
                tools=[WEATHER],  # type: ignore[list-item]
                max_tokens=16,
            )
            message, finish = reply.choices[0].message, reply.choices[0].finish_reason
            if message.tool_calls:
                assert finish == "tool_calls" and message.tool_calls[0].function.name == "get_weather"
            else:
                text = message.content or ""
                assert text and (
                    "<" not in text or (finish == "length" and text.startswith("<tool_call name="))
                )
    finally:
        running.stop()
