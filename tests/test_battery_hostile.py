"""The battery's hostile kinds, through the commands that read or write them: output paths (a folder, a
file in the way, read-only, a symlink), two writers at once, and extreme values (lone surrogates, NaN and
Infinity, 1e308, 10^400, negative numbers). Each exits 2 naming the path or row and the fix, and leaves
no partial output and no journal behind."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from slm_swap.compare import mcnemar_exact
from slm_swap.errors import SlmSwapError
from slm_swap.files import one_writer
from slm_swap.types import Example
from tests.cli import cli

ROOT = Path(__file__).resolve().parents[1]
EVAL = ["eval", "--track", "toolcall", "--model-kind", "replay", "--split", "test"]


def predictions(examples: list[Example], path: Path, **changes: Any) -> Path:
    """Replay predictions answering every example with its gold; `changes` edit the first row."""
    rows: list[dict[str, Any]] = [
        {
            "id": e.id,
            "output": e.completion,
            "latency_s": 0.5,
            "usage": {"prompt_tokens": 10, "completion_tokens": 5},
        }
        for e in examples
    ]
    rows[0].update(changes)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def strict(text: str) -> Any:
    def refuse(name: str) -> Any:
        raise AssertionError(f"{name} in a file slm-swap wrote")

    return json.loads(text, parse_constant=refuse)


def refused(result: Result, *said: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "fix:" in result.output
    for words in said:
        assert words in result.output, result.output


def nothing_in(folder: Path) -> None:
    assert not folder.exists() or not any(folder.iterdir()), sorted(folder.iterdir())


# --- output paths ---------------------------------------------------------------------------------------


def test_eval_out_that_is_a_folder_or_under_a_file_writes_nothing(prepared: list[Example]) -> None:
    preds = predictions(prepared, Path("preds.jsonl"))
    Path("runs").mkdir()
    result = cli([*EVAL, "--predictions", str(preds), "--out", "runs"])
    refused(result, "runs is a folder", "--out runs/name.json")
    nothing_in(Path("runs"))
    Path("flat").write_text("a file")
    result = cli([*EVAL, "--predictions", str(preds), "--out", "flat/run.json"])
    refused(result, "flat is a file, so flat/run.json cannot be written")
    assert Path("flat").read_text() == "a file"


def test_eval_follows_a_symlinked_output_folder(prepared: list[Example]) -> None:
    preds = predictions(prepared, Path("preds.jsonl"))
    Path("real").mkdir()
    Path("linked").symlink_to("real")
    result = cli([*EVAL, "--predictions", str(preds), "--out", "linked/run.json"])
    assert result.exit_code == 0, result.output
    assert strict(Path("real/run.json").read_text())["summary"]["ast_match"] == 1.0


@pytest.fixture
def read_only(workspace: Path) -> Iterator[Path]:
    """A folder nobody may write in. Root writes through permissions, so for root it is a read-only
    filesystem mounted there (or /proc, where no file can be made, when mounting is not allowed)."""
    folder = workspace / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)], capture_output=True)
    yield folder if mounted.returncode == 0 else Path("/proc")
    if mounted.returncode == 0:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_output_folder_stops_eval_compare_and_report(
    prepared: list[Example], read_only: Path
) -> None:
    preds = predictions(prepared, Path("preds.jsonl"))
    assert cli([*EVAL, "--predictions", str(preds)]).exit_code == 0
    run = "05_eval/toolcall_replay_test.json"
    assert cli(["compare", "--track", "toolcall", "--azure", run, "--slm", run]).exit_code == 0
    commands = {
        "eval": [*EVAL, "--predictions", str(preds), "--out", f"{read_only}/run.json"],
        "compare": [
            "compare",
            "--track",
            "toolcall",
            "--azure",
            run,
            "--slm",
            run,
            "--out",
            f"{read_only}/d.json",
        ],
        "report": ["report", "--out", f"{read_only}/report.html"],
    }
    for args in commands.values():
        refused(cli(args), f"cannot write in {read_only}")
    assert not list(read_only.glob("*.json*")) and not list(read_only.glob("report*"))
    assert not Path("05_eval/run.json.journal").exists()


def test_prepare_out_dir_that_is_a_file_or_holds_a_file_in_the_way(workspace: Path) -> None:
    Path("data").write_text("a file")
    refused(cli(["prepare", "--out-dir", "data"]), "data is a file", "--out-dir")
    Path("splits").mkdir()
    Path("splits/toolcall").write_text("in the way")
    refused(cli(["prepare", "--out-dir", "splits"]), "splits/toolcall is a file")
    assert sorted(p.name for p in Path("splits").iterdir()) == ["toolcall"]  # no empty structured/ left


def test_report_whose_markdown_twin_is_a_folder_writes_neither(prepared: list[Example]) -> None:
    preds = predictions(prepared, Path("preds.jsonl"))
    assert cli([*EVAL, "--predictions", str(preds)]).exit_code == 0
    run = "05_eval/toolcall_replay_test.json"
    compared = cli(["compare", "--track", "toolcall", "--azure", run, "--slm", run])
    assert compared.exit_code == 0, compared.output
    Path("out/report.md").mkdir(parents=True)
    refused(cli(["report", "--out", "out/report.html"]), "out/report.md is a folder")
    assert not Path("out/report.html").exists()
    refused(cli(["compare", "--track", "toolcall", "--azure", run, "--slm", run, "--out", "out"]))


# --- two writers ----------------------------------------------------------------------------------------


@contextmanager
def held_by_another(path: Path) -> Iterator[int]:
    """Another process holding `path`'s one-writer lock for the block; yields its pid."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from slm_swap.files import one_writer\n"
            "with one_writer(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_second_writer_of_the_same_run_stops_naming_the_first(prepared: list[Example]) -> None:
    """Another process holds the run file's lock; eval exits 2 naming it and writes nothing; once the
    lock is free the same command runs."""
    preds = predictions(prepared, Path("preds.jsonl"))
    out = Path("05_eval/toolcall_replay_test.json")
    with held_by_another(out) as pid:
        result = cli([*EVAL, "--predictions", str(preds)])
        refused(result, f"is being written by another slm-swap (pid {pid})")
        assert not out.exists() and not Path(f"{out}.journal").exists()
    assert cli([*EVAL, "--predictions", str(preds)]).exit_code == 0
    assert not Path(f"{out}.lock").exists()


