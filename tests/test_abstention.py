"""No call is an answer, from the split to the decision: a model that calls a tool on every turn is marked
down on the rows whose right answer is no call, and `compare`, the verdict and the report say so."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slm_swap.compare import read_decision
from slm_swap.files import read_examples
from slm_swap.runs import read_run
from slm_swap.types import Example
from tests.cli import cli

from .openai_server import FakeOpenAIServer
from .test_openai_source import answer, call, row, user, write


def traffic() -> list[dict[str, Any]]:
    """Six weather requests and four turns whose right answer is no call."""
    calls = [
        row(user(f"Weather in City{i}?"), answer(call("get_weather", {"city": f"City{i}"})), id=f"call-{i}")
        for i in range(6)
    ]
    replies = ["Hello!", "Which restaurant?", "I can only check weather and book tables.", "You're welcome."]
    no_calls = [
        row(user(f"turn {i}"), {"role": "assistant", "content": text}, id=f"talk-{i}")
        for i, text in enumerate(replies)
    ]
    return [*calls, *no_calls]


def predictions(examples: list[Example], path: Path, *, always_call: bool) -> Path:
    """Each row's gold answer; with `always_call`, a call of the first tool where the answer is no call."""
    rows = []
    for e in examples:
        output = e.completion
        if always_call and not e.gold:
            output = '<tool_call name="get_weather">{"city": "Paris"}</tool_call>'
        rows.append({"id": e.id, "output": output})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def eval_replay(predictions: Path, out: str) -> Any:
    args = ["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions", str(predictions)]
    return cli([*args, "--out", out])


def test_a_model_that_always_calls_trails_on_abstention_and_is_told_to_fine_tune(workspace: Path) -> None:
    log = write(Path("log.jsonl"), traffic())
    sizes = ["--train-size", "0", "--val-size", "0", "--test-size", "10"]
    prepared = cli(["prepare", "--source", "openai", "--dataset-path", str(log), *sizes])
    assert prepared.exit_code == 0, prepared.output
    examples = read_examples(Path("02_dataset/toolcall/test.jsonl"))
    assert sum(not e.gold for e in examples) == 4

    assert (
        eval_replay(predictions(examples, Path("h.jsonl"), always_call=False), "05_eval/h.json").exit_code
        == 0
    )
    slm_eval = eval_replay(predictions(examples, Path("s.jsonl"), always_call=True), "05_eval/s.json")
    assert slm_eval.exit_code == 0, slm_eval.output
    assert "abstention (core)" in slm_eval.output

    hosted, slm = read_run(Path("05_eval/h.json")), read_run(Path("05_eval/s.json"))
    # Call metrics stay over the six call rows (all right on both sides); abstention is over the four others.
    assert hosted.summary.metrics["ast_match"] == slm.summary.metrics["ast_match"] == 1.0
    assert hosted.summary.metrics["abstention"] == 1.0 and slm.summary.metrics["abstention"] == 0.0
    assert slm.summary.metrics["unwanted_call"] == 1.0 and slm.summary.metrics["missed_call"] == 0.0
    assert {r.error_category for r in slm.results if r.id.startswith("openai-talk")} == {"unwanted_call"}

    args = ["compare", "--track", "toolcall", "--azure", "05_eval/h.json", "--slm", "05_eval/s.json"]
    decided = cli(args)
    assert decided.exit_code == 10, decided.output  # FINE_TUNE=1: on abstention alone
    assert "FINE_TUNE=1" in decided.output and "abstention" in decided.output
    decision = read_decision(Path("05_eval/toolcall_decision.json"))
    by_metric = {m.metric: m for m in decision.metrics}
    assert [m.metric for m in decision.metrics if m.trails] == ["abstention"]
    assert by_metric["abstention"].rows == 4 and by_metric["abstention"].hosted_only == 4
    assert by_metric["ast_match"].rows == 6  # the call rows
    assert json.loads(Path("05_eval/toolcall_decision.json").read_text())["core_metrics"][-1] == "abstention"

    Path("05_eval/toolcall_slm_test.json").write_bytes(Path("05_eval/s.json").read_bytes())
    Path("05_eval/toolcall_azure_test.json").write_bytes(Path("05_eval/h.json").read_bytes())
    report = cli(["report"])
    assert report.exit_code == 0, report.output
    page = Path("05_eval/report.html").read_text()
    assert "<td>abstention</td>" in page and "unwanted_call" in page
    assert "data-keep='nocall'" in page and page.count("data-nocall='1'") == 4


