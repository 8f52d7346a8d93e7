"""Langfuse datasets: `prepare --source langfuse` (paged reading through the real SDK client),
`prepare --to-langfuse`, and every eval on such a split becoming a dataset run. The server is the
stand-in receiver (a fake that speaks Langfuse's public API and OTLP), driven by the real SDK."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from slm_swap.files import read_examples
from tests.cli import cli
from tests.conftest import DATA
from tests.langfuse_receiver import LangfuseReceiver
from tests.openai_server import FakeOpenAIServer
from tests.test_openai_source import BOOK, WEATHER, call, user

from .verdicts import run_exit_code


def item(i: int, **extra: Any) -> dict[str, Any]:
    city = f"City{i}"
    return {
        "id": f"item-{i}",
        "input": {"messages": [user(f"Weather in {city}?")], "tools": [WEATHER, BOOK]},
        "expectedOutput": {"tool_calls": [call("get_weather", {"city": city})]},
        **extra,
    }


@pytest.fixture
def langfuse(
    workspace: Path, langfuse_receiver: LangfuseReceiver, monkeypatch: pytest.MonkeyPatch
) -> LangfuseReceiver:
    monkeypatch.setenv("LANGFUSE_HOST", langfuse_receiver.url)
    monkeypatch.setenv("LANGFUSE_SECRET_KEY", "sk-lf-secret")
    fresh_key(monkeypatch)
    return langfuse_receiver


def fresh_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK keeps one client per public key per process; each traced command here gets its own key.
    monkeypatch.setenv("LANGFUSE_PUBLIC_KEY", f"pk-lf-{secrets.token_hex(4)}")


def prepare(*args: str) -> Any:
    return cli(["prepare", *args])


def test_a_dataset_is_read_page_by_page_into_both_tracks(langfuse: LangfuseReceiver) -> None:
    items = [item(i) for i in range(57)]
    items[3] = item(3, expectedOutput=[call("get_weather", {"city": "City3"})])  # the calls as a list
    items[4] = item(
        4, expectedOutput={"role": "assistant", "tool_calls": [call("get_weather", {"city": "C"})]}
    )
    items[5] = item(5, expectedOutput=None)  # no answer yet
    items[6] = item(6, status="ARCHIVED")
    langfuse.add_dataset("support-traffic", items)
    sizes = ["--train-size", "40", "--val-size", "5", "--test-size", "10"]
    result = prepare("--source", "langfuse", "--langfuse-dataset", "support-traffic", *sizes)
    assert result.exit_code == 0, result.output
    assert "57 rows read, 0 skipped" in result.output
    assert "left out 1 row: the conversation ends before the assistant's answer" in result.output
    assert "left out 1 row: archived in Langfuse" in result.output
    pages = [r.query["page"] for r in langfuse.requests if r.path == "/api/public/dataset-items"]
    assert pages == [["1"], ["2"]]  # 50 items a page
    examples = {
        e.id: e
        for s in ("train", "val", "test")
        for e in read_examples(Path(f"02_dataset/toolcall/{s}.jsonl"))
    }
    assert len(examples) == 55 and "langfuse-item-5" not in examples and "langfuse-item-6" not in examples
    if "langfuse-item-4" in examples:
        assert examples["langfuse-item-4"].gold[0].arguments == {"city": "C"}
    manifest = json.loads(Path("02_dataset/prepared.json").read_text())
    assert manifest["inputs"]["source"]["kind"] == "langfuse"
    assert manifest["inputs"]["source"]["dataset"] == "support-traffic"
    assert "sk-lf-secret" not in Path("02_dataset/prepared.json").read_text()


def test_bad_items_and_a_missing_dataset_or_key_are_named(
    langfuse: LangfuseReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = ["--train-size", "1", "--val-size", "0", "--test-size", "0"]
    langfuse.add_dataset("bad", [item(1, expectedOutput={"tool_calls": [call("send_mail", {})]}), item(2)])
    result = prepare("--source", "langfuse", "--langfuse-dataset", "bad", *sizes)
    assert result.exit_code == 2
    assert "langfuse dataset 'bad':item item-1: messages[1].tool_calls[0] calls 'send_mail'" in result.output
    langfuse.add_dataset("odd", [item(1, expectedOutput="get_weather(City1)")])
    odd = prepare("--source", "langfuse", "--langfuse-dataset", "odd", *sizes)
    assert odd.exit_code == 2 and "expectedOutput is not tool calls" in odd.output
    missing = prepare("--source", "langfuse", "--langfuse-dataset", "nope", *sizes)
    assert missing.exit_code == 2 and "langfuse dataset 'nope': no such dataset" in missing.output
    assert prepare("--source", "langfuse", *sizes).exit_code == 2
    monkeypatch.delenv("LANGFUSE_SECRET_KEY")
    keyless = prepare("--source", "langfuse", "--langfuse-dataset", "bad", *sizes)
    assert keyless.exit_code == 2 and "LANGFUSE_SECRET_KEY" in keyless.output
    assert not Path("02_dataset").exists()


def test_a_prepared_split_goes_to_langfuse_and_comes_back_the_same(langfuse: LangfuseReceiver) -> None:
    sizes = ["--train-size", "4", "--val-size", "2", "--test-size", "6"]
    sent = prepare(*sizes, "--to-langfuse", "from-sample")
    assert sent.exit_code == 0, sent.output
    assert "wrote 6 items of the test split to Langfuse dataset 'from-sample'" in sent.output
    assert len(langfuse.items["from-sample"]) == 6
    original = read_examples(Path("02_dataset/toolcall/test.jsonl"))
    again = prepare(
        "--source",
        "langfuse",
        "--langfuse-dataset",
        "from-sample",
        "--out-dir",
        "back",
        "--train-size",
        "0",
        "--val-size",
        "0",
        "--test-size",
        "6",
    )
    assert again.exit_code == 0, again.output
    back = {e.id.removeprefix("langfuse-"): e for e in read_examples(Path("back/toolcall/test.jsonl"))}
    for example in original:
        returned = back[example.id]
        assert returned.messages() == example.messages() and returned.completion == example.completion
        assert returned.gold == example.gold
    # Uploading again replaces items of the same id rather than adding duplicates.
    assert prepare(*sizes, "--to-langfuse", "from-sample").exit_code == 0
    assert len(langfuse.items["from-sample"]) == 6
    onto_itself = prepare(
        "--source", "langfuse", "--langfuse-dataset", "from-sample", "--to-langfuse", "from-sample",
        "--train-size", "0", "--val-size", "0", "--test-size", "6",
    )  # fmt: skip
    assert onto_itself.exit_code == 2 and "is the dataset the rows come from" in onto_itself.output
    assert len(langfuse.items["from-sample"]) == 6


def test_no_call_answers_are_rows_and_go_to_langfuse_and_back_the_same(langfuse: LangfuseReceiver) -> None:
    """An item whose answer is no call (a reply with no tool call) is a no-call row; a prepared no-call row
    (with its own reply, or BFCL's without one) uploads as such and reads back to the same example."""
    from slm_swap.data.formats import NO_CALL_REPLY

    talk = {"messages": [user("Hi!")], "tools": [WEATHER, BOOK]}
    thanks = {"messages": [user("Thanks")], "tools": [WEATHER, BOOK]}
    items = [
        *(item(i) for i in range(2)),
        {"id": "talk", "input": talk, "expectedOutput": {"tool_calls": [], "content": "Hello!"}},
        {"id": "thanks", "input": thanks, "expectedOutput": {"role": "assistant", "content": "Welcome."}},
    ]
    langfuse.add_dataset("chat", items)
    every = ["--train-size", "0", "--val-size", "0", "--test-size", "4"]
    sent = prepare("--source", "langfuse", "--langfuse-dataset", "chat", *every, "--to-langfuse", "copy")
    assert sent.exit_code == 0, sent.output
    first = {e.id: e for e in read_examples(Path("02_dataset/toolcall/test.jsonl"))}
    assert first["langfuse-talk"].gold == () and first["langfuse-talk"].completion == "Hello!"
    assert first["langfuse-thanks"].gold == () and first["langfuse-thanks"].completion == "Welcome."
    uploaded = {i["id"]: i for i in langfuse.items["copy"]}
    assert uploaded["langfuse-talk"]["expectedOutput"] == {"tool_calls": [], "content": "Hello!"}

    irrelevance = ["--source", "bfcl", "--dataset-path", str(DATA / "bfcl"), "--bfcl-category", "irrelevance"]
    sent = prepare(*irrelevance, *every, "--out-dir", "bfcl", "--to-langfuse", "irrelevant")
    assert sent.exit_code == 0, sent.output
    assert [i["expectedOutput"] for i in langfuse.items["irrelevant"]] == [{"tool_calls": []}] * 4
    for name, out in (("copy", "02_dataset"), ("irrelevant", "bfcl")):
        back = prepare(
            "--source", "langfuse", "--langfuse-dataset", name, *every, "--out-dir", f"back-{name}"
        )
        assert back.exit_code == 0, back.output
        for track in ("toolcall", "structured"):
            original = read_examples(Path(out, track, "test.jsonl"))
            returned = {
                e.id.removeprefix("langfuse-"): e
                for e in read_examples(Path(f"back-{name}/{track}/test.jsonl"))
            }
            for example in original:
                again = returned[example.id]
                assert again.messages() == example.messages() and again.completion == example.completion
                assert again.gold == example.gold
    assert {e.completion for e in read_examples(Path("back-irrelevant/toolcall/test.jsonl"))} == {
        NO_CALL_REPLY
    }


def test_each_eval_on_a_dataset_split_becomes_a_dataset_run(
    langfuse: LangfuseReceiver,
    openai_server: FakeOpenAIServer,
    tiny_model: Path,
    tiny_adapter: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    langfuse.add_dataset("traffic", [item(i) for i in range(6)])
    sizes = ["--train-size", "2", "--val-size", "1", "--test-size", "3"]
    assert prepare("--source", "langfuse", "--langfuse-dataset", "traffic", *sizes).exit_code == 0
    monkeypatch.delenv("LANGFUSE_DISABLED", raising=False)
    tests = read_examples(Path("02_dataset/toolcall/test.jsonl"))
    for example in tests:
        openai_server.answers[example.prompt] = example.completion  # a hosted model that is always right
    hosted = [
        "--model-kind",
        "openai",
        "--base-url",
        openai_server.openai_url,
        "--api-key",
        "test-key",
        "--model",
        "gpt-x",
    ]
    slm = ["--model-kind", "slm", "--model-path", str(tiny_model), "--max-new-tokens", "4"]
    for args in (hosted, slm, [*slm, "--adapter", str(tiny_adapter)]):
        fresh_key(monkeypatch)
        result = cli(["eval", "--track", "toolcall", *args])
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output, result.output

    runs: dict[str, dict[str, str]] = {}  # run name -> item id -> trace id
    for span in langfuse.spans:
        name = span.attr("langfuse.experiment.name")
        if name and span.name == "experiment-item-task":
            runs.setdefault(name, {})[span.attr("langfuse.experiment.item.id")] = span.trace_id
    assert sorted(runs) == [
        "toolcall test · SLM + adapter · tiny-llama",
        "toolcall test · SLM · tiny-llama",
        "toolcall test · hosted (openai) · gpt-x",
    ], sorted(runs)
    item_ids = {e.id.removeprefix("langfuse-") for e in tests}
    dataset_id = langfuse.datasets["traffic"]["id"]
    for name, linked in runs.items():
        assert set(linked) == item_ids, name
        tasks = [
            s
            for s in langfuse.spans
            if s.attr("langfuse.experiment.name") == name and s.name == "experiment-item-task"
        ]
        assert {s.attr("langfuse.experiment.dataset.id") for s in tasks} == {dataset_id}
    hosted_run = runs["toolcall test · hosted (openai) · gpt-x"]
    scores = [
        s
        for s in langfuse.scores
        if s.get("traceId") in set(hosted_run.values()) and s["name"] == "ast_match"
    ]
    assert len(scores) == 3 and all(s["value"] == 1.0 and s.get("observationId") for s in scores)


def test_labelled_traffic_through_langfuse_runs_the_whole_loop_into_dataset_runs(
    langfuse: LangfuseReceiver,
    openai_server: FakeOpenAIServer,
    tiny_model: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new user's path: unlabelled logs → `label` (the hosted model) → a Langfuse dataset (`--to-langfuse`)
    → `run --source langfuse`: the hosted model, the SLM and the SLM + adapter each become a dataset run."""
    from tests.test_label import unlabelled_log_and_azure_teacher

    unlabelled_log_and_azure_teacher(openai_server, monkeypatch)
    assert (
        cli(["label", "--input", "log.jsonl", "--out", "labelled.jsonl", "--model-kind", "azure"]).exit_code
        == 0
    )
    every = ["--train-size", "0", "--val-size", "0", "--test-size", "10", "--out-dir", "upload"]
    sent = prepare(
        "--source", "openai", "--dataset-path", "labelled.jsonl", *every, "--to-langfuse", "traffic"
    )
    assert sent.exit_code == 0 and "wrote 10 items" in sent.output, sent.output

    monkeypatch.delenv("LANGFUSE_DISABLED", raising=False)
    fresh_key(monkeypatch)
    argv = ["run", "--source", "langfuse", "--langfuse-dataset", "traffic", "--tracks", "toolcall"]
    argv += ["--model-path", str(tiny_model), "--train-size", "4", "--val-size", "2", "--test-size", "4"]
    argv += ["--max-new-tokens", "8", "--max-length", "512", "--train-batch-size", "2"]
    result = cli(argv)
    assert result.exit_code == run_exit_code(), result.output
    assert "agreement with the hosted model" in result.output
    names = {s.attr("langfuse.experiment.name") for s in langfuse.spans if s.name == "experiment-item-task"}
    assert names == {
        "toolcall test · hosted (azure) · gpt-test",
        "toolcall test · SLM · tiny-llama",
        "toolcall test · SLM + adapter · tiny-llama",
    }, names
    assert "sk-lf-secret" not in "".join(p.read_text(errors="replace") for p in Path("05_eval").iterdir())


def test_each_item_of_a_dataset_run_has_its_own_trace_whatever_span_is_open(
    langfuse_receiver: LangfuseReceiver,
) -> None:
    """The SDK's experiment runner parents on the thread's current span; a caller's open span must not
    fold every item of every run into one trace."""
    from opentelemetry.sdk.trace import TracerProvider

    from slm_swap.tracing import ItemOutcome, LangfuseSettings, LangfuseTracer

    langfuse_receiver.add_dataset("d", [item(i) for i in range(2)])
    tracer = LangfuseTracer(LangfuseSettings(f"pk-lf-{secrets.token_hex(4)}", "sk", langfuse_receiver.url))
    outer = TracerProvider().get_tracer("caller")
    answers = {f"item-{i}": ItemOutcome("answer", {"ast_match": 1.0}) for i in range(2)}
    with outer.start_as_current_span("an open span") as span:
        for run in ("a", "b"):
            tracer.dataset_run("d", run, answers, description="", metadata={})
        open_trace = format(span.get_span_context().trace_id, "032x")
    assert tracer.flush().delivered
    tracer.close()
    tasks = [s for s in langfuse_receiver.spans if s.name == "experiment-item-task"]
    assert len(tasks) == 4 and len({s.trace_id for s in tasks}) == 4
    assert open_trace not in {s.trace_id for s in tasks}


def test_dataset_run_scores_get_new_ids_even_after_random_is_seeded(
    langfuse_receiver: LangfuseReceiver,
) -> None:
    """The trainer seeds Python's `random` (42) before `run` evaluates the adapter: a dataset run's score ids
    must not follow it, or each run's scores would replace the last one's in Langfuse."""
    import random

    from slm_swap.tracing import DeliveryReport, ItemOutcome, LangfuseSettings, LangfuseTracer

    langfuse_receiver.add_dataset("d", [item(i) for i in range(2)])
    answers = {f"item-{i}": ItemOutcome("answer", {"ast_match": 1.0, "name_match": 1.0}) for i in range(2)}
    for run in ("a", "b"):
        settings = LangfuseSettings(f"pk-lf-{secrets.token_hex(4)}", "sk", langfuse_receiver.url)
        tracer = LangfuseTracer(settings)
        random.seed(42)
        tracer.dataset_run("d", run, answers, description="", metadata={})
        assert tracer.flush() == DeliveryReport(delivered=True, sent=4, failed=0)
        tracer.close()
    tasks = {s.span_id for s in langfuse_receiver.spans if s.name == "experiment-item-task"}
    score_ids = [s["id"] for s in langfuse_receiver.scores]
    assert len(score_ids) == 8 and len(set(score_ids)) == 8
    assert {s["observationId"] for s in langfuse_receiver.scores} == tasks and len(tasks) == 4