def test_the_lock_is_held_only_while_writing(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    with one_writer(target):
        assert (tmp_path / "x.json.lock").read_text().strip() == str(os.getpid())
    assert not (tmp_path / "x.json.lock").exists()
    with one_writer(target):  # free again
        pass


# --- extreme values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "raw", "said"),
    [
        ("output", '"\\ud800"', "lone surrogate"),
        ("error", '"broken \\udc00 text"', "lone surrogate"),
        ("latency_s", "NaN", "NaN is not JSON"),
        ("latency_s", "Infinity", "Infinity is not JSON"),
        ("latency_s", "1e309", "beyond the range of a number"),
        ("latency_s", "1e308", "latency_s"),
        ("latency_s", "-1", "latency_s"),
        ("usage", '{"prompt_tokens": 1' + "0" * 400 + ', "completion_tokens": 1}', "prompt_tokens"),
        ("usage", '{"prompt_tokens": -5, "completion_tokens": 1}', "prompt_tokens"),
    ],
)
def test_extreme_values_in_predictions_are_bad_input(
    prepared: list[Example], key: str, raw: str, said: str
) -> None:
    """The first row's `key` holds `raw`, written into the file as it stands."""
    path = predictions(prepared, Path("preds.jsonl"))
    lines = path.read_text().splitlines()
    first = {k: v for k, v in json.loads(lines[0]).items() if k != key}
    lines[0] = json.dumps(first)[:-1] + f', "{key}": {raw}}}'
    path.write_text("\n".join(lines) + "\n")
    result = cli([*EVAL, "--predictions", str(path)])
    refused(result, "preds.jsonl", said)
    nothing_in(Path("05_eval"))


