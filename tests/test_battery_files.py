"""Reliability battery, part one: every kind of file slm-swap reads, damaged in many ways, through each
command that reads it.

Each damaged file must end the command with exit 0 or 2 — never a traceback — and an exit 2 must name
the file; whatever the outcome, no temporary file is left behind, and after an exit 2 every earlier
output is byte for byte as it was. Mutations are seeded, so a failure names a case that can be rerun.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli import cli

from .conftest import DATA

TEN_MB = 10 * (1 << 20)
WRONG_VALUES: tuple[Any, ...] = (None, 7, "x", [], {}, True)


def _paths(value: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> Iterator[tuple[Any, ...]]:
    """Paths to the fields of a JSON value (objects' keys; lists' first and last items), to depth 4."""
    if depth >= 4:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key), depth + 1)
    elif isinstance(value, list) and value:
        for index in {0, len(value) - 1}:
            yield (*prefix, index)
            yield from _paths(value[index], (*prefix, index), depth + 1)


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = new
    return copy


def mutations(data: bytes, seed: int, jsonl: bool, per_kind: int = 6) -> Iterator[tuple[str, bytes]]:
    """(what was done, damaged bytes) for one well-formed file."""
    rng = random.Random(seed)
    yield "empty", b""
    for _ in range(per_kind):
        offset = rng.randrange(1, len(data))
        yield f"truncated at byte {offset}", data[:offset]
    for _ in range(per_kind):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        yield "random bytes flipped", bytes(damaged)
    middle = len(data) // 2
    yield "invalid UTF-8", data[:middle] + b"\xff\xfe\xc3" + data[middle:]
    yield "a 10 MB line", (data + b"\n" if jsonl else b"") + b'{"id": "' + b"x" * TEN_MB + b'"}\n'
    documents = (
        [json.loads(line) for line in data.splitlines() if line.strip()] if jsonl else [json.loads(data)]
    )
    first = documents[0]
    paths = list(_paths(first))
    for path in rng.sample(paths, min(len(paths), 3 * per_kind)):
        original = _get(first, path)
        new = rng.choice([v for v in WRONG_VALUES if type(v) is not type(original)])
        damaged_doc = _replaced(first, path, new)
        if jsonl:
            body = b"".join(json.dumps(d).encode() + b"\n" for d in [damaged_doc, *documents[1:]])
        else:
            body = json.dumps(damaged_doc).encode()
        yield f"{'.'.join(map(str, path))} = {json.dumps(new)}", body
    if isinstance(first, dict) and "format" in first:
        yield "wrong format tag", json.dumps({**first, "format": "slm-swap.other/9"}).encode()
    if not jsonl:
        yield "a JSON list instead", b"[1, 2, 3]"


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def snapshot(root: Path, skip: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p != skip and ".pytest" not in p.parts
    }


@dataclass
class Tally:
    cases: int = 0
    exit_0: int = 0
    exit_2: int = 0


def check_command(
    target: Path, argv: list[str], cases: Iterator[tuple[str, bytes]], root: Path, ok: tuple[int, ...] = (0,)
) -> Tally:
    """Writes each damaged version to `target`, runs `argv`, and checks the outcome's contract; `ok`
    are the exit codes of a run that worked (compare exits 10 for FINE_TUNE=1)."""
    original = target.read_bytes()
    tally = Tally()
    for what, damaged in cases:
        target.write_bytes(damaged)
        before = snapshot(root, target)
        result = cli(argv)
        case = f"{target.name} ({what}) through `slm-swap {' '.join(argv)}`"
        assert result.exit_code in (*ok, 2), (
            f"{case}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
        )
        assert "Traceback" not in result.output, f"{case}:\n{result.output}"
        after = snapshot(root, target)
        leftovers = [name for name in after if name.endswith(".tmp")]
        assert not leftovers, f"{case}: temporary files left: {leftovers}"
        if result.exit_code == 2:
            assert target.name in result.output, (
                f"{case}: the message does not name the file:\n{result.output}"
            )
            assert after == before, f"{case}: outputs changed on a failed run"
            tally.exit_2 += 1
        else:
            tally.exit_0 += 1
        tally.cases += 1
    target.write_bytes(original)
    return tally


TALLIES: dict[str, Tally] = {}


@pytest.fixture(scope="module", autouse=True)
def print_tallies() -> Iterator[None]:
    yield
    for kind, tally in TALLIES.items():
        print(
            f"battery: {kind}: {tally.cases} damaged versions, {tally.exit_0} exit 0, {tally.exit_2} exit 2"
        )


def record(kind: str, tally: Tally) -> None:
    total = TALLIES.setdefault(kind, Tally())
    total.cases += tally.cases
    total.exit_0 += tally.exit_0
    total.exit_2 += tally.exit_2


def sample_rows(n: int) -> list[dict[str, Any]]:
    from slm_swap.data.sources import sample_path

    return json.loads(sample_path().read_text())[:n]


PREPARE_SMALL = ["--train-size", "2", "--val-size", "1", "--test-size", "1"]


def test_xlam_json_and_jsonl(workspace: Path) -> None:
    rows = sample_rows(6)
    Path("in.json").write_text(json.dumps(rows, indent=1))
    Path("in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert cli(["prepare", "--dataset-path", "in.json", *PREPARE_SMALL]).exit_code == 0
    for name, jsonl in (("in.json", False), ("in.jsonl", True)):
        target = Path(name)
        cases = mutations(target.read_bytes(), seed=1, jsonl=jsonl)
        record(
            "xLAM " + name.split(".")[1],
            check_command(target, ["prepare", "--dataset-path", name, *PREPARE_SMALL], cases, workspace),
        )


def test_bfcl_data(workspace: Path) -> None:
    folder = Path(shutil.copytree(DATA / "bfcl", "bfcl"))
    argv = [
        "prepare",
        "--source",
        "bfcl",
        "--dataset-path",
        "bfcl",
        "--bfcl-category",
        "simple_python",
        *PREPARE_SMALL,
    ]
    assert cli(argv).exit_code == 0
    for target in (
        folder / "BFCL_v4_simple_python.json",
        folder / "possible_answer" / "BFCL_v4_simple_python.json",
    ):
        record(
            "BFCL", check_command(target, argv, mutations(target.read_bytes(), seed=2, jsonl=True), workspace)
        )


COMPARE = ["compare", "--track", "toolcall", "--azure", "05_eval/hosted.json", "--slm", "05_eval/slm.json"]


@pytest.fixture
def evaluated(prepared: Any) -> Callable[[], None]:
    """A prepared workspace with replay predictions, two finished run files and their decision."""
    from .test_eval_replay import write_predictions

    write_predictions(prepared, Path("preds.jsonl"))
    write_predictions(prepared, Path("worse.jsonl"), wrong=3)
    replay = ["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions"]
    assert cli([*replay, "preds.jsonl", "--out", "05_eval/hosted.json"]).exit_code == 0
    assert cli([*replay, "worse.jsonl", "--out", "05_eval/slm.json"]).exit_code == 0
    assert cli(COMPARE).exit_code == 10
    return lambda: None


# --force: each damaged input is evaluated afresh (a stale output's refusal is not what is tested here).
REPLAY = ["eval", "--track", "toolcall", "--model-kind", "replay", "--force", "--out", "05_eval/again.json"]
REPLAY += ["--predictions"]
RESUME = [a for a in REPLAY if a != "--force"]


def test_splits_and_predictions(workspace: Path, evaluated: Callable[[], None]) -> None:
    split = Path("02_dataset/toolcall/test.jsonl")
    record(
        "split",
        check_command(split, [*REPLAY, "preds.jsonl"], mutations(split.read_bytes(), 3, True), workspace),
    )
    preds = Path("preds.jsonl")
    record(
        "predictions",
        check_command(preds, [*REPLAY, "preds.jsonl"], mutations(preds.read_bytes(), 4, True), workspace),
    )


def test_run_files(workspace: Path, evaluated: Callable[[], None]) -> None:
    run_file = Path("05_eval/slm.json")
    compare = [*COMPARE, "--out", "d.json"]
    for argv, ok in ((compare, (0, 10)), ([*REPLAY, str(run_file)], (0,)), (["report"], (0,))):
        cases = mutations(run_file.read_bytes(), 5, False)
        record("run file", check_command(run_file, argv, cases, workspace, ok))


def test_decision_and_verdict_files(workspace: Path, evaluated: Callable[[], None]) -> None:
    decision = Path("05_eval/toolcall_decision.json")
    record(
        "decision", check_command(decision, ["report"], mutations(decision.read_bytes(), 6, False), workspace)
    )
    verdict = Path("05_eval/verdict.json")
    verdict.write_text(
        json.dumps(
            {
                "format": "slm-swap.verdict/1",
                "session_id": "slm-swap-run-1",
                "finished_at": "2026-12-01T10:00:00+00:00",
                "seconds": 3.0,
                "delta": 0.01,
                "hosted": {"kind": "azure", "model": "gpt", "stand_in": False, "description": "azure: gpt"},
                "tracks": {"toolcall": {"verdict": "keep_hosted"}},
            }
        )
    )
    assert cli(["report"]).exit_code == 0
    record(
        "verdict", check_command(verdict, ["report"], mutations(verdict.read_bytes(), 7, False), workspace)
    )


def test_journals(workspace: Path, evaluated: Callable[[], None]) -> None:
    """A journal damaged in any way is resumed as far as it is sound; the run then ends with every example
    exactly once and the summary of an uninterrupted run."""
    from slm_swap.runs import Journal, read_run

    clean = read_run(Path("05_eval/hosted.json"))
    journal = Path("05_eval/again.json.journal")
    Journal(Path("05_eval/again.json"), clean.meta).rewrite({r.id: r for r in clean.results[:5]})
    good = journal.read_bytes()
    tally = Tally()
    for what, damaged in mutations(good, seed=8, jsonl=True):
        Path("05_eval/again.json").unlink(missing_ok=True)
        journal.write_bytes(damaged)
        result = cli([*RESUME, "preds.jsonl"])
        assert result.exit_code == 0, f"journal ({what}): {result.output}"
        resumed = read_run(Path("05_eval/again.json"))
        assert [r.id for r in resumed.results] == [r.id for r in clean.results], what
        assert resumed.summary == clean.summary, what
        assert not journal.exists()
        tally.cases += 1
        tally.exit_0 += 1
    record("journal", tally)


def test_adapter_cards(workspace: Path, tiny_adapter: Path, tiny_model: Path, prepared: Any) -> None:
    adapter = Path(shutil.copytree(tiny_adapter, "adapter"))
    card = adapter / "slm_swap_adapter.json"
    card.write_text(
        json.dumps({"format": "slm-swap.adapter/1", "adapter_files_sha256": "ab" * 32, "interrupted": False})
    )
    argv = [
        "eval",
        "--track",
        "toolcall",
        "--model-kind",
        "slm",
        "--model-path",
        str(tiny_model),
        "--adapter",
        "adapter",
    ]
    argv += ["--max-new-tokens", "2", "--force", "--out", "05_eval/ft.json"]
    record(
        "adapter card",
        check_command(card, argv, mutations(card.read_bytes(), 9, False, per_kind=2), workspace),
    )
