"""`--hosted-batch`: hosted rows through the Batch API (`backends/batch.py`), with the real `openai` client
against the stand-in server's `/v1/files` and `/v1/batches` (and Azure's `/openai/...`): the same requests
and the same run as the live route, a killed run that picks its batch up by id, failed rows kept as
errors, and `label` and `run` through the same route."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from slm_swap import settings
from slm_swap.backends.batch import state_path
from slm_swap.backends.config import HostedConfig
from slm_swap.backends.hosted import HostedBackend
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.report import Pricing, TrackData, costs
from slm_swap.runs import RunResult, journal_path, read_run
from slm_swap.tracing import NullTracer
from slm_swap.types import Example
from tests.cli import cli
from tests.openai_server import FakeOpenAIServer
from tests.test_hosted import answer_all, openai_args
from tests.test_label import teach, unlabelled
from tests.test_openai_source import write

BATCH = ["--hosted-batch", "--batch-poll", "0.01"]


def eval_args(server: FakeOpenAIServer, out: str, *extra: str) -> list[str]:
    return ["eval", "--track", "toolcall", *openai_args(server), "--out", out, *extra]


def uploaded_lines(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    """The lines of every file uploaded for a batch (not the files the server produced)."""
    inputs = {b["input_file_id"] for b in server.batches.values()}
    return [json.loads(line) for f in sorted(inputs) for line in server.files[f].decode().splitlines()]


def assert_no_key_written(root: Path, key: str = "test-key") -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace"), path


def same_rows(a: RunResult, b: RunResult) -> None:
    """Two runs whose rows are alike in everything but latency."""
    assert [r.id for r in a.results] == [r.id for r in b.results]
    for x, y in zip(a.results, b.results, strict=True):
        assert (x.output, x.calls, x.metrics, x.error_category, x.usage, x.backend_error) == (
            y.output,
            y.calls,
            y.metrics,
            y.error_category,
            y.usage,
            y.backend_error,
        )
    assert a.summary.metrics == b.summary.metrics


def test_a_batch_run_is_the_live_run_at_half_the_price(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    answer_all(openai_server, prepared)
    prepared_prompts = {e.prompt for e in prepared}
    openai_server.answers[prepared[0].prompt] = "not a call"  # a wrong answer: scored alike both ways
    live = cli(eval_args(openai_server, "05_eval/live.json"))
    assert live.exit_code == 0, live.output
    live_bodies = [r.body for r in openai_server.requests if r.path == "/v1/chat/completions"]

    openai_server.batch_polls = 2  # two checks find it in progress, the third finds it done
    batch = cli(eval_args(openai_server, "05_eval/batch.json", *BATCH))
    assert batch.exit_code == 0, batch.output
    assert "batch batch_0: 8 requests sent" in batch.output
    assert "batch batch_0: in_progress, 0 of 8 answered" in batch.output
    assert "batch batch_0: completed, 8 of 8 answered" in batch.output

    # The same request bodies, one line each, and no request outside the batch.
    lines = uploaded_lines(openai_server)
    assert sorted(json.dumps(line["body"], sort_keys=True) for line in lines) == sorted(
        json.dumps(body, sort_keys=True) for body in live_bodies
    )
    assert {line["url"] for line in lines} == {"/v1/chat/completions"} and len(lines) == 8
    assert {m["content"] for line in lines for m in line["body"]["messages"]} >= prepared_prompts
    assert len([r for r in openai_server.requests if r.path == "/v1/chat/completions"]) == 8  # the live run's
    assert openai_server.batch_creates == 1

    a, b = read_run(Path("05_eval/live.json")), read_run(Path("05_eval/batch.json"))
    same_rows(a, b)
    assert a.summary.metrics["ast_match"] == 7 / 8
    assert a.meta.identity() == b.meta.identity()  # --hosted-batch does not change the output
    assert b.meta.settings["route"] == "batch" and "route" not in a.meta.settings
    # Estimated before sending, at the batch price: half the live estimate of the same requests.
    live_estimate, batch_estimate = a.meta.settings["estimate"], b.meta.settings["estimate"]
    assert batch_estimate["prompt_tokens"] == live_estimate["prompt_tokens"] > 0
    assert batch_estimate["usd_upper"] == pytest.approx(live_estimate["usd_upper"] / 2, abs=1e-6)  # rounded
    assert all(r.usage.known and r.usage.prompt_tokens > 0 for r in b.results)  # usage per row
    assert not state_path(Path("05_eval/batch.json")).exists()
    assert not journal_path(Path("05_eval/batch.json")).exists()
    assert_no_key_written(Path.cwd())

    # The report prices the batch run at half the price options.
    pricing = Pricing(1.0, 2.0)
    cost = {
        route: costs(TrackData("toolcall", "swap_now", "", {"hosted": run}, {}, {}), pricing)[0]
        for route, run in (("live", a), ("batch", b))
    }
    assert cost["batch"]["route"] == "batch" and cost["live"]["route"] == "live"
    assert cost["batch"]["cost"] == pytest.approx(cost["live"]["cost"] / 2) and cost["live"]["cost"] > 0


def test_a_run_killed_while_polling_picks_up_the_same_batch(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    answer_all(openai_server, prepared)
    openai_server.batch_polls = 10**9  # in progress until the test says otherwise
    out = Path("05_eval/killed.json")
    cmd = [sys.executable, "-m", "slm_swap", *eval_args(openai_server, str(out), "--hosted-batch")]
    cmd += ["--batch-poll", "0.05"]
    env = {**os.environ, "LANGFUSE_DISABLED": "1"}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(r.path == "/v1/batches/batch_0" for r in openai_server.requests):
            break  # created, recorded, and polled
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not out.exists()
    side = json.loads(state_path(out).read_text())
    (recorded,) = side["batches"]
    assert recorded["batch_id"] == "batch_0" and recorded["input_file_id"] == "file-0"
    assert len(recorded["requests"]) == 8 and "test-key" not in state_path(out).read_text()

    openai_server.batch_polls = 0
    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert resumed.returncode == 0, resumed.stderr
    assert "batch batch_0: picked up again (8 requests" in resumed.stdout
    assert openai_server.batch_creates == 1  # the rerun created no second batch
    assert len([r for r in openai_server.requests if r.path == "/v1/files"]) == 1  # nor uploaded again
    run = read_run(out)
    assert [r.id for r in run.results] == [e.id for e in prepared]
    assert run.summary.metrics["ast_match"] == 1.0
    assert not state_path(out).exists() and not journal_path(out).exists()


def test_rows_already_journaled_are_not_sent_in_the_batch(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    answer_all(openai_server, prepared)
    out = Path("05_eval/toolcall_openai_test.json")
    live = HostedBackend(
        HostedConfig(
            "openai",
            model="fake",
            base_url=openai_server.openai_url,
            api_key="test-key",
            max_new_tokens=settings.MAX_NEW_TOKENS.default,  # as the command's: the same run
        )
    )

    class Interrupted(Exception):
        pass

    seen: list[str] = []

    def stop_after_three(result: Any) -> None:
        seen.append(result.id)
        if len(seen) == 3:
            raise Interrupted

    meta = run_meta("toolcall", "test", Path("02_dataset/toolcall/test.jsonl"), live)
    with pytest.raises(Interrupted):
        evaluate(prepared, live, meta, out, NullTracer(), on_result=stop_after_three)
    live.close()
    journaled = [json.loads(line)["result"]["id"] for line in journal_path(out).read_text().splitlines()[1:]]
    assert len(journaled) >= 3

    result = cli(["eval", "--track", "toolcall", *openai_args(openai_server), *BATCH])
    assert result.exit_code == 0, result.output
    assert f"resumed: {len(journaled)} examples" in result.output
    sent = {m["content"] for line in uploaded_lines(openai_server) for m in line["body"]["messages"]}
    assert len(uploaded_lines(openai_server)) == 8 - len(journaled)
    assert not {e.prompt for e in prepared if e.id in journaled} & sent
    run = read_run(out)
    assert [r.id for r in run.results] == [e.id for e in prepared] and run.summary.metrics["ast_match"] == 1.0


def test_failed_rows_are_errors_not_lost(prepared: list[Example], openai_server: FakeOpenAIServer) -> None:
    answer_all(openai_server, prepared)
    openai_server.batch_errors = {
        prepared[1].prompt: (400, "content_filter"),
        prepared[4].prompt: (None, "batch_expired"),  # failed without a response
    }
    result = cli(eval_args(openai_server, "05_eval/b.json", *BATCH))
    assert result.exit_code == 0, result.output
    assert "completed, 8 of 8 answered (2 failed)" in result.output
    run = read_run(Path("05_eval/b.json"))
    by_id = {r.id: r for r in run.results}
    assert [r.id for r in run.results] == [e.id for e in prepared]
    filtered, expired = by_id[prepared[1].id], by_id[prepared[4].id]
    assert filtered.backend_error is not None and filtered.backend_error.startswith("HTTP 400 content_filter")
    assert expired.backend_error is not None and expired.backend_error.startswith("batch error batch_expired")
    assert filtered.error_category == expired.error_category == "no_output"
    assert filtered.metrics["ast_match"] == expired.metrics["ast_match"] == 0.0
    others = [r for r in run.results if r.id not in (prepared[1].id, prepared[4].id)]
    assert all(r.backend_error is None and r.metrics["ast_match"] == 1.0 for r in others)


def test_an_expired_batch_leaves_its_unanswered_rows_as_errors(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    answer_all(openai_server, prepared)
    openai_server.batch_end = "expired"
    result = cli(eval_args(openai_server, "05_eval/b.json", *BATCH))
    assert result.exit_code == 0, result.output
    assert "batch batch_0: expired, 4 of 8 answered" in result.output
    run = read_run(Path("05_eval/b.json"))
    assert [r.id for r in run.results] == [e.id for e in prepared]
    unanswered = [r for r in run.results if r.backend_error]
    assert len(unanswered) == 4
    assert all(r.backend_error == "no answer: the batch was expired before answering it" for r in unanswered)
    assert sum(r.metrics["ast_match"] for r in run.results) == 4


def test_a_refused_batch_stops_the_run_and_a_rerun_sends_it_again(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    answer_all(openai_server, prepared)
    openai_server.batch_end = "failed"
    refused = cli(eval_args(openai_server, "05_eval/b.json", *BATCH))
    assert refused.exit_code == 2
    assert "refused batch batch_0: invalid_request: the model takes no batches" in refused.output
    assert "Traceback" not in refused.output and not Path("05_eval/b.json").exists()
    assert json.loads(state_path(Path("05_eval/b.json")).read_text())["batches"] == []  # forgotten

    openai_server.batch_end = "completed"
    again = cli(eval_args(openai_server, "05_eval/b.json", *BATCH))
    assert again.exit_code == 0, again.output
    assert "batch batch_1: 8 requests sent" in again.output
    assert read_run(Path("05_eval/b.json")).summary.metrics["ast_match"] == 1.0


def test_azure_global_batch(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_all(openai_server, prepared)
    for key, value in {
        "AZURE_ENDPOINT": openai_server.azure_root,
        "AZURE_DEPLOYMENT": "gpt-test",
        "AZURE_API_KEY": "test-key",
        "AZURE_API_VERSION": "2024-10-21",
    }.items():
        monkeypatch.setenv(key, value)
    result = cli(["eval", "--track", "toolcall", "--model-kind", "azure", *BATCH])
    assert result.exit_code == 0, result.output
    assert read_run(Path("05_eval/toolcall_azure_test.json")).summary.metrics["ast_match"] == 1.0
    paths = {r.path for r in openai_server.requests}
    assert {"/openai/files", "/openai/batches", "/openai/batches/batch_0"} <= paths
    assert not any("chat/completions" in p for p in paths)
    assert all(r.query["api-version"] == ["2024-10-21"] for r in openai_server.requests)
    lines = uploaded_lines(openai_server)
    assert {line["url"] for line in lines} == {"/chat/completions"}
    assert {line["body"]["model"] for line in lines} == {"gpt-test"}  # the deployment's name
    assert_no_key_written(Path.cwd())

    # The preview .../models form has no Batch API: refused before anything is sent.
    monkeypatch.setenv("AZURE_ENDPOINT", f"{openai_server.azure_root}/models/chat/completions")
    refused = cli(["eval", "--track", "toolcall", "--model-kind", "azure", "--out", "05_eval/m.json", *BATCH])
    assert refused.exit_code == 2 and "has no Batch API" in refused.output
    assert "Traceback" not in refused.output


def test_hosted_batch_applies_to_hosted_models_only(prepared: list[Example]) -> None:
    Path("p.jsonl").write_text("".join(json.dumps({"id": e.id, "output": ""}) + "\n" for e in prepared))
    result = cli(
        [
            "eval",
            "--track",
            "toolcall",
            "--model-kind",
            "replay",
            "--predictions",
            "p.jsonl",
            "--hosted-batch",
        ],
    )
    assert result.exit_code == 2
    assert (
        "--hosted-batch applies to a hosted model (--model-kind azure or openai), not replay" in result.output
    )
    assert "--hosted-batch" not in cli(["live", "--help"]).output  # latency matters there


def test_label_through_the_batch_api(workspace: Path, openai_server: FakeOpenAIServer) -> None:
    rows = unlabelled()
    write(Path("log.jsonl"), rows)
    teach(openai_server, rows)
    args = ["label", "--input", "log.jsonl", "--model-kind", "openai", "--base-url", openai_server.openai_url]
    args += ["--api-key", "test-key", "--model", "teacher-4o"]
    live = cli([*args, "--out", "live.jsonl"])
    assert live.exit_code == 0, live.output
    asked_live = len(openai_server.requests)
    batch = cli([*args, "--out", "batch.jsonl", *BATCH])
    assert batch.exit_code == 0, batch.output
    assert "batch batch_0: 5 requests sent" in batch.output
    assert not any(r.path == "/v1/chat/completions" for r in openai_server.requests[asked_live:])
    assert openai_server.batch_creates == 1

    def labels(path: str) -> list[dict[str, Any]]:
        out = [json.loads(line) for line in Path(path).read_text().splitlines()]
        for row in out:
            row.get("metadata", {}).get("slm_swap_label", {}).pop("labelled_at", None)
        return out

    assert labels("batch.jsonl") == labels("live.jsonl")
    assert len(labels("batch.jsonl")) == 4  # good, prose, answered, after-a-tool-result
    assert not state_path(Path("batch.jsonl")).exists()
    assert_no_key_written(workspace)


def test_run_sends_the_hosted_evaluation_through_the_batch_api(
    prepared: list[Example], openai_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run --hosted-batch` gives the route to the hosted model's options and not the SLM's; the
    pipeline's own hosted eval stage then runs through the batch (the rest of `run` is test_pipeline's)."""
    import slm_swap.pipeline as pipeline
    from slm_swap.run_config import RunConfig

    answer_all(openai_server, prepared)
    reached: dict[str, Any] = {}

    class Reached(Exception):
        pass

    def hosted_stage_only(options: RunConfig, tracer: Any, say: Any, runtime: Any) -> None:
        reached["options"] = options
        reached["out"] = pipeline.Pipeline(options, tracer, say).evaluate(
            "toolcall", "hosted", options.hosted, None
        )
        raise Reached

    monkeypatch.setattr(pipeline, "run_pipeline", hosted_stage_only)
    args = ["run", "--tracks", "toolcall", "--hosted-kind", "openai", "--base-url", openai_server.openai_url]
    args += ["--api-key", "test-key", "--model", "fake", *BATCH]
    result = cli(args)
    assert isinstance(result.exception, Reached), result.output
    options = reached["options"]
    assert options.hosted.hosted_batch and not getattr(options.slm, "hosted_batch", False)
    run = read_run(reached["out"])
    assert run.meta.settings["route"] == "batch" and run.summary.metrics["ast_match"] == 1.0
    assert openai_server.batch_creates == 1
    assert not any(r.path == "/v1/chat/completions" for r in openai_server.requests)

    # Without a hosted endpoint, run's hosted side is the local stand-in, which has no Batch API.
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    refused = cli(["run", "--hosted-batch"])
    assert refused.exit_code == 2 and "the local stand-in, which has no Batch API" in refused.output