@pytest.mark.parametrize("where", ["user message", "call arguments"])
def test_a_surrogate_in_a_logged_conversation_is_bad_input(workspace: Path, where: str) -> None:
    text = "weather in \\ud800" if where == "user message" else "weather in Oslo"
    arguments = '{"city": "\\ud800"}' if where == "call arguments" else '{"city": "Oslo"}'
    call = {"type": "function", "function": {"name": "w", "arguments": arguments}}
    row = {
        "messages": [{"role": "user", "content": text}, {"role": "assistant", "tool_calls": [call]}],
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
    }
    line = json.dumps(row)
    # The escape as a file holds it: \ud800 in the message's JSON, \\ud800 inside the arguments' string.
    line = line.replace("\\\\ud800", "\\ud800") if where == "user message" else line
    Path("log.jsonl").write_text(line + "\n")
    result = cli(["prepare", "--source", "openai", "--dataset-path", "log.jsonl"])
    refused(result, "log.jsonl", "lone surrogate")
    nothing_in(Path("02_dataset"))


def test_nan_in_an_answer_is_not_valid_json_and_run_files_are_standard_json(prepared: list[Example]) -> None:
    from slm_swap.scoring.parse import parse_structured

    for text in ('{"calls": [{"name": "f", "arguments": {"x": NaN}}]}', '{"calls": [], "x": Infinity}'):
        assert not parse_structured(text).valid
    preds = predictions(prepared, Path("preds.jsonl"), output='<tool_call name="f">{"x": NaN}</tool_call>')
    assert cli([*EVAL, "--predictions", str(preds)]).exit_code == 0
    run = strict(Path("05_eval/toolcall_replay_test.json").read_text())
    assert run["results"][0]["metrics"]["format_valid"] == 0.0


def test_report_md_escapes_names(prepared: list[Example]) -> None:
    name = "h|<img src=x onerror=alert(1)>"
    preds = predictions(prepared, Path(f"{name}.jsonl"))
    out = "05_eval/hosted.json"
    assert cli([*EVAL, "--predictions", str(preds), "--out", out]).exit_code == 0
    assert cli(["compare", "--track", "toolcall", "--azure", out, "--slm", out]).exit_code == 0
    assert cli(["report"]).exit_code == 0
    markdown = Path("05_eval/report.md").read_text()
    assert "<img" not in markdown
    row = next(line for line in markdown.splitlines() if "onerror" in line)
    assert row.count("|") - row.count("\\|") == 5  # the table's own four columns, no more


# --- linear cost: the statistics ------------------------------------------------------------------------


def test_mcnemar_in_floating_point_agrees_with_exact_integers() -> None:
    def exact(b: int, c: int) -> float:
        n = b + c
        if n == 0:
            return 1.0
        return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n)

    for b in range(0, 41, 3):
        for c in range(0, 41, 4):
            assert mcnemar_exact(b, c) == pytest.approx(exact(b, c), rel=1e-9, abs=1e-300)
    assert mcnemar_exact(2_500, 2_400) == pytest.approx(exact(2_500, 2_400), rel=1e-9)
    # A million discordant pairs: the large-sample normal tail (z = 2) agrees to three decimals.
    assert mcnemar_exact(499_000, 501_000) == pytest.approx(math.erfc(2 / math.sqrt(2)), abs=1e-3)
    assert mcnemar_exact(500_000, 500_000) == 1.0


# --- a report of any size -------------------------------------------------------------------------------


