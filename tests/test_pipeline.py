"""`slm-swap run` end to end on the tiny model: stages, skipping, resuming, Azure or the local stand-in,
fine-tuning only the tracks that trail, the verdict and the report."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.cli import cli

from .openai_server import FakeOpenAIServer
from .verdicts import ruled, run_exit_code

SMALL = ["--train-size", "4", "--val-size", "2", "--test-size", "4", "--max-new-tokens", "8"]
TRAIN = ["--max-length", "512", "--train-batch-size", "2"]


def run(tiny_model: Path, *extra: str) -> str:
    result = cli(["run", "--model-path", str(tiny_model), *SMALL, *TRAIN, *extra])
    assert result.exit_code == run_exit_code(), result.output
    return result.output


def test_run_with_azure_fine_tunes_the_trailing_track_and_resumes(
    azure: FakeOpenAIServer, tiny_model: Path
) -> None:
    output = run(tiny_model, "--tracks", "toolcall")
    assert "prepare: splits in 02_dataset kept (inputs unchanged)" in output
    verdict = json.loads(Path("05_eval/verdict.json").read_text())
    assert verdict["hosted"]["kind"] == "azure" and verdict["hosted"]["stand_in"] is False
    assert verdict["protocols"] == {"hosted": "prompt", "slm": "prompt"} and "asked:" not in output
    track = verdict["tracks"]["toolcall"]
    assert track["summary"]["hosted"]["ast_match"] == 1.0 and track["summary"]["slm"]["ast_match"] < 1.0
    assert (
        track["adapter"] == "04_ft/adapter_toolcall"
        and Path(track["adapter"], "adapter_model.safetensors").is_file()
    )
    assert track["runs"]["slm_ft"] == "05_eval/toolcall_slm_ft_test.json"
    assert json.loads(Path(track["ft_decision"]).read_text())["slm"]["adapter"] == "04_ft/adapter_toolcall"
    assert ruled(track) in ("keep_hosted", "swap_after_fine_tune")
    assert "toolcall: " + track["says"] in output
    assert not Path("05_eval/structured_decision.json").exists()  # only the tracks asked for
    assert Path("05_eval/report.html").is_file() and Path("05_eval/report.md").is_file()
    for path in [*Path("05_eval").iterdir(), *Path("04_ft").rglob("*.json")]:
        assert "azure-secret-key" not in path.read_text(errors="replace"), path

    # Interrupted after fine-tuning: the rerun keeps every finished stage and redoes only the rest.
    Path("05_eval/toolcall_slm_ft_test.json").unlink()
    Path("05_eval/verdict.json").unlink()
    asked = len(azure.requests)
    again = run(tiny_model, "--tracks", "toolcall")
    assert len(azure.requests) == asked  # the hosted model was not asked again
    for stage in ("eval toolcall hosted", "eval toolcall slm", "train toolcall"):
        assert f"{stage}: " in again and "kept" in again.split(f"{stage}: ")[1].splitlines()[0], stage
    assert "eval toolcall slm_ft: 4 examples" in again
    assert (
        json.loads(Path("05_eval/verdict.json").read_text())["tracks"]["toolcall"]["verdict"]
        == track["verdict"]
    )


def test_run_without_credentials_uses_the_local_stand_in_and_stops_it(
    workspace: Path, tiny_model: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    output = run(tiny_model, "--standin-port", str(port))
    assert f"starting the hosted stand-in on port {port}" in output
    verdict = json.loads(Path("05_eval/verdict.json").read_text())
    assert (
        verdict["hosted"]["stand_in"] is True
        and "slm-swap serve --constrained" in verdict["hosted"]["description"]
    )
    assert "hosted: local stand-in" in output and "cost estimate" not in output  # the stand-in is free
    hosted = json.loads(Path("05_eval/toolcall_openai_test.json").read_text())
    assert hosted["meta"]["model_kind"] == "openai" and hosted["meta"]["settings"]["endpoint"].startswith(
        f"http://127.0.0.1:{port}/v1"
    )
    # Constrained decoding behind the stand-in: every answer is inside the grammar — the start of a call
    # (8 tokens of a random model spell no more), or a reply with no `<` in it (no call, as rule 0 chose).
    begin = '<tool_call name="'
    outputs = [r["output"] for r in hosted["results"]]
    assert all(o and (o.startswith(begin) or begin.startswith(o) or "<" not in o) for o in outputs), outputs
    free = json.loads(Path("05_eval/toolcall_slm_test.json").read_text())
    assert not any(r["output"].startswith("<tool") for r in free["results"])
    assert "stand-in" in Path("05_eval/report.html").read_text()
    assert "stand-in" in Path("05_eval/report.md").read_text()
    with socket.socket() as s:  # stopped afterwards: the port is free again
        s.bind(("127.0.0.1", port))
    # The stand-in's key was random and is nowhere on disk.
    assert set(verdict["tracks"]) == {"structured", "toolcall"}
    # 4 test rows a track, as in the demo's quick look: the verdicts say what the rows cannot settle, lean
    # to the rule's verdict and say how many rows would settle them; run exits 3 (`run` above checks it).
    for name, track in verdict["tracks"].items():
        assert track["verdict"] == "not_settled" and track["leaning"] in ("swap_now", "keep_hosted"), name
        assert track["rows_needed"] is None or track["rows_needed"] > 4
        assert f"{name}: not settled (leaning: " in output and "not settled on 4 rows" in track["reason"]
    assert "not settled: structured, toolcall: the test rows cannot give a verdict at delta 0.01" in output
    assert "not settled" in Path("05_eval/report.md").read_text()


def test_report_without_decisions_says_what_to_run(workspace: Path) -> None:
    result = cli(["report"])
    assert result.exit_code == 2 and "slm-swap run" in result.output


def test_a_run_stopped_by_ctrl_c_resumes(azure: FakeOpenAIServer, tiny_model: Path) -> None:
    """A real SIGINT to `slm-swap run` during the SLM's evaluation: exit 130, the finished hosted run and
    the journal stay, and the rerun finishes without asking the hosted model again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    argv = [sys.executable, "-m", "slm_swap", "run", "--model-path", str(tiny_model), "--tracks", "toolcall"]
    argv += [*SMALL[:6], "--max-new-tokens", "300", "--batch-size", "1", *TRAIN]
    # Ctrl-C's target as a terminal leaves it: a runner that starts the suite in the background (a shell
    # without job control) ignores SIGINT, and an ignored SIGINT stays ignored in every child.
    process = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if line.startswith("eval toolcall slm: 4 examples"):
            # Inside the SLM's evaluation: loading the model and 4 answers of 300 tokens, one at a time.
            # It can take under 2 s, so the signal goes soon after the stage starts.
            time.sleep(0.25)
            process.send_signal(signal.SIGINT)
            break
    rest, _ = process.communicate(timeout=120)
    assert process.wait() == 130, "".join(seen) + rest
    assert Path("05_eval/toolcall_azure_test.json").is_file()
    assert not Path("05_eval/toolcall_slm_test.json").exists() and not Path("05_eval/verdict.json").exists()
    asked = len(azure.requests)
    output = run(tiny_model, "--tracks", "toolcall", "--max-new-tokens", "300", "--batch-size", "1")
    assert "eval toolcall hosted: 05_eval/toolcall_azure_test.json kept (inputs unchanged)" in output
    assert len(azure.requests) == asked
    assert Path("05_eval/verdict.json").is_file()


