"""`slm-swap prepare`: splits from xLAM and BFCL, determinism, smoke resampling, bad input."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from slm_swap import settings
from slm_swap.data.sources import SOURCES, sample_path
from tests.cli import cli
from tests.conftest import DATA, xlam_row

SPLIT_FILES = [
    f"02_dataset/{t}/{s}.jsonl" for t in ("structured", "toolcall") for s in ("train", "val", "test")
]


def prepare(*args: str) -> object:
    return cli(["prepare", *args])


def ids(path: str) -> list[str]:
    return [json.loads(line)["id"] for line in Path(path).read_text().splitlines()]


def digest(paths: list[str]) -> str:
    return hashlib.sha256(b"".join(Path(p).read_bytes() for p in paths)).hexdigest()


def test_shipped_sample_gives_six_disjoint_deterministic_splits(workspace: Path) -> None:
    result = prepare()
    assert result.exit_code == 0, result.output
    assert "shipped xLAM-format sample" in result.output
    assert [len(ids(p)) for p in SPLIT_FILES] == [32, 8, 8, 32, 8, 8]
    train, val, test = (set(ids(f"02_dataset/toolcall/{s}.jsonl")) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert ids("02_dataset/structured/test.jsonl") == ids("02_dataset/toolcall/test.jsonl")
    first = digest(SPLIT_FILES)
    assert prepare().exit_code == 0
    assert digest(SPLIT_FILES) == first
    row = json.loads(Path("02_dataset/toolcall/train.jsonl").read_text().splitlines()[0])
    assert {"id", "prompt", "completion", "tools", "gold", "acceptable", "system", "track"} <= set(row)
    assert row["completion"].startswith("<tool_call name=")
    structured = json.loads(Path("02_dataset/structured/train.jsonl").read_text().splitlines()[0])
    assert json.loads(structured["completion"])["calls"]


def test_seed_and_sizes_change_the_sample(workspace: Path) -> None:
    assert prepare("--train-size", "10", "--val-size", "2", "--test-size", "3").exit_code == 0
    assert [len(ids(p)) for p in SPLIT_FILES[:3]] == [10, 2, 3]
    before = ids("02_dataset/toolcall/train.jsonl")
    assert prepare("--train-size", "10", "--val-size", "2", "--test-size", "3", "--seed", "7").exit_code == 0
    assert ids("02_dataset/toolcall/train.jsonl") != before


def test_jsonl_input_works(workspace: Path, write_xlam: Callable[..., Path]) -> None:
    path = write_xlam([xlam_row(i) for i in range(12)], name="x.jsonl", jsonl=True)
    result = prepare("--dataset-path", str(path), "--train-size", "6", "--val-size", "3", "--test-size", "3")
    assert result.exit_code == 0, result.output
    assert sorted(
        ids("02_dataset/structured/train.jsonl")
        + ids("02_dataset/structured/val.jsonl")
        + ids("02_dataset/structured/test.jsonl")
    ) == sorted(f"xlam-{i}" for i in range(12))


GOOD = [xlam_row(i) for i in range(60)]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "the file is empty"),
        ("[" + json.dumps(xlam_row(0)) + ',\n{"id": 1, "query": oops}]', "line 2 column"),
        (json.dumps(GOOD)[:-400], "not valid JSON"),
        (
            json.dumps([*GOOD[:5], {k: v for k, v in xlam_row(5).items() if k != "answers"}, *GOOD[6:]]),
            "row 5: missing field(s) answers",
        ),
        (
            json.dumps([*GOOD[:7], xlam_row(7, tools=json.loads(xlam_row(7)["tools"])), *GOOD[8:]]),
            'row 7: "tools" is a list, not a JSON-encoded string',
        ),
        (
            json.dumps(
                [*GOOD[:3], xlam_row(3, answers=json.dumps([{"name": "fly", "arguments": {}}])), *GOOD[4:]]
            ),
            "row 3: answer 0 calls 'fly', which is not among the offered tools",
        ),
        (json.dumps(GOOD[:20]), "has 20 usable rows (20 read, 0 skipped); the splits need 48"),
        (json.dumps([*GOOD[:2], xlam_row(1)]), "id 'xlam-1' also appears at row 1"),
    ],
)
def test_bad_input_is_named_exits_2_and_writes_nothing(workspace: Path, content: str, expected: str) -> None:
    path = workspace / "bad.json"
    path.write_text(content)
    result = prepare("--dataset-path", str(path))
    assert result.exit_code == 2, result.output
    assert f"{path}" in result.output and expected in result.output, result.output
    assert "Traceback" not in result.output
    assert not Path("02_dataset").exists()


def test_bad_jsonl_line_is_named(workspace: Path) -> None:
    path = workspace / "bad.jsonl"
    path.write_text(json.dumps(xlam_row(0)) + "\n" + json.dumps(xlam_row(1))[:30] + "\n")
    result = prepare("--dataset-path", str(path))
    assert result.exit_code == 2 and f"{path}:2: not valid JSON" in result.output


def test_bad_input_leaves_earlier_splits_untouched(workspace: Path) -> None:
    assert prepare().exit_code == 0
    before = digest(SPLIT_FILES)
    Path("bad.json").write_text(json.dumps(GOOD[:10]))
    assert prepare("--dataset-path", "bad.json").exit_code == 2
    assert digest(SPLIT_FILES) == before


def test_skip_invalid_skips_and_counts(workspace: Path, write_xlam: Callable[..., Path]) -> None:
    rows = [*GOOD[:50], xlam_row(50, tools="not json"), xlam_row(51, query="")]
    result = prepare("--dataset-path", str(write_xlam(rows)), "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "52 rows read, 2 skipped" in result.output
    assert "skipped row 50" in result.output


def test_bfcl_category_from_data_folder(workspace: Path) -> None:
    for category in ("simple_python", "multiple", "parallel", "parallel_multiple"):
        result = prepare(
            "--source",
            "bfcl",
            "--dataset-path",
            str(DATA / "bfcl"),
            "--bfcl-category",
            category,
            "--train-size",
            "8",
            "--val-size",
            "4",
            "--test-size",
            "4",
            "--out-dir",
            category,
        )
        assert result.exit_code == 0, result.output
        rows = [json.loads(x) for x in Path(f"{category}/toolcall/train.jsonl").read_text().splitlines()]
        assert all(r["id"].startswith(f"bfcl-{category}_") and r["source"] == "bfcl" for r in rows)
    parallel = [json.loads(x) for x in Path("parallel/toolcall/train.jsonl").read_text().splitlines()]
    assert all(len(r["gold"]) > 1 for r in parallel)


def test_bfcl_unknown_category_is_refused(workspace: Path) -> None:
    result = prepare(
        "--source", "bfcl", "--dataset-path", str(DATA / "bfcl"), "--bfcl-category", "multi_turn_base"
    )
    assert result.exit_code == 2 and "unknown BFCL category 'multi_turn_base'" in result.output


def test_every_source_kind_is_read_by_one_entry() -> None:
    assert tuple(SOURCES) == settings.SOURCES


def test_out_dir_is_the_one_name_of_the_folder_prepare_writes(workspace: Path) -> None:
    refused = prepare("--dataset-dir", "elsewhere")
    assert refused.exit_code == 2 and "No such option '--dataset-dir'" in refused.output
    assert prepare("--out-dir", "elsewhere").exit_code == 0
    assert Path("elsewhere/toolcall/test.jsonl").is_file() and not Path("02_dataset").exists()


def test_smoke_resamples_fresh_rows_and_keeps_the_old_test_split(workspace: Path) -> None:
    assert prepare().exit_code == 0
    used = set(ids("02_dataset/toolcall/train.jsonl")) | set(ids("02_dataset/toolcall/val.jsonl"))
    old_test = Path("02_dataset/toolcall/test.jsonl").read_text()
    result = prepare("--smoke")
    assert result.exit_code == 0, result.output
    structured, toolcall = ids("02_dataset/structured/test.jsonl"), ids("02_dataset/toolcall/test.jsonl")
    assert len(structured) == len(toolcall) == 50
    assert not set(structured) & set(toolcall)
    assert not (set(structured) | set(toolcall)) & used
    kept = sorted(Path("02_dataset/toolcall").glob("test.*.jsonl"))
    assert len(kept) == 1 and kept[0].read_text() == old_test
    assert "kept the earlier split as" in result.output
    again = prepare("--smoke")  # same fresh rows: nothing new to keep
    assert again.exit_code == 0 and "kept the earlier split" not in again.output


def test_sample_is_large_and_varied_enough() -> None:
    rows = json.loads(sample_path().read_text())
    assert len(rows) >= 150
    answers = [json.loads(r["answers"]) for r in rows]
    tools = [json.loads(r["tools"]) for r in rows]
    assert sum(len(a) > 1 for a in answers) >= 20  # parallel calls
    assert sum(len(t) > 1 for t in tools) >= 20  # several tools offered
    assert any(not r["query"].isascii() for r in rows)  # unicode
    types = {spec["type"] for ts in tools for t in ts for spec in t["parameters"].values()}
    assert {"int", "float", "bool"} <= types and any("List[" in t for t in types)
    assert any("optional" in t.lower() for t in types)