def _report_of(n: int, folder: Path) -> tuple[int, str]:
    """prepare (n generated conversations, all test rows), two replay evals, compare and report in
    `folder`; the page's size and text."""
    folder.mkdir()
    os.chdir(folder)
    tool = {
        "type": "function",
        "function": {
            "name": "w",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    with Path("log.jsonl").open("w") as f:
        for i in range(n):
            call = {
                "type": "function",
                "function": {"name": "w", "arguments": json.dumps({"city": f"C{i % 7}"})},
            }
            messages = [
                {"role": "user", "content": f"weather {i}"},
                {"role": "assistant", "tool_calls": [call]},
            ]
            f.write(json.dumps({"id": f"r{i}", "messages": messages, "tools": [tool]}) + "\n")
    sizes = ["--train-size", "0", "--val-size", "0", "--test-size", str(n)]
    assert cli(["prepare", "--source", "openai", "--dataset-path", "log.jsonl", *sizes]).exit_code == 0
    split = [json.loads(line) for line in Path("02_dataset/toolcall/test.jsonl").read_text().splitlines()]
    for side, wrong in (("hosted", 0), ("slm", 3)):
        rows = [
            {
                "id": e["id"],
                "output": "no" if wrong and i % wrong == 0 else e["completion"],
                "latency_s": i % 9,
            }
            for i, e in enumerate(split)
        ]
        Path(f"{side}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        args = [*EVAL, "--predictions", f"{side}.jsonl", "--out", f"05_eval/{side}.json"]
        assert cli(args).exit_code == 0
    compare = [
        "compare",
        "--track",
        "toolcall",
        "--azure",
        "05_eval/hosted.json",
        "--slm",
        "05_eval/slm.json",
    ]
    assert cli(compare).exit_code == 10
    assert cli(["report"]).exit_code == 0
    page = Path("05_eval/report.html")
    return page.stat().st_size, page.read_text()


def test_the_report_stays_the_same_size_whatever_the_runs_size(workspace: Path) -> None:
    small, _ = _report_of(600, workspace / "small")
    large, page = _report_of(3_000, workspace / "large")
    assert large < 1.2 * small  # 5x the examples, about the same page
    assert "Showing 300 of 3,000 examples: the 300 where the models disagree first (1,000 in all)" in page
    assert page.count("<tr data-disagree='1'>") == 300 and "05_eval/hosted.json" in page


def test_written_files_follow_the_umask_like_any_other(prepared: list[Example]) -> None:
    preds = predictions(prepared, Path("preds.jsonl"))
    assert cli([*EVAL, "--predictions", str(preds)]).exit_code == 0
    mask = os.umask(0)
    os.umask(mask)
    mode = Path("05_eval/toolcall_replay_test.json").stat().st_mode & 0o777
    assert mode == 0o666 & ~mask  # not mkstemp's 0600: a team's shared folder can read it


def test_a_run_file_changed_after_writing_is_checked_field_by_field_again(prepared: list[Example]) -> None:
    """Results that kept the digest slm-swap wrote skip the field-by-field check; any change sends them
    through it, so a bad value cannot ride on an old digest."""
    from slm_swap.errors import InputError
    from slm_swap.runs import read_run

    preds = predictions(prepared, Path("preds.jsonl"))
    assert cli([*EVAL, "--predictions", str(preds)]).exit_code == 0
    path = Path("05_eval/toolcall_replay_test.json")
    data = strict(path.read_text())
    assert len(data["sha256"]) == 64 and len(read_run(path).results) == len(prepared)
    data["results"][0]["latency_s"] = -1.0
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="latency_s"):
        read_run(path)


# --- an output that is an input -------------------------------------------------------------------------


def _eval_and_compare(prepared: list[Example]) -> tuple[Path, Path]:
    """Two replay runs of the split (hosted: all right; slm: the first row wrong) and their decision."""
    hosted = Path("05_eval/toolcall_azure_test.json")
    slm = Path("05_eval/toolcall_slm_test.json")
    for out, changes in ((hosted, {}), (slm, {"output": "no call"})):
        preds = predictions(prepared, Path(f"{out.stem}.jsonl"), **changes)
        result = cli([*EVAL, "--predictions", str(preds), "--out", str(out)])
        assert result.exit_code == 0, result.output
    args = ["compare", "--track", "toolcall", "--azure", str(hosted), "--slm", str(slm)]
    assert cli(args).exit_code in (0, 10)
    return hosted, slm


def test_no_command_writes_over_one_of_its_inputs_force_or_not(prepared: list[Example]) -> None:
    hosted, slm = _eval_and_compare(prepared)
    split = Path("02_dataset/toolcall/test.jsonl")
    preds = Path(f"{slm.stem}.jsonl")
    Path("linked.json").symlink_to(preds)
    os.link(hosted, "hard.json")
    before = {p: p.read_bytes() for p in (hosted, slm, split, preds, Path("05_eval/toolcall_decision.json"))}
    compare = ["compare", "--track", "toolcall", "--azure", str(hosted), "--slm", str(slm)]
    cases = {
        "compare over the hosted run": ([*compare, "--out", str(hosted)], "is the hosted run"),
        "compare over the slm run": ([*compare, "--out", str(slm)], "is the SLM run"),
        "compare over a hard link of a run": ([*compare, "--out", "hard.json"], "is the hosted run"),
        "report over a run": (["report", "--out", str(slm)], "is the toolcall SLM run"),
        "report over the split": (["report", "--out", str(split)], "is the toolcall split"),
        "eval over its split": (
            [*EVAL, "--predictions", str(preds), "--out", str(split), "--force"],
            "is the split",
        ),
        "eval over its predictions": (
            [*EVAL, "--predictions", str(preds), "--out", str(preds), "--force"],
            "is the predictions",
        ),
        "eval over a link to its predictions": (
            [*EVAL, "--predictions", str(preds), "--out", "linked.json", "--force"],
            "is the predictions",
        ),
    }
    for name, (args, said) in cases.items():
        result = cli(args)
        assert result.exit_code == 2, (name, result.output)
        refused(result, said, "which this command reads", "fix: choose another --out")
    assert {p: p.read_bytes() for p in before} == before
    assert not list(Path("05_eval").glob("*.journal")) and not list(Path("05_eval").glob("*.html"))
    assert not list(Path("02_dataset").rglob("*.md"))


def test_prepare_label_and_train_do_not_write_over_their_sources(workspace: Path) -> None:
    from slm_swap.train.config import TrainConfig

    tool = {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
    call = {"type": "function", "function": {"name": "w", "arguments": "{}"}}
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "tool_calls": [call]}]}
        | {"tools": [tool]}
        for i in range(12)
    ]
    log = Path("data/toolcall/train.jsonl")
    log.parent.mkdir(parents=True)
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = log.read_bytes()
    args = ["prepare", "--source", "openai", "--dataset-path", str(log), "--out-dir", "data"]
    refused(cli(args), "data/toolcall/train.jsonl is the source", "--out-dir")
    assert log.read_bytes() == before and sorted(Path("data").rglob("*")) == [log.parent, log]
    label = ["label", "--input", str(log), "--out", str(log), "--force", "--model-kind", "openai"]
    endpoint = ["--base-url", "http://127.0.0.1:9/v1", "--api-key", "k", "--model", "m"]  # never asked
    refused(cli([*label, *endpoint]), "is the input file")
    assert log.read_bytes() == before
    with pytest.raises(SlmSwapError, match="data/toolcall holds the train split"):
        TrainConfig(
            track="toolcall", train=log, val=Path("v.jsonl"), out=Path("data/toolcall"), model_path=Path("m")
        )
    with pytest.raises(SlmSwapError, match="--out m is the base model"):
        TrainConfig(track="toolcall", train=log, val=Path("v.jsonl"), out=Path("m"), model_path=Path("m"))


