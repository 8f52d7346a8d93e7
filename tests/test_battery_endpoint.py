"""The battery's hostile endpoint, through the commands that talk to it (`eval`, `label`) with the real
`openai` client and the stand-in server (tests/openai_server.py), which sends what a broken or hostile
endpoint could: token counts that are NaN, 1e400, 10^400, negative, fractional or text, and lone UTF-16
surrogates in the answer's text, tool names and arguments. Each run ends with every row recorded, the
count recorded as unknown or the surrogate replaced by U+FFFD (and counted), one warning per run, and a
run file that `compare` reads and a rerun reuses.

And credentials in a URL: a `--base-url` with user-info and a key in its query string reaches the right
path, with the query sent as a query and the user-info as HTTP Basic authentication, while run files,
console lines and error messages show neither; a LANGFUSE_HOST with a password is shown without it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import Result

from slm_swap.runs import read_run
from slm_swap.types import Example
from tests.cli import cli
from tests.langfuse_receiver import LangfuseReceiver
from tests.openai_server import FakeOpenAIServer
from tests.test_label import prompt_of
from tests.test_openai_source import row, user, write

RUN = Path("05_eval/toolcall_openai_test.json")
# Lone surrogates (no high one before a low one: a pair would be a character), sent as "\udc00" escapes.
SURROGATES = "\udc00\ud800\udfff"


def args_for(server: FakeOpenAIServer, base_url: str | None = None) -> list[str]:
    return ["--model-kind", "openai", "--base-url", base_url or server.openai_url, "--api-key", "test-key",
            "--model", "fake"]  # fmt: skip


def invoke(*args: str) -> Result:
    return cli(list(args))


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning:")]


def no_surrogate(text: str) -> bool:
    return not any("\ud800" <= c <= "\udfff" for c in text)


def test_unusable_counts_and_lone_surrogates_are_recorded_and_the_run_file_reads(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    for e in prepared:
        openai_server.answers[e.prompt] = e.completion
    prompts = [e.prompt for e in prepared]
    openai_server.usage = {
        prompts[0]: '{"prompt_tokens": NaN, "completion_tokens": 5}',
        prompts[1]: '{"prompt_tokens": 12, "completion_tokens": 1e400}',
        prompts[2]: '{"prompt_tokens": -7, "completion_tokens": 3.7}',
        prompts[3]: '{"prompt_tokens": 1' + "0" * 400 + ', "completion_tokens": "7"}',
    }
    openai_server.answers[prompts[4]] = prepared[4].completion + SURROGATES[:2]
    openai_server.answers[prompts[5]] = SURROGATES[2] + prepared[5].completion

    result = invoke("eval", "--track", "toolcall", *args_for(openai_server))

    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    run = read_run(RUN)  # what compare and report read: not damaged
    by_id = {r.id: r for r in run.results}
    for i, e in enumerate(prepared):
        usage = by_id[e.id].usage
        if i < 4:
            assert (usage.known, usage.prompt_tokens, usage.completion_tokens) == (False, 0, 0), i
        else:
            assert usage.known and usage.prompt_tokens > 0 and usage.completion_tokens > 0, i
        assert by_id[e.id].backend_error is None
    assert by_id[prepared[4].id].output == prepared[4].completion + "\ufffd\ufffd"
    assert by_id[prepared[4].id].replaced_surrogates == 2
    assert by_id[prepared[5].id].replaced_surrogates == 1
    assert all(no_surrogate(r.output) for r in run.results)
    assert by_id[prepared[0].id].metrics["ast_match"] == 1.0  # an unknown count changes no score
    assert warnings_in(result.output) == [
        "warning: token counts are unknown for 4 of 8 rows (missing, or not whole numbers from 0 "
        "to 1000000000); they are recorded as unknown and left out of token sums",
        "warning: 3 lone UTF-16 surrogates in the model's text (2 rows) were replaced by U+FFFD",
    ]

    # compare reads it; the SLM side is a replay of the same outputs.
    slm = "05_eval/toolcall_slm_test.json"
    replayed = invoke("eval", "--track", "toolcall", "--model-kind", "replay", "--predictions", str(RUN),
                      "--out", slm)  # fmt: skip
    assert replayed.exit_code == 0, replayed.output
    compared = invoke("compare", "--track", "toolcall", "--azure", str(RUN), "--slm", slm)
    assert compared.exit_code in (0, 10), compared.output
    assert "damaged" not in compared.output
    # The report reads it too, and says the hosted cost leaves the unknown rows out.
    reported = invoke("report")
    assert reported.exit_code == 0, reported.output
    page = Path("05_eval/report.html").read_text(encoding="utf-8")
    assert "(unknown for 4 rows)" in page and "≥ $" in page

    # A rerun keeps the run file and asks the endpoint nothing.
    asked = len(openai_server.requests)
    again = invoke("eval", "--track", "toolcall", *args_for(openai_server))
    assert again.exit_code == 0, again.output
    assert "already complete for these inputs" in again.output
    assert len(openai_server.requests) == asked


def test_lone_surrogates_in_native_tool_calls_are_replaced(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    e = prepared[0]
    call = {"id": "c", "type": "function",
            "function": {"name": e.gold[0].name + "\ud800", "arguments": '{"q": "\udc00"}'}}  # fmt: skip
    openai_server.answers[e.query] = {"tool_calls": [call]}

    result = invoke("eval", "--track", "toolcall", *args_for(openai_server), "--protocol", "native")

    assert result.exit_code == 0, result.output
    run = read_run(Path("05_eval/toolcall_openai_test.json"))
    first = next(r for r in run.results if r.id == e.id)
    assert first.replaced_surrogates == 2 and no_surrogate(first.output)
    assert e.gold[0].name + "\ufffd" in first.output and '"\ufffd"' in first.output
    assert "2 lone UTF-16 surrogates in the model's text (1 row)" in result.output


def test_label_records_unusable_counts_and_replaces_lone_surrogates(
    workspace: Path, openai_server: FakeOpenAIServer
) -> None:
    rows = [row(user("Say hi"), id="prose"), row(user("Weather in Lyon?"), id="good")]
    write(Path("log.jsonl"), rows)
    prose, good = (prompt_of(r) for r in rows)
    openai_server.answers[prose] = "Hi\ud800 there!"
    openai_server.answers[good] = '<tool_call name="get_weather">{"city": "Lyon"}</tool_call>'
    openai_server.usage = {
        prose: '{"prompt_tokens": NaN}',
        good: '{"prompt_tokens": 1e400, "completion_tokens": -1}',
    }

    result = invoke("label", "--input", "log.jsonl", "--out", "labelled.jsonl",
                    *args_for(openai_server))  # fmt: skip

    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "wrote labelled.jsonl: 2 labelled by fake" in result.output
    labelled = [json.loads(line) for line in Path("labelled.jsonl").read_text(encoding="utf-8").splitlines()]
    assert labelled[0]["messages"][-1] == {"role": "assistant", "content": "Hi\ufffd there!"}
    assert warnings_in(result.output) == [
        "warning: token counts are unknown for 2 of 2 rows (missing, or not whole numbers from 0 "
        "to 1000000000); they are recorded as unknown and left out of token sums",
        "warning: 1 lone UTF-16 surrogate in the model's text (1 row) was replaced by U+FFFD",
    ]


def test_credentials_in_the_base_url_reach_the_endpoint_and_nothing_else(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    for e in prepared:
        openai_server.answers[e.prompt] = e.completion
    openai_server.basic_auth = "bob:PWSECRET"
    port = openai_server.port
    url = f"http://bob:PWSECRET@127.0.0.1:{port}/v1?key=QSECRET"

    result = invoke("eval", "--track", "toolcall", *args_for(openai_server, url))

    assert result.exit_code == 0, result.output
    for sent in openai_server.requests:
        assert sent.path == "/v1/chat/completions"
        assert sent.query == {"key": ["QSECRET"]}
        assert sent.headers["Authorization"] == "Basic " + base64.b64encode(b"bob:PWSECRET").decode()
    run_text = RUN.read_text(encoding="utf-8")
    assert read_run(RUN).meta.settings["endpoint"] == f"http://***@127.0.0.1:{port}/v1?key=***"
    for secret in ("PWSECRET", "QSECRET", "bob"):
        assert secret not in run_text and secret not in result.output, secret

    # The error that stops a run names the endpoint without its credentials.
    openai_server.basic_auth = "bob:other"
    refused = invoke("eval", "--track", "toolcall", *args_for(openai_server, url), "--out", "05_eval/r.json")
    assert refused.exit_code == 2, refused.output
    assert f"http://***@127.0.0.1:{port}/v1?key=*** refused the API key (HTTP 401)" in refused.output
    assert "PWSECRET" not in refused.output and "QSECRET" not in refused.output
    assert "Traceback" not in refused.output

    # A password with an unquoted "/" makes a URL the client cannot read: refused, and not quoted.
    unreadable = f"http://bob:PW/SECRET@127.0.0.1:{port}/v1"
    bad = invoke("eval", "--track", "toolcall", *args_for(openai_server, unreadable))
    assert bad.exit_code == 2, bad.output
    assert "--base-url 'http://***@127.0.0.1:" in bad.output
    assert "PW" not in bad.output and "SECRET" not in bad.output


def test_a_langfuse_host_is_shown_without_its_password(
    prepared: list[Example],
    openai_server: FakeOpenAIServer,
    langfuse_receiver: LangfuseReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for e in prepared:
        openai_server.answers[e.prompt] = e.completion
    monkeypatch.delenv("LANGFUSE_DISABLED")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", "pk-lf-battery-endpoint")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-battery-endpoint")

    monkeypatch.setenv("LANGFUSE_HOST", "ftp://lf:LFSECRET@langfuse.example/?token=LFQSECRET")
    refused = invoke("eval", "--track", "toolcall", *args_for(openai_server))
    assert refused.exit_code == 2 and "LANGFUSE_HOST must be an http(s) URL" in refused.output
    assert "ftp://***@langfuse.example/?token=***" in refused.output
    assert "LFSECRET" not in refused.output and "LFQSECRET" not in refused.output

    # Traces that are refused: the warning names the host without the password.
    langfuse_receiver.fail_with(401)
    host = langfuse_receiver.url.replace("http://", "http://lf:LFSECRET@")
    monkeypatch.setenv("LANGFUSE_HOST", host)
    result = invoke("eval", "--track", "toolcall", *args_for(openai_server))
    assert result.exit_code == 0, result.output
    shown = langfuse_receiver.url.replace("http://", "http://***@")
    assert f"could not be delivered to {shown} (HTTP 401)" in result.output
    assert "LFSECRET" not in result.output
