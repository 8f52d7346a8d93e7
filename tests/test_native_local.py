"""The native protocol on a local checkpoint: its own chat template renders the tools and its answer is
read in the template's tool format (`templates.py`). The templates in tests/data/templates are written for
these tests after each family's published template; the model is the tiny one built from a config."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from slm_swap import protocol
from slm_swap.errors import ConfigError
from slm_swap.files import read_examples
from slm_swap.local import templates
from slm_swap.runs import read_run
from slm_swap.scoring.metrics import score
from slm_swap.types import Completion, Example
from tests.cli import cli

from .verdicts import ruled, run_exit_code

TEMPLATES = Path(__file__).parent / "data" / "templates"
# Where each family's template puts the tools, and how its answers write one call and two.
WHERE_TOOLS = {
    "hermes": "<tools>\n",
    "phi4": "<|tool|>[",
    "mistral": "[AVAILABLE_TOOLS] [",
    "llama3": "Given the following functions",
}


def written(family: str, calls: list[tuple[str, dict[str, object]]]) -> str:
    """Calls written the way `family`'s template teaches them."""
    if family == "hermes":
        return "\n".join(
            f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>" for n, a in calls
        )
    listed = json.dumps([{"name": n, "arguments": a} for n, a in calls])
    if family == "phi4":
        return f"<|tool_call|>{listed}<|/tool_call|>"
    if family == "mistral":
        return f"[TOOL_CALLS] {listed}"
    return "; ".join(json.dumps({"name": n, "parameters": a}) for n, a in calls)


