"""`slm-swap eval --model-kind replay`: scoring stored outputs, run files, journal and resume."""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from pathlib import Path

import pytest

from slm_swap.backends.config import ReplayConfig
from slm_swap.backends.replay import ReplayBackend
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.runs import journal_path, read_run
from slm_swap.scoring.metrics import CORE_METRICS
from slm_swap.tracing import NullTracer
from slm_swap.types import Completion, Example
from tests.cli import cli
from tests.langfuse_receiver import LangfuseReceiver

SPLIT = Path("02_dataset/toolcall/test.jsonl")


def write_predictions(examples: list[Example], path: Path, *, wrong: int = 0, missing: int = 0) -> Path:
    rows = []
    for i, ex in enumerate(examples[missing:]):
        output = "I would call a tool here." if i < wrong else ex.completion
        rows.append(
            {
                "id": ex.id,
                "output": output,
                "latency_s": 0.5,
                "usage": {"prompt_tokens": 100, "completion_tokens": 20},
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_replay_eval_writes_a_complete_run_file(prepared: list[Example]) -> None:
    predictions = write_predictions(prepared, Path("preds.jsonl"), wrong=2, missing=1)
    result = cli(
        [
            "eval",
            "--track",
            "toolcall",
            "--model-kind",
            "replay",
            "--split",
            "test",
            "--predictions",
            str(predictions),
        ],
    )
    assert result.exit_code == 0, result.output
    out = Path("05_eval/toolcall_replay_test.json")
    data = json.loads(out.read_text())
    assert data["meta"]["dataset"] == str(SPLIT) and len(data["meta"]["dataset_sha256"]) == 64
    assert (
        data["meta"]["model_kind"] == "replay" and data["meta"]["started_at"] and data["meta"]["finished_at"]
    )
    assert data["core_metrics"] == list(CORE_METRICS["toolcall"])
    assert [r["id"] for r in data["results"]] == [e.id for e in prepared]
    assert data["summary"]["ast_match"] == pytest.approx(5 / 8)
    assert data["error_counts"] == {"no_output": 1, "missed_call": 2}  # plain text: the no-call answer
    first = data["results"][0]
    assert first["error_category"] == "no_output" and "no prediction" in first["backend_error"]
    good = data["results"][-1]
    assert good["metrics"]["ast_match"] == 1.0 and good["usage"] == {
        "prompt_tokens": 100,
        "completion_tokens": 20,
    }
    assert good["calls"] and good["latency_s"] == 0.5
    assert not journal_path(out).exists()
    assert "ast_match (core)" in result.output


def test_finished_run_is_reused_and_never_silently_overwritten(prepared: list[Example]) -> None:
    args = ["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions"]
    write_predictions(prepared, Path("a.jsonl"))
    write_predictions(prepared, Path("b.jsonl"), wrong=3)
    assert cli([*args, "a.jsonl"]).exit_code == 0
    out = Path("05_eval/toolcall_replay_test.json")
    before = out.read_bytes()
    again = cli([*args, "a.jsonl"])
    assert again.exit_code == 0 and "already complete" in again.output and out.read_bytes() == before
    other = cli([*args, "b.jsonl"])
    assert other.exit_code == 2 and "--force" in other.output and out.read_bytes() == before
    forced = cli([*args, "b.jsonl", "--force"])
    assert forced.exit_code == 0 and read_run(out).summary.metrics["ast_match"] == pytest.approx(5 / 8)


class Interrupting(ReplayBackend):
    """Replays, then raises KeyboardInterrupt (as Ctrl-C would) after `stop_after` examples."""

    def __init__(self, path: Path, stop_after: int):
        super().__init__(ReplayConfig(path))
        self.stop_after = stop_after
        self.seen = 0

    def generate(self, examples: Sequence[Example]) -> list[Completion]:
        if self.seen + len(examples) > self.stop_after:
            raise KeyboardInterrupt
        self.seen += len(examples)
        return super().generate(examples)


def test_interrupted_run_resumes_without_losing_or_repeating(prepared: list[Example]) -> None:
    predictions = write_predictions(prepared, Path("p.jsonl"), wrong=3)
    out = Path("05_eval/run.json")
    backend = Interrupting(predictions, stop_after=5)
    backend.batch_size = 1
    meta = run_meta("toolcall", "test", SPLIT, backend)
    with pytest.raises(KeyboardInterrupt):
        evaluate(prepared, backend, meta, out, NullTracer())
    assert not out.exists()
    journaled = journal_path(out).read_text().splitlines()
    assert len(journaled) == 1 + 5  # header + five scored examples
    with journal_path(out).open("a") as f:
        f.write('{"id": "torn')  # a line cut short by the crash
    resumed_backend = ReplayBackend(ReplayConfig(predictions))
    resumed_backend.batch_size = 1
    calls: list[str] = []
    original = resumed_backend.generate
    resumed_backend.generate = lambda batch: (calls.extend(e.id for e in batch), original(batch))[1]  # type: ignore[method-assign]
    outcome = evaluate(prepared, resumed_backend, meta, out, NullTracer())
    assert outcome.resumed == 5
    assert calls == [e.id for e in prepared[5:]]  # only the rest was generated
    fresh = evaluate(
        prepared, ReplayBackend(ReplayConfig(predictions)), meta, Path("05_eval/fresh.json"), NullTracer()
    )
    assert [r.to_json() for r in outcome.run.results] == [r.to_json() for r in fresh.run.results]


def test_journal_of_other_inputs_is_set_aside(prepared: list[Example]) -> None:
    out = Path("05_eval/run.json")
    journal_path(out).parent.mkdir(parents=True)
    journal_path(out).write_text('{"journal": {"model": "something else"}}\n{"id": "x"}\n')
    backend = ReplayBackend(ReplayConfig(write_predictions(prepared, Path("p.jsonl"))))
    outcome = evaluate(prepared, backend, run_meta("toolcall", "test", SPLIT, backend), out, NullTracer())
    assert outcome.resumed == 0 and outcome.run.summary.metrics["ast_match"] == 1.0
    assert journal_path(out).with_name("run.json.journal.stale").exists()


def test_a_run_killed_after_writing_its_file_leaves_no_journal_behind(prepared: list[Example]) -> None:
    """A kill between writing the run file and removing the journal: the next run reuses the file and
    removes the journal of the same inputs; a journal of other inputs stays for its own run."""
    out = Path("05_eval/run.json")
    backend = ReplayBackend(ReplayConfig(write_predictions(prepared, Path("p.jsonl"))))
    meta = run_meta("toolcall", "test", SPLIT, backend)
    evaluate(prepared, backend, meta, out, NullTracer())
    header = json.dumps({"journal": meta.identity()})
    journal_path(out).write_text(header + "\n")
    again = evaluate(prepared, backend, meta, out, NullTracer())
    assert again.reused and not journal_path(out).exists()
    other = '{"journal": {"model": "something else"}}\n'
    journal_path(out).write_text(other)
    assert evaluate(prepared, backend, meta, out, NullTracer()).reused
    assert journal_path(out).read_text() == other


def test_predictions_that_match_no_example_are_refused(prepared: list[Example]) -> None:
    Path("p.jsonl").write_text('{"id": "nope", "output": "x"}\n')
    result = cli(["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions", "p.jsonl"])
    assert result.exit_code == 2 and "has no output for any example" in result.output


def test_a_run_file_can_be_rescored(prepared: list[Example]) -> None:
    write_predictions(prepared, Path("p.jsonl"), wrong=1)
    base = ["eval", "--track", "toolcall", "--model-kind", "replay"]
    assert cli([*base, "--predictions", "p.jsonl", "--out", "05_eval/a.json"]).exit_code == 0
    result = cli([*base, "--predictions", "05_eval/a.json", "--out", "05_eval/b.json"])
    assert result.exit_code == 0, result.output
    a, b = read_run(Path("05_eval/a.json")), read_run(Path("05_eval/b.json"))
    assert [r.metrics for r in a.results] == [r.metrics for r in b.results]


def test_missing_split_is_a_clear_error(workspace: Path) -> None:
    Path("p.jsonl").write_text('{"id": "a", "output": "x"}\n')
    result = cli(["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions", "p.jsonl"])
    assert result.exit_code == 2 and "02_dataset/toolcall/test.jsonl: no such file" in result.output


def test_a_replay_eval_is_traced_to_langfuse(
    prepared: list[Example], langfuse_receiver: LangfuseReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-lf-never-shown-0123456789"
    monkeypatch.delenv("LANGFUSE_DISABLED")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", f"pk-lf-test-{secrets.token_hex(4)}")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", secret)
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_receiver.url)
    write_predictions(prepared, Path("p.jsonl"), wrong=2)
    result = cli(["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions", "p.jsonl"])
    assert result.exit_code == 0, result.output
    assert "could not be delivered" not in result.output
    root = langfuse_receiver.span("eval toolcall/test replay")
    meta = root.metadata("trace")
    assert meta["dataset"] == str(SPLIT) and meta["model_kind"] == "replay"
    assert meta["metrics_path"] == "05_eval/toolcall_replay_test.json" and meta["start"]
    assert len(meta["dataset_sha256"]) == 64
    generations = [s for s in langfuse_receiver.spans if s.attr("langfuse.observation.type") == "generation"]
    assert sorted(g.name for g in generations) == sorted(f"toolcall/{e.id}" for e in prepared)
    assert all(g.parent_id == root.span_id and g.trace_id == root.trace_id for g in generations)
    by_observation: dict[str, dict[str, float]] = {}
    for s in langfuse_receiver.scores:
        by_observation.setdefault(s.get("observationId") or "trace", {})[s["name"]] = s["value"]
    run = read_run(Path("05_eval/toolcall_replay_test.json"))
    for g in generations:
        example_id = g.name.split("/", 1)[1]
        expected = next(r for r in run.results if r.id == example_id).metrics
        assert by_observation[g.span_id] == expected
    assert by_observation["trace"]["ast_match"] == pytest.approx(6 / 8)
    for request in langfuse_receiver.requests:
        body = request.body.decode("utf-8", "replace")
        assert secret not in body
    assert secret not in Path("05_eval/toolcall_replay_test.json").read_text()


def test_undelivered_traces_warn_but_keep_the_results(
    prepared: list[Example], langfuse_receiver: LangfuseReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    langfuse_receiver.fail_with(401)
    monkeypatch.delenv("LANGFUSE_DISABLED")
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", f"pk-lf-test-{secrets.token_hex(4)}")
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-test")
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_receiver.url)
    write_predictions(prepared, Path("p.jsonl"))
    result = cli(["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions", "p.jsonl"])
    assert result.exit_code == 0, result.output
    assert "could not be delivered" in result.output and "(HTTP 401)" in result.output
    assert read_run(Path("05_eval/toolcall_replay_test.json")).summary.metrics["ast_match"] == 1.0
