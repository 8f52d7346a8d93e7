"""Reliability battery, part two: evaluations killed outright, and secrets.

* `kill -9` at random moments of a hosted and of a local evaluation, several times over: the rerun
  completes with every example exactly once and the same summary as an uninterrupted run.
* Every file `run` writes, its console output and every body the Langfuse receiver gets are scanned for
  the keys in use (hosted, stand-in, Langfuse secret): none appears.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slm_swap.files import read_examples
from slm_swap.runs import journal_path, read_run
from tests.cli import cli

from .langfuse_receiver import LangfuseReceiver
from .openai_server import FakeOpenAIServer
from .test_new_user import free_port
from .test_pipeline import SMALL, TRAIN
from .verdicts import run_exit_code


def journaled(out: Path) -> int:
    """Results in the journal so far (its header not counted)."""
    try:
        return max(0, len(journal_path(out).read_bytes().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def kill_at_random_moments(argv: list[str], out: Path, examples: int, seed: int, kills: int = 3) -> int:
    """Starts `argv` again and again, each time killing it (SIGKILL) once a random number of examples is
    journaled, plus a random fraction of a second; then runs it to the end. Returns the kills that landed
    before the run file was written."""
    rng = random.Random(seed)
    landed = 0
    for _ in range(kills):
        if out.exists():
            break
        done = journaled(out)
        if done >= examples - 1:
            break
        target = done + rng.randrange(1, examples - done)  # kill after this many more results, at most
        process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ)
        )
        deadline = time.monotonic() + 120
        while process.poll() is None and journaled(out) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.3))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            landed += 1
        process.wait()
    finished = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return landed


def assert_same_as_uninterrupted(interrupted: Path, clean: Path, split: Path) -> None:
    a, b = read_run(interrupted), read_run(clean)
    ids = [e.id for e in read_examples(split)]
    assert [r.id for r in a.results] == ids  # every example exactly once, in split order
    assert a.summary == b.summary
    assert [r.output for r in a.results] == [r.output for r in b.results]
    assert not journal_path(interrupted).exists()


def test_a_hosted_evaluation_killed_again_and_again_resumes_to_the_same_run(workspace: Path) -> None:
    assert cli(["prepare", "--train-size", "1", "--val-size", "1", "--test-size", "24"]).exit_code == 0
    split = Path("02_dataset/toolcall/test.jsonl")
    server = FakeOpenAIServer(api_key="k", delay_s=0.15).start()
    try:
        for i, example in enumerate(read_examples(split)):
            server.answers[example.prompt] = example.completion if i % 3 else "not a call"
        base = [sys.executable, "-m", "slm_swap", "eval", "--track", "toolcall", "--model-kind", "openai"]
        base += [
            "--base-url",
            server.openai_url,
            "--api-key",
            "k",
            "--model",
            "gpt-test",
            "--concurrency",
            "2",
        ]
        subprocess.run([*base, "--out", "clean.json"], check=True, capture_output=True, env=dict(os.environ))
        out = Path("05_eval/killed.json")
        landed = kill_at_random_moments([*base, "--out", str(out)], out, 24, seed=11)
    finally:
        server.stop()
    assert landed >= 2, "the kills should land while the evaluation runs"
    assert_same_as_uninterrupted(out, Path("clean.json"), split)


def test_a_local_evaluation_killed_again_and_again_resumes_to_the_same_run(
    prepared: object, tiny_model: Path
) -> None:
    split = Path("02_dataset/toolcall/test.jsonl")
    base = [sys.executable, "-m", "slm_swap", "eval", "--track", "toolcall", "--model-kind", "slm"]
    base += ["--model-path", str(tiny_model), "--batch-size", "1", "--max-new-tokens", "160"]
    subprocess.run([*base, "--out", "clean.json"], check=True, capture_output=True, env=dict(os.environ))
    out = Path("05_eval/killed.json")
    landed = kill_at_random_moments([*base, "--out", str(out)], out, 8, seed=12)
    assert landed >= 2, "the kills should land while the evaluation runs"
    assert_same_as_uninterrupted(out, Path("clean.json"), split)


def scan_for(keys: dict[str, str], texts: dict[str, str]) -> list[str]:
    return [
        f"{name} in {where}" for where, text in texts.items() for name, key in keys.items() if key in text
    ]


def workspace_files(root: Path) -> dict[str, str]:
    return {str(p): p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def langfuse_env(monkeypatch: pytest.MonkeyPatch, langfuse_receiver: LangfuseReceiver) -> dict[str, str]:
    keys = {
        "LANGFUSE_PUBLIC_KEY": f"pk-lf-{secrets.token_hex(8)}",
        "LANGFUSE_SECRET_KEY": f"sk-lf-{secrets.token_hex(16)}",
    }
    monkeypatch.delenv("LANGFUSE_DISABLED")
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_receiver.url)
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    return keys


def received(receiver: LangfuseReceiver) -> dict[str, str]:
    return {
        f"{r.method} {r.path} #{i}": r.body.decode("utf-8", "replace")
        for i, r in enumerate(receiver.requests)
    }


def test_no_secret_in_anything_run_writes_prints_or_traces_with_azure(
    azure: FakeOpenAIServer,
    tiny_model: Path,
    langfuse_env: dict[str, str],
    langfuse_receiver: LangfuseReceiver,
) -> None:
    result = cli(["run", "--model-path", str(tiny_model), "--tracks", "toolcall", *SMALL, *TRAIN])
    assert result.exit_code == run_exit_code(), result.output
    assert langfuse_receiver.spans, "the run was traced"
    keys = {"AZURE_API_KEY": "azure-secret-key", "LANGFUSE_SECRET_KEY": langfuse_env["LANGFUSE_SECRET_KEY"]}
    texts = {"console": result.output, **workspace_files(Path(".")), **received(langfuse_receiver)}
    assert not scan_for(keys, texts)
    # The public key routes the data (a header and the SDK's scope attribute); it is in no file or output.
    assert not scan_for(
        {"LANGFUSE_PUBLIC_KEY": langfuse_env["LANGFUSE_PUBLIC_KEY"]},
        {"console": result.output, **workspace_files(Path("."))},
    )


def test_no_secret_in_anything_run_writes_prints_or_traces_with_the_stand_in(
    workspace: Path,
    tiny_model: Path,
    langfuse_env: dict[str, str],
    langfuse_receiver: LangfuseReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []
    real = secrets.token_urlsafe

    def recording_token(n: int | None = None) -> str:  # a spy: the stand-in still gets a real random key
        made.append(real(n))
        return made[-1]

    monkeypatch.setattr("slm_swap.pipeline.secrets.token_urlsafe", recording_token)
    argv = [
        "run",
        "--model-path",
        str(tiny_model),
        "--tracks",
        "structured",
        "--standin-port",
        str(free_port()),
    ]
    result = cli([*argv, *SMALL, *TRAIN])
    assert result.exit_code == run_exit_code(), result.output
    assert made and Path("logs/standin.log").is_file()
    keys = {"stand-in key": made[0], "LANGFUSE_SECRET_KEY": langfuse_env["LANGFUSE_SECRET_KEY"]}
    texts = {"console": result.output, **workspace_files(Path(".")), **received(langfuse_receiver)}
    assert not scan_for(keys, texts)
    assert json.loads(Path("05_eval/verdict.json").read_text())["hosted"]["stand_in"] is True
