"""No call is an answer, on the data side: a team's text answers and BFCL's irrelevance categories become
no-call rows (`--no-call-rows drop` leaves them out, counted), and `--irrelevance-share` makes no-call rows
for the train and val splits from call rows in no split, the way Hammer's xlam-irrelevance set was made."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slm_swap.data import bfcl
from slm_swap.data.formats import NO_CALL_REPLY
from slm_swap.data.nocall import NoCallRules
from slm_swap.data.rows import SourceRow
from slm_swap.data.scan import scan
from slm_swap.data.sources import bfcl_source, sample_path, xlam_source
from slm_swap.data.splits import SplitSizes
from slm_swap.files import read_examples
from slm_swap.runtime import Runtime
from slm_swap.types import Example
from tests.cli import cli
from tests.conftest import DATA, xlam_row
from tests.test_openai_source import answer, call, row, user, write

SPLITS = ("train", "val", "test")
SPLIT_FILES = [f"{t}/{s}.jsonl" for t in ("structured", "toolcall") for s in SPLITS]


def prepare(*args: str) -> Any:
    return cli(["prepare", *args])


def split(track: str, name: str, out_dir: str = "02_dataset") -> list[Example]:
    return read_examples(Path(out_dir, track, f"{name}.jsonl"))


def files_bytes(out_dir: str) -> list[bytes]:
    return [Path(out_dir, p).read_bytes() for p in SPLIT_FILES]


# --- a team's traffic ------------------------------------------------------------------------------------


def traffic() -> list[dict[str, Any]]:
    calls = [
        row(user(f"Weather in City{i}?"), answer(call("get_weather", {"city": f"City{i}"})), id=f"call-{i}")
        for i in range(4)
    ]
    return [
        *calls,
        row(user("Hi!"), {"role": "assistant", "content": "Hello! How can I help?"}, id="small-talk"),
        row(
            user("Book a table"),
            {"role": "assistant", "content": "Which restaurant, and for how many?"},
            id="clarifying",
        ),
        row(user("Translate this"), {"role": "assistant", "content": None}, id="wordless"),
        row(user("Weather in Rome?"), id="unlabelled"),
    ]


def test_a_text_answer_is_a_no_call_row_and_drop_leaves_it_out(workspace: Path) -> None:
    log = str(write(Path("log.jsonl"), traffic()))
    every = ["--source", "openai", "--dataset-path", log, "--train-size", "4", "--val-size", "0"]
    kept = prepare(*every, "--test-size", "3")
    assert kept.exit_code == 0, kept.output
    assert "8 rows read, 0 skipped" in kept.output
    assert "left out 1 row: the conversation ends before the assistant's answer" in kept.output
    toolcall = {e.id: e for s in ("train", "test") for e in split("toolcall", s)}
    structured = {e.id: e for s in ("train", "test") for e in split("structured", s)}
    assert len(toolcall) == 7 and set(toolcall) == set(structured)
    talk = toolcall["openai-small-talk"]
    assert talk.gold == () and talk.acceptable == () and talk.completion == "Hello! How can I help?"
    assert talk.prompt.endswith("User request: Hi!") and len(talk.tools) == 2  # the tools stay offered
    assert toolcall["openai-clarifying"].completion == "Which restaurant, and for how many?"
    assert toolcall["openai-wordless"].completion == NO_CALL_REPLY  # no words of its own
    for row_id in ("openai-small-talk", "openai-clarifying", "openai-wordless"):
        assert structured[row_id].gold == () and structured[row_id].completion == '{"calls": []}'
    assert toolcall["openai-call-0"].completion.startswith('<tool_call name="get_weather">')
    by_kind = [line for line in kept.output.splitlines() if line.startswith("rows by answer:")]
    assert len(by_kind) == 1
    calls, no_calls = 0, 0
    for part in by_kind[0].removeprefix("rows by answer: ").split("; "):
        name, n_call, _, n_no_call, _ = part.replace(",", "").split(" ")
        assert name in SPLITS and int(n_call) + int(n_no_call) == {"train": 4, "val": 0, "test": 3}[name]
        calls, no_calls = calls + int(n_call), no_calls + int(n_no_call)
    assert (calls, no_calls) == (4, 3)
    assert json.loads(Path("02_dataset/prepared.json").read_text())["inputs"]["no_call_rows"] == "keep"

    dropped = prepare(*every, "--test-size", "0", "--no-call-rows", "drop", "--out-dir", "dropped")
    assert dropped.exit_code == 0, dropped.output
    assert "left out 3 rows: the answer is no call (--no-call-rows drop)" in dropped.output
    assert "rows by answer: train 4 call, 0 no-call; val 0 call, 0 no-call; test 0 call, 0 no-call" in (
        dropped.output
    )
    assert {e.id for e in split("toolcall", "train", "dropped")} == {f"openai-call-{i}" for i in range(4)}
    assert json.loads(Path("dropped/prepared.json").read_text())["inputs"]["no_call_rows"] == "drop"
    # Dropping them leaves too few rows for more: the message counts them as left out.
    short = prepare(*every, "--test-size", "1", "--no-call-rows", "drop", "--out-dir", "short")
    assert short.exit_code == 2 and "4 usable rows (8 read, 0 skipped, 4 left out)" in short.output
    assert not Path("short").exists()


def test_a_conversation_offering_no_tool_is_still_refused(workspace: Path) -> None:
    """A row must offer tools, as before: with none, abstaining is the only answer, so it is no example."""
    lines = [row(user("Hi"), {"role": "assistant", "content": "Hello"}, tools=[]), *traffic()[:4]]
    result = prepare("--source", "openai", "--dataset-path", str(write(Path("log.jsonl"), lines)))
    assert result.exit_code == 2 and 'line 1: "tools" must be a non-empty list' in result.output
    assert not Path("02_dataset").exists()


# --- BFCL's irrelevance categories -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("category", "rows", "no_tool"), [("irrelevance", 20, 0), ("live_irrelevance", 16, 4)]
)
def test_bfcl_irrelevance_categories_are_no_call_rows(
    workspace: Path, category: str, rows: int, no_tool: int
) -> None:
    sizes = ["--train-size", "6", "--val-size", "3", "--test-size", "3"]
    result = prepare(
        "--source", "bfcl", "--dataset-path", str(DATA / "bfcl"), "--bfcl-category", category, *sizes
    )
    assert result.exit_code == 0, result.output
    assert f"{rows} rows read, 0 skipped" in result.output
    if no_tool:
        assert f"left out {no_tool} rows: no tool offered" in result.output
    assert (
        "rows by answer: train 0 call, 6 no-call; val 0 call, 3 no-call; test 0 call, 3 no-call"
        in result.output
    )
    for name in SPLITS:
        for example in split("toolcall", name):
            assert example.id.startswith(f"bfcl-{category}_") and example.tools
            assert example.gold == () and example.acceptable == () and example.completion == NO_CALL_REPLY
        assert {e.completion for e in split("structured", name)} == {'{"calls": []}'}


def test_live_relevance_and_unknown_categories_are_refused(workspace: Path) -> None:
    relevance = prepare(
        "--source", "bfcl", "--dataset-path", str(DATA / "bfcl"), "--bfcl-category", "live_relevance"
    )
    assert relevance.exit_code == 2, relevance.output
    assert (
        "'live_relevance' has no gold answer (any well-formed call of an offered function" in relevance.output
    )
    assert "fix: choose one of:" in relevance.output and "live_irrelevance" in relevance.output
    assert not Path("02_dataset").exists()


@pytest.mark.network
def test_every_irrelevance_row_of_the_wheel_converts() -> None:
    wheel = bfcl.fetch_wheel(Runtime.from_env(os.environ).cache_dir)
    irrelevance = scan(bfcl_source(wheel, "irrelevance"), skip_invalid=False)
    assert (irrelevance.rows_read, len(irrelevance.usable), dict(irrelevance.left_out)) == (240, 240, {})
    live = scan(bfcl_source(wheel, "live_irrelevance"), skip_invalid=False)
    assert (live.rows_read, len(live.usable)) == (884, 880)
    assert dict(live.left_out) == {"no tool offered (abstaining is the only possible answer)": 4}
    for category in bfcl.NO_CALL_CATEGORIES:
        for _, question, possible in bfcl.iter_category(wheel, category):
            assert possible is None
            if question["function"]:
                converted = bfcl.convert_row(question, possible)
                assert converted.gold == () and len(converted.tools) == len(question["function"])


# --- --irrelevance-share ---------------------------------------------------------------------------------


def sample_rows() -> dict[str, SourceRow]:
    source = xlam_source(sample_path())
    return {converted.id: converted for _, convert in source.rows() for converted in [convert()]}


def test_irrelevance_share_makes_no_call_rows_for_train_and_val_only(workspace: Path) -> None:
    result = prepare("--irrelevance-share", "0.25")
    assert result.exit_code == 0, result.output
    kinds = "train 24 call, 8 no-call (8 made); val 6 call, 2 no-call (2 made); test 8 call, 0 no-call"
    assert f"rows by answer: {kinds}" in result.output
    source = sample_rows()
    ids: dict[str, list[str]] = {}
    borrowed = 0
    for name, size, made in (("train", 32, 8), ("val", 8, 2), ("test", 8, 0)):
        toolcall, structured = split("toolcall", name), split("structured", name)
        assert [e.id for e in toolcall] == [e.id for e in structured]  # both tracks ask the same rows
        ids[name] = [e.id for e in toolcall]
        assert len(toolcall) == size and len(set(ids[name])) == size
        made_rows = [e for e in toolcall if e.id.endswith("-nocall")]
        assert len(made_rows) == made and sum(1 for e in toolcall if not e.gold) == made
        for example in made_rows:
            original = source[example.id.removesuffix("-nocall")]
            called = {c.name for c in original.gold}
            assert called and not called & {t.name for t in example.tools}  # the called tools are gone
            if original.tool_names - called:  # the rest of its own offer
                assert example.tools == tuple(t for t in original.tools if t.name not in called)
            else:  # it offered only what it calls: another row's offer, none of its names
                assert example.tools and not original.tool_names & {t.name for t in example.tools}
                borrowed += 1
            assert example.query == original.query and example.completion == NO_CALL_REPLY
            assert example.gold == () and example.acceptable == ()
        for example in structured:
            if example.id.endswith("-nocall"):
                assert example.completion == '{"calls": []}'
    every = [i for name in SPLITS for i in ids[name]]
    assert len(every) == len(set(every)) == 48  # no row id in two splits
    made_from = {i.removesuffix("-nocall") for i in every if i.endswith("-nocall")}
    assert len(made_from) == 10 and not made_from & set(every)  # no source row both ways
    assert borrowed  # the sample has single-tool rows, and some were drawn
    manifest = json.loads(Path("02_dataset/prepared.json").read_text())
    assert manifest["inputs"]["irrelevance_share"] == 0.25

    # Reproducible: the same seed gives the same rows, byte for byte; another seed other rows.
    assert prepare("--irrelevance-share", "0.25", "--out-dir", "again").exit_code == 0
    assert files_bytes("again") == files_bytes("02_dataset")
    assert prepare("--irrelevance-share", "0.25", "--seed", "7", "--out-dir", "seven").exit_code == 0
    assert files_bytes("seven") != files_bytes("02_dataset")
    # A share of 0 is no share at all: the splits are those made without the option.
    assert prepare("--out-dir", "plain").exit_code == 0
    assert prepare("--irrelevance-share", "0", "--out-dir", "zero").exit_code == 0
    assert files_bytes("zero") == files_bytes("plain")


def test_the_share_rounds_to_the_nearest_row_a_half_up(workspace: Path) -> None:
    assert NoCallRules(irrelevance_share=0.25).made(32) == 8
    assert NoCallRules(irrelevance_share=0.35).made(10) == 4  # 3.5: a half rounds up, in decimal
    assert NoCallRules(irrelevance_share=0.35).made(8) == 3  # 2.8
    assert NoCallRules(irrelevance_share=0.1).made(4) == 0  # 0.4
    result = prepare(
        "--irrelevance-share", "0.35", "--train-size", "10", "--val-size", "8", "--test-size", "5"
    )
    assert result.exit_code == 0, result.output
    assert (
        "train 6 call, 4 no-call (4 made); val 5 call, 3 no-call (3 made); test 5 call, 0 no-call"
        in result.output
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--irrelevance-share", "1"], "--irrelevance-share must be in [0, 1), got 1.0"),
        (["--irrelevance-share", "1.5"], "--irrelevance-share must be in [0, 1), got 1.5"),
        (["--irrelevance-share", "-0.1"], "--irrelevance-share must be in [0, 1), got -0.1"),
        (
            ["--irrelevance-share", "0.5", "--train-size", "1"],
            "--irrelevance-share 0.5 makes all 1 rows of the train split no-call rows",
        ),
        (
            ["--irrelevance-share", "0.9", "--val-size", "3"],
            "--irrelevance-share 0.9 makes all 3 rows of the val split no-call rows",
        ),
    ],
)
def test_a_bad_share_exits_2_naming_the_option_and_writes_nothing(
    workspace: Path, args: list[str], expected: str
) -> None:
    result = prepare(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "fix:" in result.output and "--irrelevance-share" in result.output
    assert "Traceback" not in result.output
    assert not Path("02_dataset").exists()


def test_too_few_rows_to_make_no_call_rows_from_exit_2(
    workspace: Path, write_xlam: Callable[..., Path]
) -> None:
    sizes = ["--train-size", "8", "--val-size", "0", "--test-size", "2", "--irrelevance-share", "0.5"]
    # 9 rows: 6 go into the splits as they are, 3 are left to make the 4 no-call rows from.
    nine = write_xlam([xlam_row(i) for i in range(9)], name="nine.json")
    result = prepare("--dataset-path", str(nine), *sizes)
    assert result.exit_code == 2, result.output
    assert "has 3 call rows in no split that can become no-call rows" in result.output
    assert "--irrelevance-share 0.5 needs 4" in result.output and "fix:" in result.output
    assert not Path("02_dataset").exists()
    # Rows that offer only the tool they call, all the same tool: no row has another offer to lend.
    one_tool = json.dumps([json.loads(xlam_row(0)["tools"])[0]])
    lonely = write_xlam([xlam_row(i, tools=one_tool) for i in range(12)], name="lonely.json")
    result = prepare("--dataset-path", str(lonely), *sizes)
    assert result.exit_code == 2 and "has 0 call rows in no split that can become" in result.output
    assert "other tools to borrow" in result.output
    assert prepare("--dataset-path", str(lonely), *sizes[:-2]).exit_code == 0  # without a share: fine


def single_tool_row(i: int, tool: str) -> dict[str, Any]:
    spec = {
        "name": tool,
        "description": f"Tool {tool}.",
        "parameters": {"q": {"type": "str", "description": "Q"}},
    }
    answers = [{"name": tool, "arguments": {"q": f"x{i}"}}]
    return xlam_row(i, tools=json.dumps([spec]), answers=json.dumps(answers), query=f"Ask {tool} about x{i}")


def test_a_row_offering_only_what_it_calls_borrows_the_offer_of_a_row_in_no_split(
    workspace: Path, write_xlam: Callable[..., Path]
) -> None:
    # 40 rows, each offering only the one tool it calls, its own (tool_i): a made row is offered another
    # row's tool, and that row (its donor) is in no split, so no split's tools leak into another's.
    rows = [single_tool_row(i, f"tool_{i}") for i in range(40)]
    path = write_xlam(rows, name="single.json")
    sizes = ["--train-size", "12", "--val-size", "4", "--test-size", "4", "--irrelevance-share", "0.25"]
    result = prepare("--dataset-path", str(path), *sizes)
    assert result.exit_code == 0, result.output
    assert "train 9 call, 3 no-call (3 made); val 3 call, 1 no-call (1 made)" in result.output
    by_id = {f"xlam-{r['id']}": r for r in rows}
    split_ids = {e.id for name in SPLITS for e in split("toolcall", name)}
    made = [e for name in ("train", "val") for e in split("toolcall", name) if e.id.endswith("-nocall")]
    assert len(made) == 4
    for example in made:
        original = by_id[example.id.removesuffix("-nocall")]
        own = json.loads(original["tools"])[0]["name"]
        offered = [t.name for t in example.tools]
        assert offered and own not in offered and example.gold == ()
        assert example.query == original["query"] and example.completion == NO_CALL_REPLY
        assert example.id.removesuffix("-nocall") not in split_ids
        assert len(offered) == 1 and offered[0].replace("tool_", "xlam-") not in split_ids  # the donor
    # Seeded: the same rows and the same borrowed offers again, byte for byte.
    assert prepare("--dataset-path", str(path), *sizes, "--out-dir", "again").exit_code == 0
    assert files_bytes("again") == files_bytes("02_dataset")
    manifest = json.loads(Path("02_dataset/prepared.json").read_text())
    assert manifest["inputs"]["made_rows"] == "called tools removed, else a donor's tools"


def test_run_redoes_the_splits_when_a_no_call_rule_changes(workspace: Path) -> None:
    from slm_swap.pipeline import Pipeline
    from slm_swap.run_config import RunConfig, RunSettings
    from slm_swap.tracing import NullTracer

    said: list[str] = []

    def prepare_with(no_call: NoCallRules) -> None:
        options = RunConfig(run=RunSettings(tracks=("toolcall",)), sizes=SplitSizes(8, 4, 4), no_call=no_call)
        Pipeline(options, NullTracer(), said.append).prepare()

    prepare_with(NoCallRules(irrelevance_share=0.25))
    assert said[-1].startswith("prepare: train 8, val 4, test 4 rows (no call: train 2, val 1, test 0)")
    prepare_with(NoCallRules(irrelevance_share=0.25))
    assert said[-1] == "prepare: splits in 02_dataset kept (inputs unchanged)"
    prepare_with(NoCallRules(irrelevance_share=0.5))
    assert "prepare: splits in 02_dataset redone (changed: irrelevance share)" in said[-2]
    assert said[-1].startswith("prepare: train 8, val 4, test 4 rows (no call: train 4, val 2, test 0)")
    prepare_with(NoCallRules(no_call_rows="drop", irrelevance_share=0.5))
    assert "redone (changed: no call rows)" in said[-2]


def test_run_makes_no_call_rows_from_single_tool_rows_and_redoes_splits_of_the_old_rule(
    workspace: Path, write_xlam: Callable[..., Path]
) -> None:
    from slm_swap.pipeline import Pipeline
    from slm_swap.run_config import RunConfig, RunSettings, SourceSettings
    from slm_swap.tracing import NullTracer

    said: list[str] = []
    path = write_xlam([single_tool_row(i, f"tool_{i}") for i in range(40)], name="single.json")
    options = RunConfig(
        run=RunSettings(tracks=("toolcall",)),
        source=SourceSettings(dataset_path=path),
        sizes=SplitSizes(8, 4, 4),
        no_call=NoCallRules(irrelevance_share=0.25),
    )
    Pipeline(options, NullTracer(), said.append).prepare()  # the stage `run` starts with
    assert said[-1].startswith("prepare: train 8, val 4, test 4 rows (no call: train 2, val 1, test 0)")
    made = [e for e in split("toolcall", "train") if e.id.endswith("-nocall")]
    assert len(made) == 2 and all(e.tools[0].name != f"tool_{e.id.split('-')[1]}" for e in made)  # borrowed
    # Splits made before donors existed record no `made_rows`: `run` prepares them again.
    manifest_path = Path("02_dataset/prepared.json")
    manifest = json.loads(manifest_path.read_text())
    del manifest["inputs"]["made_rows"]
    manifest_path.write_text(json.dumps(manifest))
    Pipeline(options, NullTracer(), said.append).prepare()
    assert "prepare: splits in 02_dataset redone" in said[-2], said
    assert json.loads(manifest_path.read_text())["inputs"]["made_rows"]
    Pipeline(options, NullTracer(), said.append).prepare()
    assert said[-1] == "prepare: splits in 02_dataset kept (inputs unchanged)"


def test_run_takes_the_no_call_options(workspace: Path) -> None:
    result = cli(["run", "--help"])
    assert "--no-call-rows [keep|drop]" in result.output and "--irrelevance-share FLOAT" in result.output