# --- locks ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("planted", ["symlink", "hard link", "a file of the user's"])
def test_a_lock_path_planted_by_someone_else_is_refused_and_its_target_kept(
    prepared: list[Example], planted: str
) -> None:
    preds = predictions(prepared, Path("preds.jsonl"))
    victim = Path("victim.txt")
    victim.write_text("precious\n")
    lock = Path("05_eval/b.json.lock")
    lock.parent.mkdir()
    if planted == "symlink":
        lock.symlink_to(victim.resolve())
    elif planted == "hard link":
        os.link(victim, lock)
    else:
        lock.write_text("my notes, not a pid\n")
    result = cli([*EVAL, "--predictions", str(preds), "--out", "05_eval/b.json"])
    refused(result, "05_eval/b.json.lock, the lock slm-swap takes before writing")
    assert victim.read_text() == "precious\n" and not Path("05_eval/b.json").exists()
    if planted != "symlink":
        assert lock.read_text() in ("precious\n", "my notes, not a pid\n")


def test_a_stale_lock_of_a_killed_process_is_taken_over(prepared: list[Example]) -> None:
    preds = predictions(prepared, Path("preds.jsonl"))
    Path("05_eval").mkdir()
    Path("05_eval/toolcall_replay_test.json.lock").write_text("99999999\n")  # its process died holding it
    assert cli([*EVAL, "--predictions", str(preds)]).exit_code == 0
    assert not Path("05_eval/toolcall_replay_test.json.lock").exists()


