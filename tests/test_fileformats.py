"""File formats are written through the types that read them: files written by the code of the earlier
formats (`data/formats_v1`: a `run` on the tiny model, and split rows) still read, and are written again
as they were; the verdict file is read whole, and the report gives each track the verdict it holds."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from slm_swap.compare import read_decision
from slm_swap.errors import InputError
from slm_swap.fileformats import checked
from slm_swap.files import jsonl_text, write_json
from slm_swap.report import Pricing, load, write_report
from slm_swap.runs import read_run, write_run
from slm_swap.scoring.metrics import Summary
from slm_swap.train.card import read_card
from slm_swap.types import Example, ExampleResult, Usage
from slm_swap.verdict import Verdict, VerdictHeader, read_verdict, verdict_of

from .conftest import DATA

FORMATS_V1 = DATA / "formats_v1"
EVAL = Path("05_eval")


@pytest.fixture
def written_by_v1(workspace: Path) -> Path:
    """A workspace as `run` left it with the code of verdict format /1 (both tracks, one fine-tuned)."""
    shutil.copytree(FORMATS_V1, workspace, dirs_exist_ok=True)
    return workspace


def as_json(value: object) -> object:
    return json.loads(json.dumps(value))


def test_run_files_of_the_earlier_code_read_and_are_written_as_they_were(written_by_v1: Path) -> None:
    paths = sorted(EVAL.glob("*_test.json"))
    assert len(paths) == 5
    for path in paths:
        before = json.loads(path.read_text())
        del before["sha256"]
        run = read_run(path)
        assert as_json(run.to_json()) == before, path
        assert checked(before["summary"], Summary) == run.summary
        write_run(Path("again.json"), run)
        again = read_run(Path("again.json"))
        assert (again.meta, again.results, again.summary) == (run.meta, run.results, run.summary)


def test_decision_files_and_cards_of_the_earlier_code_are_written_as_they_were(written_by_v1: Path) -> None:
    paths = sorted(EVAL.glob("*decision.json"))
    assert len(paths) == 3
    for path in paths:
        assert as_json(read_decision(path).to_json()) == json.loads(path.read_text()), path
    card = Path("04_ft/adapter_structured/slm_swap_adapter.json")
    assert as_json(read_card(card).to_json()) == json.loads(card.read_text())
    unfinished = replace(read_card(card), adapter_files_sha256=None).to_json()
    assert "adapter_files_sha256" not in unfinished and unfinished["format"] == "slm-swap.adapter/1"


def test_a_decision_made_before_the_protocol_setting_reads_as_prompt(written_by_v1: Path) -> None:
    path = EVAL / "toolcall_decision.json"
    data = json.loads(path.read_text())
    for side in ("hosted", "slm"):
        del data[side]["protocol"]
    path.write_text(json.dumps(data))
    decision = read_decision(path)
    assert (decision.hosted.protocol, decision.slm.protocol) == ("prompt", "prompt")


def test_split_rows_are_written_byte_for_byte_as_before() -> None:
    lines = (FORMATS_V1 / "split_rows.jsonl").read_text().splitlines(keepends=True)
    examples = [checked(json.loads(line), Example) for line in lines]
    assert [bool(e.turns) for e in examples] == [False, True, False]
    assert [e.labelled_by for e in examples] == ["", "gpt-test", "gpt-test"]
    assert [jsonl_text([e.to_json()]) for e in examples] == lines


def test_fields_at_their_default_are_left_out_and_read_back() -> None:
    result = ExampleResult("r1", "text", None, {"ast_match": 1.0}, None, None, 0.5, Usage(3, 4))
    written = result.to_json()
    assert "replaced_surrogates" not in written and written["usage"] == {
        "prompt_tokens": 3,
        "completion_tokens": 4,
    }
    unusual = replace(result, usage=Usage(known=False), replaced_surrogates=2)
    written = unusual.to_json()
    assert written["replaced_surrogates"] == 2 and written["usage"]["known"] is False
    assert checked(as_json(written), ExampleResult) == unusual
    assert checked(as_json(result.to_json()), ExampleResult) == result


def test_a_number_that_is_not_finite_is_refused_when_written(written_by_v1: Path) -> None:
    run = read_run(EVAL / "toolcall_slm_test.json")
    broken = replace(run, results=[replace(run.results[0], latency_s=math.nan), *run.results[1:]])
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_run(Path("broken.json"), broken)
    decision = read_decision(EVAL / "toolcall_decision.json")
    with pytest.raises(ValueError, match="not JSON compliant"):
        write_json(Path("broken.json"), replace(decision, delta=math.inf).to_json())
    assert not Path("broken.json").exists()


def test_a_verdict_file_of_format_1_is_read_for_the_run_as_a_whole(written_by_v1: Path) -> None:
    path = EVAL / "verdict.json"
    verdict = read_verdict(path)
    assert not isinstance(verdict, Verdict) and isinstance(verdict, VerdictHeader)
    assert verdict.hosted.description == "azure: gpt-test" and verdict.delta == 0.01
    data = json.loads(path.read_text())
    del data["protocols"]  # a verdict written before the protocol setting
    data["tracks"] = {"toolcall": {"verdict": "keep_hosted"}}  # tracks are not read from /1
    path.write_text(json.dumps(data))
    assert read_verdict(path).protocols == {"hosted": "prompt", "slm": "prompt"}


def test_a_verdict_file_is_written_and_read_whole(written_by_v1: Path) -> None:
    path = EVAL / "verdict.json"
    verdict = checked(json.loads(path.read_text()), Verdict)  # a /1 file as `run` wrote it is whole
    write_json(path, verdict.to_json())
    written = json.loads(path.read_text())
    assert written["format"] == "slm-swap.verdict/2"
    track = written["tracks"]["toolcall"]
    assert track["says"] == "not settled (leaning: swap now)" and track["rows_needed"] == 395
    assert track["summary"]["hosted"]["ast_match"] == 0.0 and track["summary"]["slm"]["examples"] == 4
    assert read_verdict(path) == verdict
    del written["protocols"]  # format /2 always names them
    path.write_text(json.dumps(written))
    with pytest.raises(InputError, match="protocols"):
        read_verdict(path)


def test_the_report_gives_each_track_the_verdict_of_the_verdict_file(written_by_v1: Path) -> None:
    pages = write_report(EVAL, Pricing())
    from_v1 = (pages.html.read_bytes(), pages.markdown.read_bytes())
    _, tracks = load(EVAL)  # /1: each track's verdict worked out from its decisions, as `run` did
    for t in tracks:
        ft = t.decisions.get("slm_ft")
        assert (t.verdict, t.reason) == verdict_of(t.decisions["slm"], ft)[:2]

    path = EVAL / "verdict.json"
    verdict = checked(json.loads(path.read_text()), Verdict)
    write_json(path, verdict.to_json())
    pages = write_report(EVAL, Pricing())
    assert (pages.html.read_bytes(), pages.markdown.read_bytes()) == from_v1  # the same verdicts, read

    said = replace(verdict.tracks["toolcall"], verdict="keep_hosted", leaning=None, reason="as run said")
    write_json(path, replace(verdict, tracks={**verdict.tracks, "toolcall": said}).to_json())
    _, tracks = load(EVAL)
    toolcall = next(t for t in tracks if t.track == "toolcall")
    assert (toolcall.verdict, toolcall.reason, toolcall.says) == (
        "keep_hosted",
        "as run said",
        "keep the hosted model",
    )
    page = write_report(EVAL, Pricing()).markdown.read_text()
    assert "| toolcall | **keep the hosted model** | as run said |" in page
