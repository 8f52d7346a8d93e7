"""`slm-swap label`: the hosted model (a local stand-in server, spoken to by the real openai client) labels
conversations that have no answer; only answers that parse and satisfy the tools' schemas are kept,
with provenance; journal, resume and --force as in `eval`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from slm_swap.data.formats import render_prompt
from slm_swap.data.openai_chat import read_conversation
from slm_swap.files import read_examples
from tests.cli import cli
from tests.openai_server import FakeOpenAIServer, Fault
from tests.test_openai_source import BOOK, WEATHER, answer, call, row, user, write

from .verdicts import run_exit_code


def prompt_of(logged: dict[str, Any]) -> str:
    """The first user message the teacher receives for a logged row (the fake server answers by it)."""
    conversation = read_conversation(logged, "line 1")
    return render_prompt(conversation.query, tuple(conversation.tools.values()))


def unlabelled() -> list[dict[str, Any]]:
    return [
        row(user("Weather in Lyon?"), id="good"),
        row(user("Book Chez Nous for 2"), id="unknown-tool"),
        row(user("Say hi"), id="prose"),
        row(user("Book Chez Nous for nobody"), id="bad-arguments"),
        row(user("Weather in Paris?"), answer(call("get_weather", {"city": "Paris"})), id="answered"),
        row(
            user("Weather in Oslo, then book Fjord for 3 if warm"),
            answer(call("get_weather", {"city": "Oslo"}, "w")),
            {"role": "tool", "tool_call_id": "w", "content": "21°C"},
            id="after-a-tool-result",
        ),
    ]


def teach(server: FakeOpenAIServer, rows: list[dict[str, Any]]) -> None:
    answers = {
        "good": '<tool_call name="get_weather">{"city": "Lyon"}</tool_call>',
        "unknown-tool": '<tool_call name="reserve">{"place": "Chez Nous"}</tool_call>',
        "prose": "Hi there!",
        "bad-arguments": '<tool_call name="book_table">{"restaurant": "Chez Nous", "people": 0}</tool_call>',
        "after-a-tool-result": '<tool_call name="book_table">'
        '{"restaurant": "Fjord", "people": 3}</tool_call>',
    }
    for logged in rows:
        if logged["id"] in answers:
            server.answers[prompt_of(logged)] = answers[logged["id"]]


def label(server: FakeOpenAIServer, *extra: str) -> Any:
    args = ["label", "--input", "log.jsonl", "--out", "labelled.jsonl", "--model-kind", "openai"]
    args += ["--base-url", server.openai_url, "--api-key", "test-key", "--model", "teacher-4o", *extra]
    return cli(args)


def test_answers_that_satisfy_the_tools_become_labels_with_provenance(
    workspace: Path, openai_server: FakeOpenAIServer
) -> None:
    rows = unlabelled()
    write(Path("log.jsonl"), rows)
    teach(openai_server, rows)
    result = label(openai_server)
    assert result.exit_code == 0, result.output
    assert "wrote labelled.jsonl: 3 labelled by teacher-4o, 1 already answered, 2 dropped" in result.output
    assert "dropped 1: calls a tool the row does not offer" in result.output
    # A reply in text is the answer no call: kept as a label, not dropped.
    assert "no call: 1 of the labels are a reply without a tool call" in result.output
    assert "not tool calls in the answer format" not in result.output
    assert "dropped 1: arguments do not satisfy the tool's parameters" in result.output
    # The teacher got the evaluation prompt of the toolcall track, with the row's own turns.
    sent = {r.body["messages"][1]["content"]: r.body for r in openai_server.requests}
    later = sent[prompt_of(rows[5])]["messages"]
    assert [m["role"] for m in later] == ["system", "user", "assistant", "user"]
    assert later[3]["content"] == '<tool_response name="get_weather">21°C</tool_response>'
    assert all(body["temperature"] == 0 and "tools" not in body for body in sent.values())

    text = Path("labelled.jsonl").read_text(encoding="utf-8")
    assert "test-key" not in text
    written = {r["id"]: r for r in map(json.loads, text.splitlines())}
    assert list(written) == ["good", "prose", "answered", "after-a-tool-result"]  # in the input's order
    assert written["prose"]["messages"][-1] == {"role": "assistant", "content": "Hi there!"}
    assert written["answered"] == rows[4]  # passed through unchanged
    good = written["good"]
    assert good["messages"][:-1] == rows[0]["messages"]
    assert good["messages"][-1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city": "Lyon"}',
    }
    provenance = good["metadata"]["slm_swap_label"]
    assert provenance["model"] == "teacher-4o" and provenance["model_kind"] == "openai"
    assert provenance["endpoint"] == openai_server.openai_url and provenance["labelled_at"]
    assert not Path("labelled.jsonl.journal").exists()

    # The labelled file is an --source openai file whose gold says who wrote it.
    sizes = ["--train-size", "1", "--val-size", "0", "--test-size", "3"]
    prepared = cli(["prepare", "--source", "openai", "--dataset-path", "labelled.jsonl", *sizes])
    assert prepared.exit_code == 0, prepared.output
    examples = read_examples(Path("02_dataset/toolcall/test.jsonl")) + read_examples(
        Path("02_dataset/toolcall/train.jsonl")
    )
    by_id = {e.id: e for e in examples}
    assert by_id["openai-good"].labelled_by == "teacher-4o"
    assert by_id["openai-answered"].labelled_by == ""  # the team's own gold
    prose = by_id["openai-prose"]
    assert prose.gold == () and prose.completion == "Hi there!" and prose.labelled_by == "teacher-4o"
    assert by_id["openai-after-a-tool-result"].turns[-1]["content"].startswith("<tool_response")


def test_an_existing_output_is_kept_without_force(workspace: Path, openai_server: FakeOpenAIServer) -> None:
    rows = unlabelled()
    write(Path("log.jsonl"), rows)
    teach(openai_server, rows)
    assert label(openai_server).exit_code == 0
    before = Path("labelled.jsonl").read_bytes()
    again = label(openai_server)
    assert (
        again.exit_code == 2 and "labelled.jsonl already exists" in again.output and "--force" in again.output
    )
    assert Path("labelled.jsonl").read_bytes() == before
    assert label(openai_server, "--force").exit_code == 0


def test_an_interrupted_run_resumes_from_its_journal(
    workspace: Path, openai_server: FakeOpenAIServer
) -> None:
    rows = unlabelled()
    write(Path("log.jsonl"), rows)
    teach(openai_server, rows)
    # The fourth request is refused as if the key were revoked: the run stops (exit 2), nothing written.
    openai_server.faults[prompt_of(rows[3])] = [Fault("status", 401)]
    stopped = label(openai_server, "--concurrency", "1")
    assert stopped.exit_code == 2 and "refused the API key" in stopped.output
    assert not Path("labelled.jsonl").exists() and Path("labelled.jsonl.journal").is_file()
    asked = len(openai_server.requests)
    resumed = label(openai_server, "--concurrency", "1")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed: 3 answers were taken from the journal" in resumed.output
    assert len(openai_server.requests) - asked == 2  # only the two not yet answered
    assert "3 labelled by teacher-4o" in resumed.output


def test_a_failed_request_is_dropped_and_counted(workspace: Path, openai_server: FakeOpenAIServer) -> None:
    rows = unlabelled()[:1]
    write(Path("log.jsonl"), rows)
    teach(openai_server, rows)
    openai_server.faults[prompt_of(rows[0])] = [Fault("status", 500)] * 3
    result = label(openai_server, "--max-retries", "1")
    assert result.exit_code == 0, result.output
    assert "0 labelled by teacher-4o, 0 already answered, 1 dropped" in result.output
    assert "dropped 1: request failed" in result.output


def test_a_malformed_call_is_dropped_never_read_as_no_call(
    workspace: Path, openai_server: FakeOpenAIServer
) -> None:
    rows = unlabelled()[:1]
    write(Path("log.jsonl"), rows)
    openai_server.answers[prompt_of(rows[0])] = 'Sure. <tool_call name="get_weather">{"city": </tool_call>'
    result = label(openai_server)
    assert result.exit_code == 0, result.output
    assert "0 labelled by teacher-4o, 0 already answered, 1 dropped" in result.output
    assert "dropped 1: not tool calls in the answer format" in result.output
    assert Path("labelled.jsonl").read_text() == ""


def test_a_bad_row_is_named_and_nothing_is_asked(workspace: Path, openai_server: FakeOpenAIServer) -> None:
    Path("log.jsonl").write_text(json.dumps(row(user("x"), tools=[WEATHER, BOOK, WEATHER])) + "\n")
    result = label(openai_server)
    assert result.exit_code == 2 and "log.jsonl:line 1: tool 'get_weather' is offered twice" in result.output
    assert openai_server.requests == [] and not Path("labelled.jsonl").exists()


def unlabelled_log_and_azure_teacher(server: FakeOpenAIServer, monkeypatch: Any) -> None:
    """log.jsonl: ten unanswered weather requests; `server` as the Azure deployment that answers them."""
    cities = ["Lyon", "Oslo", "Kyiv", "Lima", "Pune", "Bern", "Nice", "Graz", "Cork", "Riga"]
    rows = [row(user(f"Weather in {city}?"), id=city) for city in cities]
    write(Path("log.jsonl"), rows)
    for logged, city in zip(rows, cities, strict=True):
        server.answers[prompt_of(logged)] = f'<tool_call name="get_weather">{{"city": "{city}"}}</tool_call>'
    monkeypatch.setenv("AZURE_ENDPOINT", server.azure_root)
    monkeypatch.setenv("AZURE_DEPLOYMENT", "gpt-test")
    monkeypatch.setenv("AZURE_API_KEY", "test-key")
    monkeypatch.setenv("AZURE_API_VERSION", "2024-05-01-preview")


def test_a_team_labels_its_traffic_and_runs_the_loop_on_it(
    workspace: Path, openai_server: FakeOpenAIServer, tiny_model: Path, monkeypatch: Any
) -> None:
    """Unlabelled logs → `label` with the hosted model (Azure-shaped stand-in) → `run --source openai`:
    the hosted side scores its own labels, and every place the verdict is shown says it is agreement."""
    unlabelled_log_and_azure_teacher(openai_server, monkeypatch)
    labelled = cli(["label", "--input", "log.jsonl", "--out", "labelled.jsonl", "--model-kind", "azure"])
    assert labelled.exit_code == 0 and "10 labelled by gpt-test" in labelled.output, labelled.output

    argv = ["run", "--source", "openai", "--dataset-path", "labelled.jsonl", "--tracks", "toolcall"]
    argv += ["--model-path", str(tiny_model), "--train-size", "4", "--val-size", "2", "--test-size", "4"]
    argv += ["--max-new-tokens", "8", "--max-length", "512", "--train-batch-size", "2"]
    result = cli(argv)
    assert result.exit_code == run_exit_code(), result.output
    assert "note: the gold answers were written by the hosted model gpt-test" in result.output
    verdict = json.loads(Path("05_eval/verdict.json").read_text())["tracks"]["toolcall"]
    assert verdict["summary"]["hosted"]["ast_match"] == 1.0
    assert "agreement with the hosted model" in verdict["gold"]
    decision = json.loads(Path("05_eval/toolcall_decision.json").read_text())
    assert decision["gold_by"] == "gpt-test"
    assert "agreement with the hosted model" in Path("05_eval/report.md").read_text()
    assert "id='agreement-toolcall'" in Path("05_eval/report.html").read_text()
    compared = cli(
        [
            "compare",
            "--track",
            "toolcall",
            "--azure",
            "05_eval/toolcall_azure_test.json",
            "--slm",
            "05_eval/toolcall_slm_test.json",
        ],
    )
    assert "note: the gold answers were written by the hosted model gpt-test" in compared.output


def test_a_second_labeller_of_the_same_output_stops_naming_the_first(
    workspace: Path, openai_server: FakeOpenAIServer
) -> None:
    """One writer per output: while another holds labelled.jsonl, label exits 2 naming it, asks the
    teacher nothing and writes nothing."""
    from slm_swap.files import one_writer

    write(Path("log.jsonl"), unlabelled())
    with one_writer(Path("labelled.jsonl")):
        result = label(openai_server)
    assert result.exit_code == 2, result.output
    assert f"labelled.jsonl is being written by another slm-swap (pid {os.getpid()})" in result.output
    assert not openai_server.requests and not Path("labelled.jsonl").exists()
    assert not Path("labelled.jsonl.journal").exists()
