"""The hosted backend: the real `openai` client against a real local HTTP server (a fake model)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slm_swap.backends.config import HostedConfig
from slm_swap.backends.hosted import AzureSettings, HostedBackend, azure_endpoint
from slm_swap.errors import ConfigError
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.runs import journal_path, read_run
from slm_swap.tracing import NullTracer
from slm_swap.types import Example
from tests.cli import cli
from tests.openai_server import FakeOpenAIServer, Fault

SPLIT = Path("02_dataset/toolcall/test.jsonl")


def answer_all(server: FakeOpenAIServer, examples: list[Example]) -> None:
    for e in examples:
        server.answers[e.prompt] = e.completion


def openai_args(server: FakeOpenAIServer) -> list[str]:
    return [
        "--model-kind",
        "openai",
        "--base-url",
        server.openai_url,
        "--api-key",
        "test-key",
        "--model",
        "fake",
    ]


def test_openai_compatible_eval(prepared: list[Example], openai_server: FakeOpenAIServer) -> None:
    answer_all(openai_server, prepared)
    result = cli(["eval", "--track", "toolcall", *openai_args(openai_server)])
    assert result.exit_code == 0, result.output
    run = read_run(Path("05_eval/toolcall_openai_test.json"))
    assert run.summary.metrics["ast_match"] == 1.0 and run.summary.errors == 0
    assert run.meta.model_kind == "openai" and run.meta.settings["endpoint"] == openai_server.openai_url
    assert all(r.usage.completion_tokens > 0 and r.latency_s > 0 for r in run.results)
    sent = openai_server.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["temperature"] == 0 and sent.body["seed"] == 42 and sent.body["model"] == "fake"
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user"]
    assert "tools" not in sent.body  # answers are text: like for like with the local model
    assert "test-key" not in Path("05_eval/toolcall_openai_test.json").read_text()


@pytest.mark.parametrize("form", ["root", "deployment", "models"])
def test_azure_endpoint_forms(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    answer_all(openai_server, prepared)
    endpoint = {
        "root": openai_server.azure_root,
        "deployment": f"{openai_server.azure_root}/openai/deployments/gpt-test",
        "models": f"{openai_server.azure_root}/models/chat/completions",
    }[form]
    for key, value in {
        "AZURE_ENDPOINT": endpoint,
        "AZURE_DEPLOYMENT": "gpt-test",
        "AZURE_API_KEY": "test-key",
        "AZURE_API_VERSION": "2024-05-01-preview",
    }.items():
        monkeypatch.setenv(key, value)
    result = cli(["eval", "--track", "toolcall", "--model-kind", "azure"])
    assert result.exit_code == 0, result.output
    assert read_run(Path("05_eval/toolcall_azure_test.json")).summary.metrics["ast_match"] == 1.0
    sent = openai_server.requests[0]
    expected_path = (
        "/models/chat/completions" if form == "models" else "/openai/deployments/gpt-test/chat/completions"
    )
    assert sent.path == expected_path
    assert sent.query["api-version"] == ["2024-05-01-preview"]
    assert sent.headers["api-key"] == "test-key"


def test_azure_deployment_not_found_says_what_to_check(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {
        "AZURE_ENDPOINT": openai_server.azure_root,
        "AZURE_DEPLOYMENT": "nope",
        "AZURE_API_KEY": "test-key",
        "AZURE_API_VERSION": "2024-05-01-preview",
    }.items():
        monkeypatch.setenv(key, value)
    result = cli(["eval", "--track", "toolcall", "--model-kind", "azure"])
    assert result.exit_code == 2
    assert "DeploymentNotFound" in result.output and "AZURE_DEPLOYMENT" in result.output
    assert "Traceback" not in result.output
    assert not Path("05_eval/toolcall_azure_test.json").exists()


def test_azure_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="azure needs AZURE_API_VERSION\n"):  # the key may be left out
        AzureSettings.from_env({"AZURE_ENDPOINT": "https://x.openai.azure.com", "AZURE_DEPLOYMENT": "d"})
    settings = AzureSettings("https://x.openai.azure.com/openai/deployments/other", "chat", "secret-123", "v")
    with pytest.raises(ConfigError, match="names deployment 'other' but AZURE_DEPLOYMENT is 'chat'"):
        azure_endpoint(settings, timeout=1, max_retries=0)
    assert "secret-123" not in repr(settings)


def test_wrong_key_stops_the_run(prepared: list[Example], openai_server: FakeOpenAIServer) -> None:
    args = openai_args(openai_server)
    args[args.index("test-key")] = "wrong-key"
    result = cli(["eval", "--track", "toolcall", *args])
    assert result.exit_code == 2 and "refused the API key (HTTP 401)" in result.output
    assert "wrong-key" not in result.output


def test_faults_are_retried_or_recorded_never_dropped(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    answer_all(openai_server, prepared)
    prompts = [e.prompt for e in prepared]
    content_filter = {
        "error": {
            "code": "content_filter",
            "message": "The response was filtered",
            "innererror": {"code": "ResponsibleAIPolicyViolation"},
        }
    }
    openai_server.faults = {
        prompts[0]: [Fault("status", 429, headers={"Retry-After": "1"})],
        prompts[1]: [Fault("status", 500), Fault("status", 503)],
        prompts[2]: [Fault("hang", seconds=3.0)],
        prompts[3]: [Fault("reset")],
        prompts[4]: [Fault("garbage")] * 10,
        prompts[5]: [Fault("status", 400, body=content_filter)],
        prompts[6]: [Fault("status", 500)] * 10,
    }
    backend = HostedBackend(
        HostedConfig(
            "openai",
            model="fake",
            base_url=openai_server.openai_url,
            api_key="test-key",
            timeout=1.0,
            max_retries=2,
            concurrency=4,
        )
    )
    run = evaluate(
        prepared, backend, run_meta("toolcall", "test", SPLIT, backend), Path("05_eval/f.json"), NullTracer()
    ).run
    by_id = {r.id: r for r in run.results}
    assert [r.id for r in run.results] == [e.id for e in prepared]
    outcome = {
        i: (by_id[e.id].metrics["ast_match"], by_id[e.id].backend_error) for i, e in enumerate(prepared)
    }
    for retried_then_ok in (0, 1, 2, 3, 7):
        assert outcome[retried_then_ok] == (1.0, None), outcome[retried_then_ok]
    assert outcome[4][0] == 0.0 and outcome[4][1]  # not a chat completion
    assert outcome[5][0] == 0.0 and "HTTP 400 content_filter" in outcome[5][1]
    assert outcome[6][0] == 0.0 and "HTTP 500" in outcome[6][1]
    assert all(by_id[prepared[i].id].error_category == "no_output" for i in (4, 5, 6))
    assert openai_server.attempts[prompts[6]] == 3  # first try + 2 retries
    assert openai_server.attempts[prompts[5]] == 1  # a 400 is not retried
    first_429 = [r.at for r in openai_server.requests if r.body["messages"][1]["content"] == prompts[0]]
    assert first_429[1] - first_429[0] >= 0.95  # Retry-After: 1 was honoured


def test_requests_run_concurrently(prepared: list[Example]) -> None:
    server = FakeOpenAIServer(delay_s=0.3).start()
    try:
        answer_all(server, prepared)
        backend = HostedBackend(
            HostedConfig(
                "openai", model="fake", base_url=server.openai_url, api_key="test-key", timeout=5,
                max_retries=0, concurrency=4,
            )
        )  # fmt: skip
        start = time.monotonic()
        results = {e.id: c for e, c in backend.ask(prepared)}
        elapsed = time.monotonic() - start
    finally:
        server.stop()
    assert len(results) == 8 and server.max_active == 4
    assert elapsed < 8 * 0.3 * 0.6  # two waves of four, not eight in a row


def test_kill_9_mid_run_then_resume(prepared: list[Example], openai_server: FakeOpenAIServer) -> None:
    answer_all(openai_server, prepared)
    openai_server.delay_s = 0.4
    out = Path("05_eval/killed.json")
    cmd = [
        sys.executable,
        "-m",
        "slm_swap",
        "eval",
        "--track",
        "toolcall",
        *openai_args(openai_server),
        "--concurrency",
        "1",
        "--out",
        str(out),
    ]
    env = {**os.environ, "LANGFUSE_DISABLED": "1"}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = journal_path(out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 4:  # header + 3 results
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    journaled = [json.loads(line)["result"]["id"] for line in journal.read_text().splitlines()[1:]]
    assert 3 <= len(journaled) < 8
    requests_before = len(openai_server.requests)
    openai_server.delay_s = 0.0
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed: {len(journaled)} examples" in resumed.stdout
    run = read_run(out)
    assert [r.id for r in run.results] == [e.id for e in prepared]
    assert run.summary.metrics["ast_match"] == 1.0
    asked_again = [r.body["messages"][1]["content"] for r in openai_server.requests[requests_before:]]
    assert not {e.prompt for e in prepared if e.id in journaled} & set(asked_again)
    assert not journal.exists()