def test_run_in_rounds_stops_when_settled_and_asks_the_hosted_model_only_for_the_rows_used(
    azure: FakeOpenAIServer, tiny_model: Path
) -> None:
    """A pool of 32 test rows, 4 first: the hosted model answers every row right and the tiny model none,
    so the confidence sequences settle before the pool is used up; the hosted model is asked for the
    rows used and no more, the decision records the rounds, and a rerun asks nothing again."""
    from slm_swap.files import read_examples

    pool = ["--train-size", "4", "--val-size", "2", "--test-size", "32"]  # as run prepares it
    assert cli(["prepare", *pool]).exit_code == 0
    for example in read_examples(Path("02_dataset/toolcall/test.jsonl")):
        azure.answers[example.prompt] = example.completion
    output = run(tiny_model, "--tracks", "toolcall", "--max-test-size", "32")
    assert "round 1 toolcall: 4 of 32 rows" in output
    decision = json.loads(Path("05_eval/toolcall_decision.json").read_text())
    record = decision["sequential"]
    used = record["rows_used"]
    assert record["pool"] == 32 and record["stopped"] == "settled" and used < 32
    assert [r["rows"] for r in record["rounds"]] == [4, 8, 16, 32][: len(record["rounds"])]
    assert record["rounds"][-1]["rows"] == used
    final = {m["metric"]: m for m in record["rounds"][-1]["metrics"]}
    for m in decision["metrics"]:  # settled by the confidence sequence, not a fixed-n interval
        assert (m["ci_low"], m["ci_high"], m["settled"]) == (
            final[m["metric"]]["low"],
            final[m["metric"]]["high"],
            final[m["metric"]]["settled"],
        )
    assert all(m["settled"] for m in decision["metrics"])
    assert len(json.loads(Path("05_eval/toolcall_azure_test.json").read_text())["results"]) == used
    asked = [m["content"] for r in azure.requests for m in r.body["messages"] if m["role"] == "user"]
    assert len(asked) == len(set(asked)) == used, asked  # each used row asked once, across the rounds
    assert f"of a pool of 32 rows (settled): {32 - used:,} rows" in Path("05_eval/report.md").read_text()
    verdict = json.loads(Path("05_eval/verdict.json").read_text())["tracks"]["toolcall"]
    assert verdict["verdict"] == "keep_hosted"  # settled: the SLM surely trails, even after its fine-tune

    again = run(tiny_model, "--tracks", "toolcall", "--max-test-size", "32")
    assert len(azure.requests) == used
    assert json.loads(Path("05_eval/toolcall_decision.json").read_text())["sequential"] == record
    assert "eval toolcall hosted: 05_eval/toolcall_azure_test.json kept" in again
    # A changed setting that does not change the runs (delta): the rounds are decided again from the rows
    # already evaluated; more rounds may follow, but no row is asked twice.
    wider = run(tiny_model, "--tracks", "toolcall", "--max-test-size", "32", "--delta", "0.3")
    assert "round 1 toolcall: 4 of 32 rows" in wider
    decision = json.loads(Path("05_eval/toolcall_decision.json").read_text())
    asked = [m["content"] for r in azure.requests for m in r.body["messages"] if m["role"] == "user"]
    assert decision["delta"] == 0.3 and len(asked) == len(set(asked)) == decision["sequential"]["rows_used"]