def test_sigterm_unwinds_like_ctrl_c_leaving_no_lock(prepared: list[Example], openai_server: Any) -> None:
    """A hosted eval waiting on a slow endpoint is stopped by SIGTERM: it exits 143 saying how to resume,
    with no traceback and no lock left behind (a later run would otherwise see a stale lock)."""
    openai_server.delay_s = 30
    env = {**os.environ, "LANGFUSE_DISABLED": "1"}
    args = ["--base-url", openai_server.openai_url, "--api-key", "test-key", "--model", "fake"]
    process = subprocess.Popen(
        [sys.executable, "-m", "slm_swap", "eval", "--track", "toolcall", "--model-kind", "openai", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lock = Path("05_eval/toolcall_openai_test.json.lock")
    for _ in range(600):
        if openai_server.requests:
            break
        subprocess.run(["sleep", "0.1"])
    assert lock.exists()
    process.terminate()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err
    assert "terminated; rerun the same command to resume" in err and "Traceback" not in err
    assert not lock.exists()


# --- two prepares ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_prepares_leave_splits_that_agree_with_their_manifest(
    workspace: Path, round_: int
) -> None:
    """Four `prepare` at once into one folder, each with its own seed: one at a time writes (the others
    stop naming it, or run after it), and the six splits always agree with prepared.json. A race: each
    round gives it another chance to show (before the lock, a round mixed the splits about one time in
    three)."""
    # Each process imports everything, then waits for the others, so that their work overlaps.
    start = (
        "import os, sys, time; from slm_swap.cli import main; import slm_swap.data.prepare\n"
        "open(f'ready.{os.getpid()}', 'w').close()\n"
        "while not os.path.exists('go'): time.sleep(0.005)\n"
        "main(['prepare', '--seed', sys.argv[1]])"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", start, str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LANGFUSE_DISABLED": "1"},
        )
        for seed in range(4)
    ]
    while len(list(Path().glob("ready.*"))) < len(processes):
        subprocess.run(["sleep", "0.05"])
    Path("go").touch()
    outcomes = [(p.wait(timeout=300), p.communicate()) for p in processes]
    assert any(code == 0 for code, _ in outcomes)
    for code, (_, err) in outcomes:
        assert code == 0 or (code == 2 and "is being written by another slm-swap" in err), err
    from slm_swap.files import sha256_file

    manifest = json.loads(Path("02_dataset/prepared.json").read_text())
    for name, digest in manifest["files"].items():
        assert sha256_file(Path("02_dataset") / name) == digest, name
    assert not list(Path("02_dataset").rglob("*.lock")) and not list(Path("02_dataset").rglob("*.tmp"))


def test_prepare_waits_for_no_one_while_another_holds_the_folder(workspace: Path) -> None:
    manifest = Path("02_dataset/prepared.json")
    with held_by_another(manifest) as pid:
        refused(cli(["prepare"]), f"being written by another slm-swap (pid {pid})")
        assert not list(Path("02_dataset").rglob("*.jsonl")) and not manifest.exists()


