"""Azure as teams now call it, through the real commands and the real `openai` client against the stand-in
chat server (`tests/openai_server.py`): the v1 API without api-version, keyless Microsoft Entra ID auth
with a stand-in credential, `retry-after-ms`, what native requests carry beside strict schemas, and the
cost estimate printed and recorded before a hosted run."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from slm_swap.backends import hosted
from slm_swap.errors import ConfigError
from slm_swap.runs import read_run
from slm_swap.settings import AzureSettings
from slm_swap.types import Example
from tests.cli import cli
from tests.openai_server import FakeOpenAIServer, Fault
from tests.test_hosted import answer_all
from tests.test_label import unlabelled_log_and_azure_teacher

RUN_FILE = Path("05_eval/toolcall_azure_test.json")
EVAL = ["eval", "--track", "toolcall", "--model-kind", "azure"]


class StandInCredential:
    """A stand-in for azure-identity's DefaultAzureCredential: hands out one token (or raises `error`) and
    records the scopes it was asked for."""

    def __init__(self, token: str = "entra-token-1", error: Exception | None = None):
        self.token = token
        self.error = error
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.error is not None:
            raise self.error
        return AccessToken(self.token, int(time.time()) + 3600)


def azure_env(
    monkeypatch: pytest.MonkeyPatch, endpoint: str, *, key: str | None, version: str | None
) -> None:
    monkeypatch.setenv("AZURE_ENDPOINT", endpoint)
    monkeypatch.setenv("AZURE_DEPLOYMENT", "gpt-test")
    for name, value in (("AZURE_API_KEY", key), ("AZURE_API_VERSION", version)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def headers(sent: Any) -> dict[str, str]:
    """A recorded request's headers by lower-case name (HTTP names are case-insensitive)."""
    return {name.lower(): value for name, value in sent.headers.items()}


@pytest.mark.parametrize("version", [None, "2024-05-01-preview"])
def test_v1_endpoint_asks_the_deployment_without_api_version(
    prepared: list[Example],
    openai_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    version: str | None,
) -> None:
    answer_all(openai_server, prepared)
    azure_env(monkeypatch, f"{openai_server.azure_root}/openai/v1/", key="test-key", version=version)
    result = cli(EVAL)
    assert result.exit_code == 0, result.output
    run = read_run(RUN_FILE)
    assert run.summary.metrics["ast_match"] == 1.0 and run.summary.errors == 0
    assert run.meta.settings["endpoint_form"] == "azure-v1"
    assert run.meta.settings["endpoint"] == f"{openai_server.azure_root}/openai/v1"
    for sent in openai_server.requests:
        assert sent.path == "/openai/v1/chat/completions"
        assert sent.query == {}  # no api-version, even when AZURE_API_VERSION is set
        assert headers(sent)["api-key"] == "test-key" and sent.body["model"] == "gpt-test"
    assert "test-key" not in RUN_FILE.read_text()


def test_the_v1_form_needs_no_version_and_the_others_still_do() -> None:
    v1 = AzureSettings.from_env(
        {"AZURE_ENDPOINT": "https://r.openai.azure.com/openai/v1/", "AZURE_DEPLOYMENT": "d"}
    )
    assert v1.v1 and v1.api_key is None and v1.api_version is None
    with pytest.raises(ConfigError, match="azure needs AZURE_API_VERSION\n"):
        AzureSettings.from_env({"AZURE_ENDPOINT": "https://r.openai.azure.com", "AZURE_DEPLOYMENT": "d"})


@pytest.mark.parametrize("form", ["v1", "root", "models"])
def test_without_a_key_the_requests_carry_an_entra_id_token(
    prepared: list[Example],
    openai_server: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    form: str,
) -> None:
    answer_all(openai_server, prepared)
    credential = StandInCredential("entra-token-1")
    monkeypatch.setattr(hosted, "azure_credential", lambda: credential)
    openai_server.entra_token = "entra-token-1"
    endpoint = {
        "v1": f"{openai_server.azure_root}/openai/v1/",
        "root": openai_server.azure_root,
        "models": f"{openai_server.azure_root}/models/chat/completions",
    }[form]
    azure_env(monkeypatch, endpoint, key=None, version=None if form == "v1" else "2024-05-01-preview")
    result = cli(EVAL)
    assert result.exit_code == 0, result.output
    assert read_run(RUN_FILE).summary.metrics["ast_match"] == 1.0
    assert len(openai_server.requests) == len(prepared)
    for sent in openai_server.requests:
        assert headers(sent)["authorization"] == "Bearer entra-token-1" and "api-key" not in headers(sent)
    assert credential.scopes and set(credential.scopes) == {("https://cognitiveservices.azure.com/.default",)}
    assert "entra-token-1" not in RUN_FILE.read_text()