@pytest.fixture(scope="module")
def family_models(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny model once per family, its tokenizer carrying that family's chat template."""
    models = {}
    for family in WHERE_TOOLS:
        path = tmp_path_factory.mktemp(family) / f"tiny-{family}"
        shutil.copytree(tiny_model, path)
        (path / "chat_template.jinja").write_text((TEMPLATES / f"{family}.jinja").read_text())
        models[family] = path
    return models


@pytest.fixture(scope="module")
def calling_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Tiny models of other seeds (2 and 3) which, asked with tools under a grammar, often prefer a call's
    opening to the no-call reply (the seed-0 model never does): with them the constrained tests see both
    kinds of answer in every family."""
    from tests.conftest import build_tiny_model

    models: dict[str, list[Path]] = {family: [] for family in WHERE_TOOLS}
    for seed in (2, 3):
        base = build_tiny_model(tmp_path_factory.mktemp("calling") / f"tiny-calling-{seed}", seed=seed)
        for family in WHERE_TOOLS:
            path = tmp_path_factory.mktemp(family) / f"tiny-calling-{seed}-{family}"
            shutil.copytree(base, path)
            (path / "chat_template.jinja").write_text((TEMPLATES / f"{family}.jinja").read_text())
            models[family].append(path)
    return models


def answer_natively(server: object) -> None:
    """The stand-in server answers each toolcall test row's request, asked natively, with its gold calls."""
    from tests.openai_server import FakeOpenAIServer

    assert isinstance(server, FakeOpenAIServer)
    for e in read_examples(Path("02_dataset/toolcall/test.jsonl")):
        calls = [protocol.RawCall(c.name, json.dumps(c.arguments)) for c in e.gold]
        server.answers[e.query] = {"tool_calls": protocol.openai_calls(calls)}


def run_hermes(family_models: dict[str, Path], *asked: str) -> str:
    """`slm-swap run` on the toolcall track with the tiny Hermes-template model, asked as `asked` says
    (`--protocol native`, `--both-protocols`); its output."""
    from tests.test_pipeline import SMALL, TRAIN

    model = ["--model-path", str(family_models["hermes"])]
    result = cli(["run", *model, *SMALL, *TRAIN, "--tracks", "toolcall", *asked])
    assert result.exit_code == run_exit_code(), result.output
    return result.output


def sample_row(prepared: list[Example]) -> Example:
    return next(e for e in prepared if len(e.gold) == 1)


@pytest.mark.parametrize("family", list(WHERE_TOOLS))
def test_each_family_renders_the_tools_and_reads_its_answers(
    family: str, family_models: dict[str, Path], prepared: list[Example]
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(family_models[family])
    assert templates.family_of(tokenizer, family) == family
    example = sample_row(prepared)
    prompt = templates.render(
        tokenizer, protocol.native_messages(example), protocol.openai_tools(example.tools)
    )
    assert WHERE_TOOLS[family] in prompt and example.tools[0].name in prompt and example.query in prompt
    assert "<tool_call name=" not in prompt  # none of slm-swap's own format

    gold = example.gold[0]
    one = templates.read(family, written(family, [(gold.name, gold.arguments)]))
    two = templates.read(family, written(family, [(gold.name, gold.arguments), ("other", {"x": 1})]))
    assert [c.name for c in two.calls] == [gold.name, "other"]  # parallel calls
    answer = protocol.answer_text("toolcall", one.calls, one.content)
    assert score(example, Completion(answer)).metrics["ast_match"] == 1.0
    structured = next(
        e for e in read_examples(Path("02_dataset/structured/test.jsonl")) if e.id == example.id
    )
    assert (
        score(structured, Completion(protocol.answer_text("structured", one.calls, one.content))).metrics[
            "exact_match"
        ]
        == 1.0
    )

    # No call: the reply is the no-call answer. A broken call is a failed call, never an abstention.
    reply = templates.read(family, "I cannot do that with these tools.")
    no_call = score(example, Completion(protocol.answer_text("toolcall", reply.calls, reply.content)))
    assert reply.calls == () and no_call.error_category == "missed_call"
    broken = written(family, [(gold.name, gold.arguments)])[:-7]  # cut off, as by the token limit
    cut = templates.read(family, broken)
    result = score(example, Completion(protocol.answer_text("toolcall", cut.calls, cut.content)))
    assert cut.calls and result.metrics["ast_match"] == 0.0, (family, broken, cut)
    assert result.error_category in ("invalid_format", "wrong_tool", "wrong_value"), result


def test_a_template_that_cannot_render_tools_is_refused_with_its_fix(
    prepared: list[Example], tiny_model: Path
) -> None:
    """The embedded SmolLM2's template (which the tiny model carries) has no tool format."""
    result = cli(
        [
            "eval",
            "--track",
            "toolcall",
            "--model-kind",
            "slm",
            "--model-path",
            str(tiny_model),
            "--protocol",
            "native",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "cannot render tools" in result.output and "--protocol prompt" in result.output
    assert not Path("05_eval/toolcall_slm_test.json").exists()


def test_an_unknown_tool_format_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}{{ tools | tojson }}"
    with pytest.raises(ConfigError, match="cannot read answers of"):
        templates.family_of(tokenizer, "odd")


def test_native_eval_of_a_local_checkpoint_end_to_end(
    prepared: list[Example], family_models: dict[str, Path]
) -> None:
    """render → generate → read → score through `eval`, free decoding: every row is scored, the run file
    says how it was asked, and a rerun with the prompt protocol is a different run."""
    common = [
        "eval",
        "--track",
        "toolcall",
        "--model-kind",
        "slm",
        "--model-path",
        str(family_models["hermes"]),
    ]
    common += ["--max-new-tokens", "12"]
    result = cli([*common, "--protocol", "native", "--out", "native.json"])
    assert result.exit_code == 0, result.output
    run = read_run(Path("native.json"))
    assert len(run.results) == len(prepared) and all(r.backend_error is None for r in run.results)
    assert run.meta.settings["protocol"] == "native" and run.meta.settings["template_family"] == "hermes"
    assert run.meta.identity()["protocol"] == "native"
    assert all(r.metrics for r in run.results)
    result = cli([*common, "--out", "prompt.json"])
    assert result.exit_code == 0, result.output
    assert "protocol" not in read_run(Path("prompt.json")).meta.identity()


def test_serve_native_renders_with_the_template_and_answers_in_openai_form(
    family_models: dict[str, Path],
) -> None:
    """`serve --protocol native`: a request with tools (and an earlier call and its result) is rendered
    by the model's own template, and the answer comes back in OpenAI's form through the real client."""
    import openai

    from slm_swap.local.engine import Engine
    from slm_swap.serve import Batcher
    from tests.serving import Running
    from tests.test_serve import WEATHER

    batcher = Batcher(Engine(family_models["hermes"], {}), max_batch=4, max_wait_s=0.01)
    asked: list[str] = []
    submit = batcher.submit
    batcher.submit = lambda model, text, *a, **k: asked.append(text) or submit(model, text, *a, **k)  # type: ignore[method-assign]
    running = Running(batcher, api_key=None, family="hermes")
    try:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="none", max_retries=0, timeout=60)
        reply = client.chat.completions.create(
            model="tiny-hermes",
            messages=[
                {"role": "user", "content": "Weather in Oslo?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "3 C"},
                {"role": "user", "content": "And in Bergen?"},
            ],
            tools=[WEATHER],  # type: ignore[list-item]
            max_tokens=8,
        )
        choice = reply.choices[0]
        assert choice.finish_reason in ("stop", "length", "tool_calls")
        assert choice.message.tool_calls or choice.message.content is not None
        (text,) = asked
        assert "<tools>" in text and '"name": "get_weather"' in text  # the template's own tool section
        assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
        assert "<tool_response>\n3 C\n</tool_response>" in text and "Available tools:" not in text
    finally:
        running.stop()


def test_native_answers_become_tool_calls_or_stay_text() -> None:
    from slm_swap.serve.render import native_response
    from slm_swap.types import Usage

    two = written("hermes", [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Bergen"})])
    response = native_response("m", Completion(two, usage=Usage(5, 30)), templates.read("hermes", two), 100)
    choice = response.model_dump()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert [json.loads(c["function"]["arguments"])["city"] for c in choice["message"]["tool_calls"]] == [
        "Oslo",
        "Bergen",
    ]
    broken = two[:-20]
    response = native_response(
        "m", Completion(broken, usage=Usage(5, 30)), templates.read("hermes", broken), 30
    )
    choice = response.model_dump()["choices"][0]
    assert not choice["message"].get("tool_calls") and choice["message"]["content"] == broken
    assert choice["finish_reason"] == "length"


def test_serve_native_on_vllm_names_the_familys_tool_parser(family_models: dict[str, Path]) -> None:
    for family, parser in templates.VLLM_PARSERS.items():
        args = [
            "serve",
            "--engine",
            "vllm",
            "--gpus",
            "1",
            "--dry-run",
            "--model-path",
            str(family_models[family]),
        ]
        result = cli([*args, "--protocol", "native"])
        assert result.exit_code == 0, result.output
        assert f"--enable-auto-tool-choice --tool-call-parser {parser}" in result.output
        assert "--tool-call-parser" not in cli(args).output


def test_run_native_asks_both_sides_natively(azure: object, family_models: dict[str, Path]) -> None:
    """`run --protocol native`: Azure gets the tools through its API, the SLM its own template; the run
    files say so, and the verdict is reached as under the prompt protocol."""
    from tests.openai_server import FakeOpenAIServer

    assert isinstance(azure, FakeOpenAIServer)
    answer_natively(azure)
    output = run_hermes(family_models, "--protocol", "native")
    hosted = read_run(Path("05_eval/toolcall_azure_test.json"))
    assert hosted.meta.settings["protocol"] == "native" and hosted.summary.metrics["ast_match"] == 1.0
    assert all("tools" in r.body and r.body["messages"][0]["role"] == "user" for r in azure.requests)
    slm = read_run(Path("05_eval/toolcall_slm_test.json"))
    assert slm.meta.settings["template_family"] == "hermes" and slm.meta.identity()["protocol"] == "native"
    verdict = json.loads(Path("05_eval/verdict.json").read_text())
    assert ruled(verdict["tracks"]["toolcall"]) in ("keep_hosted", "swap_after_fine_tune")
    assert verdict["protocols"] == {"hosted": "native", "slm": "native"}
    assert "asked: hosted native, slm native" in output
    decision = json.loads(Path("05_eval/toolcall_decision.json").read_text())
    assert decision["hosted"]["protocol"] == decision["slm"]["protocol"] == "native"
    assert slm.meta.protocol == hosted.meta.protocol == "native"
    card = json.loads(Path("04_ft/adapter_toolcall/slm_swap_adapter.json").read_text())
    assert card["hyperparameters"]["protocol"] == "native"  # trained in the format it is asked in
    for report in ("05_eval/report.html", "05_eval/report.md"):
        assert "Asked: the hosted native, the slm native" in Path(report).read_text()


def test_run_native_refuses_a_model_without_a_tool_template_before_any_stage(
    workspace: Path, tiny_model: Path
) -> None:
    result = cli(["run", "--model-path", str(tiny_model), "--protocol", "native"])
    assert result.exit_code == 2, result.output
    assert "cannot render tools" in result.output and "--protocol prompt" in result.output
    assert not Path("02_dataset").exists() and not Path("05_eval").exists()


def with_response_template(model: Path, tmp_path: Path) -> Path:
    """`model` shipping a response template (in its tokenizer_config.json, as a checkpoint ships one)."""
    path = tmp_path / f"{model.name}-rt"
    shutil.copytree(model, path)
    config = json.loads((path / "tokenizer_config.json").read_text())
    config["response_template"] = json.loads((TEMPLATES / "hermes.response.json").read_text())
    (path / "tokenizer_config.json").write_text(json.dumps(config))
    return path


def test_a_checkpoints_response_template_reads_its_answers(
    prepared: list[Example], calling_models: dict[str, list[Path]], tmp_path: Path
) -> None:
    """A tokenizer with a response template: answers are read by `parse_response` (which casts an
    argument to its parameter's type, as the family's own reader does not), constrained decoding still
    uses the family's grammar, and an answer it cannot parse is a failed call, never an abstention."""
    from transformers import AutoTokenizer

    from slm_swap.backends.local import LocalBackend, LocalConfig

    models = [with_response_template(m, tmp_path) for m in calling_models["hermes"]]
    tokenizer = AutoTokenizer.from_pretrained(models[0])
    assert tokenizer.response_template and templates.family_of(tokenizer, "m") == "hermes"
    tools = [
        {
            "type": "function",
            "function": {
                "name": "f",
                "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}},
            },
        }
    ]
    prompt = templates.render(tokenizer, [{"role": "user", "content": "hi"}], tools)
    text = '<tool_call>\n{"name": "f", "arguments": {"n": "7"}}\n</tool_call>'
    assert templates.read("hermes", text, tokenizer, prompt, tools).calls == (
        protocol.RawCall("f", '{"n": 7}'),
    )
    assert templates.read("hermes", text).calls == (protocol.RawCall("f", '{"n": "7"}'),)  # no cast
    assert templates.read("hermes", "Hello there.", tokenizer, prompt, tools) == templates.Reading(
        (), "Hello there."
    )
    cut = templates.read("hermes", text[:-20], tokenizer, prompt, tools)
    example = sample_row(prepared)
    result = score(example, Completion(protocol.answer_text("toolcall", cut.calls, cut.content)))
    assert cut.calls and result.error_category == "invalid_format"

    kinds = set()
    for model, constrained in [(m, c) for m in models for c in (False, True)]:
        backend = LocalBackend(
            LocalConfig(model, protocol="native", constrained=constrained, max_new_tokens=64)
        )
        assert backend.family == "hermes" and backend.describe()["read_by"] == "response_template"
        for example, completion in zip(prepared, backend.complete(prepared), strict=True):
            assert completion.error is None
            kinds.add("call" if completion.text.startswith("<tool_call name=") else "reply")
            if constrained and completion.text.startswith("<tool_call name="):
                offered = {t.name for t in example.tools}
                assert {c["name"] for c in score(example, completion).calls or ()} <= offered
    assert kinds == {"call", "reply"}


def test_a_response_template_of_no_known_family_is_read_but_not_constrained(
    prepared: list[Example], tiny_model: Path, tmp_path: Path
) -> None:
    """A template whose calls no family's grammar knows: asked natively, its answers are read by its
    response template; `--constrained` is refused with the fix."""
    from slm_swap.backends.local import LocalBackend, LocalConfig

    model = with_response_template(tiny_model, tmp_path)
    (model / "chat_template.jinja").write_text(
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if tools %}{{ tools | tojson }}{% endif %}<|im_start|>assistant\n"
    )
    backend = LocalBackend(LocalConfig(model, protocol="native", max_new_tokens=8))
    assert backend.family == "response_template"
    assert all(c.error is None for c in backend.complete(prepared[:2]))
    with pytest.raises(ConfigError, match="no family slm-swap has a grammar for") as refused:
        LocalBackend(LocalConfig(model, protocol="native", constrained=True))
    assert "--protocol prompt" in str(refused.value)


def test_native_training_rows_are_written_as_the_template_writes_an_answer(
    prepared: list[Example], family_models: dict[str, Path]
) -> None:
    """Under the native protocol a training row is the conversation and tools as the checkpoint's own
    template renders them, the loss on the answer only, and that answer reads back as the gold calls."""
    from slm_swap.train.sft import TrainConfig, build_trainer

    split = Path("02_dataset/toolcall/train.jsonl")
    config = TrainConfig(
        track="toolcall", train=split, val=Path("02_dataset/toolcall/val.jsonl"), out=Path("04_ft/native"),
        model_path=family_models["hermes"], protocol="native", max_length=4096, batch_size=4,
    )  # fmt: skip
    built = build_trainer(config)
    examples = read_examples(split)
    rows = [built.trainer.train_dataset[i] for i in range(len(examples))]
    for example in examples:
        row = next(r for r in rows if example.query in built.tokenizer.decode(r["input_ids"]))
        ids, labels = row["input_ids"], row["labels"]
        answer = built.tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label != -100])
        prompt = built.tokenizer.decode([t for t, label in zip(ids, labels, strict=True) if label == -100])
        assert "<tools>" in prompt and "Available tools:" not in prompt and prompt.endswith("assistant\n")
        reading = templates.read("hermes", answer.removesuffix("<|im_end|>\n"))
        assert [(c.name, json.loads(c.arguments)) for c in reading.calls] == [
            (c.name, c.arguments) for c in example.gold
        ]
    # The prompt protocol's rows are unchanged: TRL's conversational rows, in slm-swap's own format.
    plain = build_trainer(replace(config, protocol="prompt", out=Path("04_ft/prompt")))
    text = plain.tokenizer.decode(plain.trainer.train_dataset[0]["input_ids"])
    assert "Available tools:" in text and "<tools>" not in text


def test_native_training_refuses_a_template_without_tools(prepared: list[Example], tiny_model: Path) -> None:
    result = cli(["train", "--track", "toolcall", "--model-path", str(tiny_model), "--protocol", "native"])
    assert result.exit_code == 2, result.output
    assert "cannot render tools" in result.output and not Path("04_ft").exists()


def test_run_both_decides_under_prompt_and_reports_each_side_asked_both_ways(
    azure: object, family_models: dict[str, Path]
) -> None:
    from tests.openai_server import FakeOpenAIServer

    assert isinstance(azure, FakeOpenAIServer)
    answer_natively(azure)
    output = run_hermes(family_models, "--both-protocols")
    assert "asked both ways" in output
    runs = {
        name: read_run(Path(f"05_eval/toolcall_{name}_test.json"))
        for name in ("azure", "slm", "azure_native", "slm_native")
    }
    assert [runs[n].meta.protocol for n in runs] == ["prompt", "prompt", "native", "native"]
    assert (
        runs["azure"].summary.metrics["ast_match"] == runs["azure_native"].summary.metrics["ast_match"] == 1.0
    )
    verdict = json.loads(Path("05_eval/verdict.json").read_text())
    assert verdict["protocols"] == {"hosted": "prompt", "slm": "prompt"}  # decided under prompt
    assert verdict["tracks"]["toolcall"]["runs"]["slm_native"] == "05_eval/toolcall_slm_native_test.json"
    assert json.loads(Path("05_eval/toolcall_decision.json").read_text())["slm"]["protocol"] == "prompt"
    card = json.loads(Path("04_ft/adapter_toolcall/slm_swap_adapter.json").read_text())
    assert "protocol" not in card["hyperparameters"]  # the fine-tune is in the format decided under
    html = Path("05_eval/report.html").read_text()
    assert "Asked two ways: prompt and native" in html and "id='formats-toolcall'" in html
    md = Path("05_eval/report.md").read_text()
    slm_prompt = runs["slm"].summary.metrics["ast_match"]
    slm_native = runs["slm_native"].summary.metrics["ast_match"]
    row = next(line for line in md.splitlines() if line.startswith("| ast_match | 1.000 | 1.000 |"))
    assert f"| {slm_prompt:.3f} | {slm_native:.3f} |" in row


def test_both_is_runs_own_setting_not_a_protocol(prepared: list[Example], tiny_model: Path) -> None:
    """`--protocol` is prompt or native in every command; asking each side both ways is `run
    --both-protocols`, which decides under prompt and so refuses `--protocol native` beside it."""
    eval_ = ["eval", "--track", "toolcall", "--model-kind", "slm", "--model-path", str(tiny_model)]
    for command in (
        eval_,
        ["train", "--track", "toolcall"],
        ["serve", "--model-path", str(tiny_model)],
        ["run"],
    ):
        result = cli([*command, "--protocol", "both"])
        assert result.exit_code == 2 and "'both' is not one of 'prompt', 'native'" in result.output
    result = cli(["run", "--both-protocols", "--protocol", "native"])
    assert result.exit_code == 2 and "--both-protocols decides under --protocol prompt" in result.output
    assert not Path("04_ft").exists() and not Path("05_eval").exists()


@pytest.mark.parametrize("family", list(WHERE_TOOLS))
def test_constrained_native_answers_are_calls_in_the_familys_format_or_a_reply(
    family: str,
    family_models: dict[str, Path],
    calling_models: dict[str, list[Path]],
    prepared: list[Example],
) -> None:
    """Grammar-constrained decoding in each template's own format, with the stop rules: the random tiny
    models' answers are well-formed native calls of offered tools (read back by the family's reader) or a
    plain reply, never anything else, unless the token limit cut a call."""
    from slm_swap.backends.local import LocalBackend, LocalConfig
    from slm_swap.local.callformats import CALL_FORMATS

    native = CALL_FORMATS[family]
    kinds = set()
    answers = []
    for model in (family_models[family], *calling_models[family]):
        backend = LocalBackend(LocalConfig(model, protocol="native", constrained=True, max_new_tokens=96))
        answers += list(zip(prepared, backend.complete(prepared), strict=True))
    for example, completion in answers:
        assert completion.error is None
        result = score(example, completion)
        offered = {t.name for t in example.tools}
        # Cut by the token limit, or stopped early looping (stop rule 3: a unit repeated to the end).
        looped = re.search(r"(.{1,16}?)\1{6,}(</tool_call>)?$", completion.text, re.S)
        cut = completion.usage.completion_tokens >= 96 or looped is not None
        if completion.text.startswith("<tool_call name="):  # read as calls
            kinds.add("call")
            assert {c["name"] for c in result.calls or ()} <= offered
            # Malformed only where the token limit cut it, or a number overflows a float (the grammar
            # allows any exponent; JSON here, as in scoring, does not).
            overflow = re.search(r"\d[eE][+-]?\d{3,}", completion.text)
            assert result.error_category != "invalid_format" or cut or overflow, (family, completion.text)
        elif result.error_category == "missed_call":  # a reply: no call
            kinds.add("reply")
            assert native.first[0] not in completion.text
        else:
            assert cut, (family, completion.text, result.error_category)
    assert kinds == {"call", "reply"}, (family, kinds)
    assert backend.decoding.startswith("greedy, grammar-constrained")


def test_serve_native_constrained_round_trips_a_tool_call(calling_models: dict[str, list[Path]]) -> None:
    """`serve --protocol native --constrained`: under the template's own grammar the answer to
    `tool_choice: auto` is a call or a reply; a call reaches the client as tool_calls. (The tool takes no
    arguments: a random model writing a string would loop until stopped, and a cut call comes back as
    text.)"""
    import openai

    from slm_swap.local.engine import Engine
    from slm_swap.serve import Batcher
    from tests.serving import Running

    ping = {
        "type": "function",
        "function": {
            "name": "ping",
            "description": "Ping.",
            "parameters": {"type": "object", "properties": {}},
        },
    }

    running = Running(
        Batcher(Engine(calling_models["hermes"][1], {}, kernels=True), max_batch=4, max_wait_s=0.01),
        api_key=None,
        constrained=True,
        family="hermes",
    )
    try:
        client = openai.OpenAI(base_url=running.url + "/v1", api_key="none", max_retries=0, timeout=60)
        seen = set()
        for question in (
            "Weather in Oslo?",
            "Weather in Paris?",
            "Tell me a joke.",
            "Hello",
            "Rome?",
            "Bergen",
        ):
            reply = client.chat.completions.create(
                model=calling_models["hermes"][1].name,
                messages=[{"role": "user", "content": question}],
                tools=[ping],  # type: ignore[list-item]
                max_tokens=48,
            )
            choice = reply.choices[0]
            if choice.message.tool_calls:
                seen.add("call")
                (call,) = choice.message.tool_calls[:1]
                assert choice.finish_reason == "tool_calls" and call.function.name == "ping"
                assert json.loads(call.function.arguments) == {}
            else:
                seen.add("text")
                assert choice.message.content is not None and (
                    "<" not in choice.message.content or choice.finish_reason == "length"
                )
        assert "call" in seen, (seen, reply)
    finally:
        running.stop()