# --- comparing what cannot be compared ------------------------------------------------------------------


def test_compare_refuses_runs_on_different_contents_of_the_split(prepared: list[Example]) -> None:
    hosted, _ = _eval_and_compare(prepared)
    split = Path("02_dataset/toolcall/test.jsonl")
    rows = [json.loads(line) for line in split.read_text().splitlines()]
    rows[0]["completion"] = '<tool_call name="other">{}</tool_call>'  # same ids, one gold changed
    split.write_text("".join(json.dumps(r) + "\n" for r in rows))
    preds = predictions(prepared, Path("again.jsonl"))
    changed = "05_eval/changed.json"
    assert cli([*EVAL, "--predictions", str(preds), "--out", changed]).exit_code == 0
    result = cli(
        ["compare", "--track", "toolcall", "--azure", str(hosted), "--slm", changed, "--out", "d.json"]
    )
    refused(result, "different contents of the split", str(hosted), changed, "dataset_sha256")
    assert not Path("d.json").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "NaN"])
def test_float_options_must_be_finite(prepared: list[Example], value: str) -> None:
    hosted, slm = _eval_and_compare(prepared)
    decision = Path("05_eval/toolcall_decision.json").read_bytes()
    for args in (
        ["compare", "--track", "toolcall", "--azure", str(hosted), "--slm", str(slm), "--delta", value],
        ["report", "--price-per-1k-input", value],
        ["report", "--price-per-1k-output", value],
    ):
        result = cli(args)
        assert result.exit_code == 2, result.output
        assert "is not a finite number" in result.output and "Traceback" not in result.output
        assert "$nan" not in result.output
    assert Path("05_eval/toolcall_decision.json").read_bytes() == decision
    assert not Path("05_eval/report.html").exists()


# --- rough edges ----------------------------------------------------------------------------------------


def test_prepare_refuses_three_empty_splits(workspace: Path) -> None:
    sizes = ["--train-size", "0", "--val-size", "0", "--test-size", "0"]
    refused(cli(["prepare", *sizes]), "would be empty", "give at least one split rows")
    assert not Path("02_dataset").exists() or not list(Path("02_dataset").rglob("*.jsonl"))


@pytest.mark.parametrize(("what", "said"), [("folder", "is a folder"), ("fifo", "is a named pipe (FIFO)")])
def test_an_input_that_is_not_a_file_says_what_it_is(workspace: Path, what: str, said: str) -> None:
    path = Path("in.json")
    if what == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)
    refused(cli(["prepare", "--dataset-path", str(path)]), f"in.json: {said}")
    refused(cli(["prepare", "--source", "openai", "--dataset-path", str(path)]), said)


def test_dev_zero_is_a_device_not_a_missing_file(prepared: list[Example]) -> None:
    refused(cli([*EVAL, "--predictions", "/dev/zero"]), "/dev/zero: is a character device")
    refused(cli(["prepare", "--dataset-path", "/dev/zero"]), "is a character device")


def test_predictions_covering_part_of_the_split_say_so(prepared: list[Example]) -> None:
    rows = [{"id": prepared[0].id, "output": prepared[0].completion}]
    rows += [{"id": f"stranger-{i}", "output": "x"} for i in range(3)]
    Path("part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = cli([*EVAL, "--predictions", "part.jsonl"])
    assert result.exit_code == 0, result.output
    n = len(prepared)
    assert (
        f"part.jsonl answers 1 of the split's {n} examples; the other {n - 1} are scored as failures "
        "(no_output); 3 of its ids are not in the split (left out)"
    ) in result.output
    whole = predictions(prepared, Path("whole.jsonl"))
    result = cli([*EVAL, "--predictions", str(whole), "--out", "05_eval/whole.json"])
    assert result.exit_code == 0 and "answers" not in result.output
