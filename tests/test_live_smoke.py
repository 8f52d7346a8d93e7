"""`live` (models side by side) and `smoke` (fresh 50-row splits, then live on both tracks)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from slm_swap.files import read_examples
from slm_swap.runs import read_run
from slm_swap.types import Example
from tests.cli import cli
from tests.langfuse_receiver import LangfuseReceiver
from tests.openai_server import FakeOpenAIServer


def hosted(server: FakeOpenAIServer) -> list[str]:
    return ["--base-url", server.openai_url, "--api-key", "test-key", "--model", "fake"]


def test_live_runs_both_models_and_saves_like_eval(
    prepared: list[Example],
    openai_server: FakeOpenAIServer,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for e in prepared:
        openai_server.answers[e.prompt] = e.completion
    monkeypatch.setenv("SLM_MODEL_PATH", str(tiny_model))
    result = cli(
        [
            "live",
            "--track",
            "toolcall",
            "--models",
            "openai",
            "--models",
            "slm",
            "--save",
            "--max-new-tokens",
            "4",
            *hosted(openai_server),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "live · toolcall" in result.output and "8/8" in result.output
    assert "(-1.000)" in result.output  # the SLM's gap to the first model on ast_match
    hosted_run = read_run(Path("05_eval/toolcall_openai_test.json"))
    slm_run = read_run(Path("05_eval/toolcall_slm_test.json"))
    assert hosted_run.summary.metrics["ast_match"] == 1.0 and slm_run.summary.metrics["ast_match"] == 0.0
    assert [r.id for r in slm_run.results] == [e.id for e in prepared]


def test_live_without_save_writes_nothing(prepared: list[Example], openai_server: FakeOpenAIServer) -> None:
    result = cli(["live", "--track", "toolcall", "--models", "openai", *hosted(openai_server)])
    assert result.exit_code == 0, result.output
    assert not Path("05_eval").exists()


def test_smoke_resamples_and_runs_both_tracks(
    prepared: list[Example], openai_server: FakeOpenAIServer
) -> None:
    result = cli(["smoke", "--models", "openai", "--save", *hosted(openai_server)])
    assert result.exit_code == 0, result.output
    for track in ("structured", "toolcall"):
        assert len(read_examples(Path(f"02_dataset/{track}/test.jsonl"))) == 50
        run = read_run(Path(f"05_eval/{track}_openai_test.json"))
        assert len(run.results) == 50 and run.summary.errors == 0
    assert "kept the earlier split as" in result.output
    assert len(openai_server.requests) == 100


def test_smoke_refuses_without_tracing_before_touching_splits(
    prepared: list[Example], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = Path("02_dataset/toolcall/test.jsonl").read_text()
    monkeypatch.delenv("LANGFUSE_DISABLED")
    result = cli(["smoke", "--models", "openai"])
    assert result.exit_code == 2 and "LANGFUSE_DISABLED=1" in result.output
    assert Path("02_dataset/toolcall/test.jsonl").read_text() == before


def test_live_runs_are_traced_with_mode_live(
    prepared: list[Example],
    openai_server: FakeOpenAIServer,
    langfuse_receiver: LangfuseReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LANGFUSE_DISABLED")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", f"pk-lf-test-{secrets.token_hex(4)}")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-test")
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_receiver.url)
    result = cli(["live", "--track", "toolcall", "--models", "openai", *hosted(openai_server)])
    assert result.exit_code == 0, result.output
    root = langfuse_receiver.span("eval toolcall/test openai")
    assert "mode=live" in root.attr("langfuse.trace.tags")
    generations = [s for s in langfuse_receiver.spans if s.attr("langfuse.observation.type") == "generation"]
    assert len(generations) == len(prepared)