def test_no_call_rows_are_scored_from_every_backend(
    workspace: Path, tiny_model: Path, openai_server: FakeOpenAIServer
) -> None:
    """The hosted client (a stand-in server answering each row's gold), and the local model free and
    constrained: every no-call row gets the abstention metrics, every call row the call metrics."""
    log = write(Path("log.jsonl"), traffic())
    sizes = ["--train-size", "0", "--val-size", "0", "--test-size", "10"]
    assert cli(["prepare", "--source", "openai", "--dataset-path", str(log), *sizes]).exit_code == 0
    examples = {e.id: e for e in read_examples(Path("02_dataset/toolcall/test.jsonl"))}
    for e in examples.values():
        openai_server.answers[e.prompt] = e.completion
    hosted = ["--model-kind", "openai", "--base-url", openai_server.openai_url, "--api-key", "test-key"]
    local = ["--model-kind", "slm", "--model-path", str(tiny_model), "--max-new-tokens", "12"]
    for name, args in (
        ("hosted", [*hosted, "--model", "fake"]),
        ("free", local),
        ("constrained", [*local, "--constrained"]),
    ):
        done = cli(["eval", "--track", "toolcall", *args, "--out", f"{name}.json"])
        assert done.exit_code == 0, (name, done.output)
        run = read_run(Path(f"{name}.json"))
        for r in run.results:
            expected = (
                {"abstention", "unwanted_call"} if not examples[r.id].gold else {"ast_match", "call_f1"}
            )
            assert expected <= set(r.metrics), (name, r.id, r.metrics)
        assert "abstention" in run.summary.metrics
        if name == "hosted":  # the gold answers: every row right, every no-call row an abstention
            assert run.summary.metrics["abstention"] == run.summary.metrics["ast_match"] == 1.0
        if name == "constrained":  # a call (perhaps cut by the token limit) or a reply, as the grammar allows
            opening = '<tool_call name="'
            bad = [
                r.output
                for r in run.results
                if "<" in r.output and not (r.output.startswith(opening) or opening.startswith(r.output))
            ]
            assert not bad, bad


def test_no_call_rows_train_like_any_other_with_the_no_call_answer_as_completion(
    workspace: Path, tiny_model: Path
) -> None:
    """`prepare --irrelevance-share` puts no-call rows in the train split; the trainer learns their
    completion (the no-call answer) and nothing of their prompt, as for a call row."""
    from slm_swap.data.formats import NO_CALL_REPLY
    from slm_swap.train.sft import TrainConfig, build_trainer

    sizes = ["--train-size", "8", "--val-size", "4", "--test-size", "0", "--irrelevance-share", "0.5"]
    assert cli(["prepare", *sizes]).exit_code == 0
    for track, no_call in (("toolcall", NO_CALL_REPLY), ("structured", '{"calls": []}')):
        rows = read_examples(Path(f"02_dataset/{track}/train.jsonl"))
        assert sum(not e.gold for e in rows) == 4
        config = TrainConfig(
            track=track,
            train=Path(f"02_dataset/{track}/train.jsonl"),
            val=Path(f"02_dataset/{track}/val.jsonl"),
            out=Path(f"04_ft/{track}"),
            model_path=tiny_model,
            max_length=1024,
        )
        built = build_trainer(config)
        learnt = []
        for item in built.trainer.train_dataset:
            tokens = [t for t, label in zip(item["input_ids"], item["labels"], strict=True) if label != -100]
            learnt.append(built.tokenizer.decode(tokens))
        assert sum(text == no_call + "<|im_end|>\n" for text in learnt) == 4, learnt


def test_a_split_of_no_call_rows_only_is_evaluated_on_abstention(workspace: Path) -> None:
    """BFCL's irrelevance rows, every answer no call: a run has the no-call metrics and none of the call
    metrics (it used to fail looking up format_valid), on both tracks."""
    data = Path(__file__).parent / "data" / "bfcl"
    sizes = ["--train-size", "0", "--val-size", "0", "--test-size", "5"]
    prepare = ["prepare", "--source", "bfcl", "--dataset-path", str(data), "--bfcl-category", "irrelevance"]
    assert cli([*prepare, *sizes]).exit_code == 0
    for track, always in (
        ("toolcall", '<tool_call name="x">{}</tool_call>'),
        ("structured", '{"calls": []}'),
    ):
        examples = read_examples(Path(f"02_dataset/{track}/test.jsonl"))
        answers = Path(f"{track}.jsonl")
        answers.write_text("".join(json.dumps({"id": e.id, "output": always}) + "\n" for e in examples))
        args = ["eval", "--track", track, "--model-kind", "replay", "--predictions", str(answers)]
        done = cli([*args, "--out", f"{track}.json"])
        assert done.exit_code == 0, done.output
        summary = read_run(Path(f"{track}.json")).summary
        abstained = 0.0 if track == "toolcall" else 1.0
        assert (
            summary.metrics["abstention"] == abstained and summary.metrics["unwanted_call"] == 1 - abstained
        )
        assert not {"format_valid", "json_valid", "ast_match", "exact_match"} & set(summary.metrics)
