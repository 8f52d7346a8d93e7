"""Settings and the workspace defined once: every command takes the same folder options, with the same
variables and defaults, and finds and writes its files through them."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from slm_swap import settings
from slm_swap.cli import main
from slm_swap.settings import Setting
from tests.cli import cli

from .test_eval_replay import write_predictions

SHARED = [v for v in vars(settings).values() if isinstance(v, Setting)]


def commands(group: click.Group = main) -> list[click.Command]:
    found: list[click.Command] = []
    for command in group.commands.values():
        found += commands(command) if isinstance(command, click.Group) else [command]
    return found


def test_a_shared_setting_means_the_same_in_every_command() -> None:
    by_envvar = {s.envvar: s for s in SHARED if s.envvar}
    seen = 0
    for command in commands():
        for param in command.params:
            if isinstance(param, click.Option) and param.envvar in by_envvar:
                setting = by_envvar[str(param.envvar)]
                assert param.default == setting.default, (command.name, param.name)
                assert setting.flag in param.opts or param.opts[0] == "--out-dir", (command.name, param.opts)
                seen += 1
    assert seen > 20
    folder_commands = {"eval", "infer", "live", "smoke", "train", "compare", "run", "launch"}
    for command in commands():
        flags = {opt for p in command.params for opt in getattr(p, "opts", ())}
        if command.name in folder_commands:
            assert {"--dataset-dir", "--ft-dir", "--eval-dir"} <= flags, command.name


def test_every_command_honours_the_folder_variables(
    workspace: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLM_SWAP_DATASET_DIR", "data")
    monkeypatch.setenv("SLM_SWAP_EVAL_DIR", "evals")
    monkeypatch.setenv("SLM_SWAP_FT_DIR", "adapters")
    sizes = ["--train-size", "4", "--val-size", "2", "--test-size", "8"]
    assert cli(["prepare", *sizes]).exit_code == 0
    assert Path("data/toolcall/test.jsonl").is_file() and not Path("02_dataset").exists()
    from slm_swap.files import read_examples

    examples = read_examples(Path("data/toolcall/test.jsonl"))
    write_predictions(examples, Path("good.jsonl"))
    write_predictions(examples, Path("bad.jsonl"), wrong=4)
    replay = ["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions"]
    assert cli([*replay, "good.jsonl"]).exit_code == 0
    assert Path("evals/toolcall_replay_test.json").is_file()
    assert cli([*replay, "bad.jsonl", "--out", "evals/slm.json"]).exit_code == 0
    compare = [
        "compare",
        "--track",
        "toolcall",
        "--azure",
        "evals/toolcall_replay_test.json",
        "--slm",
        "evals/slm.json",
    ]
    assert cli(compare).exit_code == 10
    assert json.loads(Path("evals/toolcall_decision.json").read_text())["fine_tune"] is True
    assert cli(["report"]).exit_code == 0 and Path("evals/report.html").is_file()
    train = ["train", "--track", "toolcall", "--model-path", str(tiny_model)]
    too_short = cli([*train, "--max-length", "64"])
    assert too_short.exit_code == 2 and "data/toolcall/train.jsonl: no row keeps" in too_short.output
    trained = cli(train)
    assert trained.exit_code == 0, trained.output
    card = json.loads(Path("adapters/adapter_toolcall/slm_swap_adapter.json").read_text())
    assert card["train"] == "data/toolcall/train.jsonl"
    plan = cli(["launch", "--strategy", "parallel", "--gpus", "4", "--dry-run"])
    assert "data/structured/train.jsonl" in plan.output and "adapters/adapter_toolcall" in plan.output
    assert not any(Path(p).exists() for p in ("02_dataset", "04_ft", "05_eval"))


def test_what_is_set_aside_keeps_its_suffix_and_never_replaces_an_earlier_one(tmp_path: Path) -> None:
    from slm_swap.workspace import set_aside

    split = tmp_path / "test.jsonl"
    names = []
    for content in ("first", "second"):  # twice within one second
        split.write_text(content)
        names.append(set_aside(split))
    assert not split.exists() and [p.read_text() for p in names] == ["first", "second"]
    assert all(p.name.startswith("test.") and p.suffix == ".jsonl" for p in names)
    folder = tmp_path / "adapter_toolcall"
    folder.mkdir()
    kept = set_aside(folder)
    assert kept.is_dir() and kept.name.startswith("adapter_toolcall.") and kept.name.endswith("Z")


def test_a_flag_means_one_thing_in_every_command() -> None:
    """A flag taken by several commands has one type, variable and default everywhere, with no exception
    (a command may offer fewer of its choices: the model kinds it can ask)."""
    by_flag: dict[str, list[tuple[str, click.Option]]] = {}
    for command in commands():
        for param in command.params:
            if isinstance(param, click.Option):
                for flag in param.opts:
                    by_flag.setdefault(flag, []).append((str(command.name), param))
    shared = {flag: uses for flag, uses in by_flag.items() if len(uses) > 1}
    assert {"--batch-size", "--train-batch-size", "--api-key", "--constrained", "--track"} <= set(shared)
    for flag, uses in shared.items():
        first = uses[0][1]
        for name, param in uses[1:]:
            assert type(param.type) is type(first.type), (flag, name)
            assert (param.envvar, param.default, param.is_flag) == (
                first.envvar,
                first.default,
                first.is_flag,
            ), (
                flag,
                name,
            )
            if isinstance(param.type, click.Choice) and isinstance(first.type, click.Choice):
                assert set(param.type.choices) <= set(first.type.choices) or set(first.type.choices) <= set(
                    param.type.choices
                ), (flag, name)
    serve = next(c for c in commands() if c.name == "serve")
    serve_flags = {opt for p in serve.params for opt in getattr(p, "opts", ())}
    assert "--api-key" not in serve_flags and "--adapter" not in serve_flags  # the client's key; a path
    train = next(c for c in commands() if c.name == "train")
    assert "--batch-size" not in {opt for p in train.params for opt in getattr(p, "opts", ())}
