"""The shipped xLAM sample is exactly what `scripts/make_xlam_sample.py` writes from `scripts/xlam_sample/`,
so the data and the file cannot drift apart; and the generator refuses data that would write a bad row."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from slm_swap.data.sources import sample_path
from slm_swap.errors import SlmSwapError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_xlam_sample.py"


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_xlam_sample", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_generator_writes_the_shipped_sample_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "xlam_sample.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {out} (600 rows" in done.stdout
    assert out.read_bytes() == sample_path().read_bytes(), (
        "the shipped sample is not what scripts/xlam_sample/ gives: run scripts/make_xlam_sample.py"
    )


def _row_with_an_int_argument() -> dict[str, Any]:
    for row in json.loads(sample_path().read_text(encoding="utf-8")):
        (answer, *more) = json.loads(row["answers"])
        ints = [k for k, v in answer["arguments"].items() if type(v) is int and str(v) in row["query"]]
        if not more and ints:
            return dict(row)
    raise AssertionError("the sample has no single call with an int argument")


def _call_a_tool_not_offered(row: dict[str, Any]) -> None:
    answers = json.loads(row["answers"])
    answers[0]["name"] = "launch_rocket"
    row["answers"] = json.dumps(answers)


def _pass_a_string_for_an_int(row: dict[str, Any]) -> None:
    answers = json.loads(row["answers"])
    param = next(k for k, v in answers[0]["arguments"].items() if type(v) is int)
    answers[0]["arguments"][param] = "seven"
    row["query"] += " seven"
    row["answers"] = json.dumps(answers)


def _leave_a_value_unsaid(row: dict[str, Any]) -> None:
    value = next(v for v in json.loads(row["answers"])[0]["arguments"].values() if type(v) is int)
    row["query"] = row["query"].replace(str(value), "some")


@pytest.mark.parametrize(
    ("spoil", "said"),
    [
        (_call_a_tool_not_offered, "calls 'launch_rocket', which is not among the offered tools"),
        (_pass_a_string_for_an_int, "'seven' is not of type 'integer'"),
        (_leave_a_value_unsaid, "the query does not state"),
    ],
)
def test_a_bad_row_is_refused_naming_the_row_and_the_fault(
    generator: ModuleType, spoil: Any, said: str
) -> None:
    plan = generator.load_plan()
    row = _row_with_an_int_argument()
    generator.check_row(row, plan)  # as shipped, it passes
    spoil(row)
    with pytest.raises(SlmSwapError) as refused:
        generator.check_row(row, plan)
    assert str(refused.value).startswith(f"row {row['id']}: ") and said in str(refused.value)
    assert "fix: correct the data in scripts/xlam_sample/" in str(refused.value)


def test_a_type_the_schema_does_not_know_is_refused(generator: ModuleType, tmp_path: Path) -> None:
    data = tmp_path / "xlam_sample"
    shutil.copytree(generator.DATA, data)
    family = data / "families" / "math.json"
    family.write_text(family.read_text(encoding="utf-8").replace('"List[float]"', '"Vector[float]"', 1))
    with pytest.raises(
        SlmSwapError, match=r"math.json: tool 'calculate_mean': .* unknown type 'Vector\[float\]'"
    ):
        generator.load_plan(data)