def test_keyless_without_azure_identity_says_what_to_install(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # an import of it fails, as when not installed
    azure_env(monkeypatch, f"{openai_server.azure_root}/openai/v1/", key=None, version=None)
    result = cli(EVAL)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "pip install 'slm-swap[azure]'" in result.output and "AZURE_API_KEY" in result.output
    assert openai_server.requests == [] and not RUN_FILE.exists()


@pytest.mark.parametrize("failure", ["no credential", "refused token"])
def test_keyless_auth_that_fails_stops_the_run_saying_what_to_check(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    answer_all(openai_server, prepared)
    error = ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token.\nAttempted: ...")
    credential = StandInCredential("stale-token", error if failure == "no credential" else None)
    monkeypatch.setattr(hosted, "azure_credential", lambda: credential)
    openai_server.entra_token = "the-valid-token"
    azure_env(monkeypatch, f"{openai_server.azure_root}/openai/v1/", key=None, version=None)
    result = cli(EVAL)
    assert result.exit_code == 2 and "Traceback" not in result.output
    if failure == "no credential":
        assert "no Microsoft Entra ID token for Azure: DefaultAzureCredential failed" in result.output
        assert openai_server.requests == []
    else:
        assert "refused the Microsoft Entra ID token (HTTP 401)" in result.output
        assert "Cognitive Services OpenAI User" in result.output
    assert not RUN_FILE.exists()


def test_retry_after_ms_is_honoured_through_the_client_settings(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azure's 429 says how long to wait in milliseconds: the SDK waits that long (not its own 0.5 s
    backoff, and not the coarser Retry-After beside it) and the row is answered."""
    answer_all(openai_server, prepared)
    first = prepared[0].prompt
    headers = {"retry-after-ms": "1500", "retry-after": "30"}
    openai_server.faults = {first: [Fault("status", 429, headers=headers)]}
    azure_env(monkeypatch, f"{openai_server.azure_root}/openai/v1/", key="test-key", version=None)
    result = cli([*EVAL, "--max-retries", "1"])
    assert result.exit_code == 0, result.output
    run = read_run(RUN_FILE)
    assert run.summary.metrics["ast_match"] == 1.0 and run.summary.errors == 0
    tries = [r.at for r in openai_server.requests if r.body["messages"][1]["content"] == first]
    assert len(tries) == 2
    assert 1.45 <= tries[1] - tries[0] < 10  # 1.5 s, as asked: neither the 0.5 s backoff nor 30 s


def test_native_requests_carry_no_strict_tools_so_parallel_calls_stay_allowed(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The structured track's strict json_schema goes without tools, so without `parallel_tool_calls`
    (the API refuses it when no tools are sent); the toolcall track's tools go without `strict`, so a row
    whose answer is several calls can be answered (Azure refuses strict tools with parallel calls)."""
    azure_env(monkeypatch, f"{openai_server.azure_root}/openai/v1/", key="test-key", version=None)
    for track in ("structured", "toolcall"):
        argv = ["eval", "--track", track, "--model-kind", "azure", "--protocol", "native"]
        result = cli(argv)
        assert result.exit_code == 0, result.output
    structured, toolcall = openai_server.requests[0].body, openai_server.requests[-1].body
    assert structured["response_format"]["type"] == "json_schema"
    assert structured["response_format"]["json_schema"]["strict"] is True
    assert "tools" not in structured and "parallel_tool_calls" not in structured
    assert toolcall["tools"] and all("strict" not in t["function"] for t in toolcall["tools"])
    assert "parallel_tool_calls" not in toolcall and "response_format" not in toolcall


def test_eval_prints_and_records_the_cost_estimate_before_the_first_request(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    azure_env(monkeypatch, f"{openai_server.azure_root}/openai/v1/", key="wrong-key", version=None)
    prices = ["--price-per-1k-input", "0.01", "--price-per-1k-output", "0.02", "--max-new-tokens", "100"]
    refused = cli([*EVAL, *prices])
    # The key is refused at the first answer: the estimate was printed before any request was sent.
    assert refused.exit_code == 2 and "refused the API key" in refused.output
    assert f"cost estimate: {len(prepared)} requests" in refused.output

    answer_all(openai_server, prepared)
    monkeypatch.setenv("AZURE_API_KEY", "test-key")
    result = cli([*EVAL, *prices])
    assert result.exit_code == 0, result.output
    tokens = sum(
        math.ceil(len(json.dumps({"messages": e.messages()}, ensure_ascii=False)) / 4) for e in prepared
    )
    upper = len(prepared) * 100
    usd_prompt, usd_upper = tokens / 1000 * 0.01, tokens / 1000 * 0.01 + upper / 1000 * 0.02
    assert (
        f"cost estimate: {len(prepared)} requests, about {tokens:,} prompt tokens (characters/4) and at "
        f"most {upper:,} completion tokens: about ${usd_prompt:,.4f} of prompts, at most ${usd_upper:,.4f}"
    ) in result.output
    run = read_run(RUN_FILE)
    assert run.meta.settings["estimate"] == {
        "rows": len(prepared),
        "prompt_tokens": tokens,
        "completion_tokens_upper": upper,
        "usd_prompt": round(usd_prompt, 6),
        "usd_upper": round(usd_upper, 6),
        "price_per_1k_input": 0.01,
        "price_per_1k_output": 0.02,
        "counted_as": "characters/4",
    }
    # Prices are not part of the run's identity: other prices keep the finished run, and ask nothing.
    asked = len(openai_server.requests)
    again = cli([*EVAL, "--price-per-1k-input", "5", "--max-new-tokens", "100"])
    assert again.exit_code == 0 and "already complete" in again.output and "cost estimate" not in again.output
    assert len(openai_server.requests) == asked


def test_local_and_replay_runs_give_no_estimate(prepared: list[Example]) -> None:
    Path("preds.jsonl").write_text(
        "".join(json.dumps({"id": e.id, "output": e.completion}) + "\n" for e in prepared)
    )
    result = cli(["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions", "preds.jsonl"])
    assert result.exit_code == 0, result.output
    assert "cost estimate" not in result.output
    assert "estimate" not in read_run(Path("05_eval/toolcall_replay_test.json")).meta.settings


def test_label_prints_the_cost_estimate(
    workspace: Path, openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    unlabelled_log_and_azure_teacher(openai_server, monkeypatch)
    azure_env(monkeypatch, f"{openai_server.azure_root}/openai/v1/", key="test-key", version=None)
    argv = ["label", "--input", "log.jsonl", "--out", "labelled.jsonl", "--model-kind", "azure"]
    result = cli([*argv, "--max-new-tokens", "50"])
    assert result.exit_code == 0 and "10 labelled by gpt-test" in result.output, result.output
    assert "cost estimate: 10 requests" in result.output and "at most 500 completion tokens" in result.output
    assert len(Path("labelled.jsonl").read_text().splitlines()) == 10


def test_run_prints_and_records_the_estimate_of_each_hosted_evaluation(
    azure: FakeOpenAIServer, tiny_model: Path
) -> None:
    argv = ["run", "--model-path", str(tiny_model), "--tracks", "toolcall", "--hosted-kind", "azure"]
    argv += ["--train-size", "4", "--val-size", "2", "--test-size", "4", "--max-new-tokens", "8"]
    argv += ["--max-length", "512", "--train-batch-size", "2", "--price-per-1k-input", "1"]
    result = cli(argv)
    assert "Traceback" not in result.output and result.exit_code in (0, 3), result.output  # 3: not settled
    lines = result.output.splitlines()
    asking = next(i for i, line in enumerate(lines) if line.startswith("eval toolcall hosted: 4 examples"))
    assert lines[asking + 1].startswith("eval toolcall hosted: cost estimate: 4 requests, about ")
    assert "at most 32 completion tokens" in lines[asking + 1]
    estimate = read_run(RUN_FILE).meta.settings["estimate"]
    assert estimate["rows"] == 4 and estimate["price_per_1k_input"] == 1.0
    # One estimate: the SLM's evaluations (local) cost no tokens.
    assert [line for line in lines if "cost estimate" in line] == [lines[asking + 1]]
