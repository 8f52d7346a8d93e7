"""The local transformers backend on a tiny model built from a real config and the embedded tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from slm_swap.backends.local import LocalBackend, LocalConfig, chat_text
from slm_swap.evaluate import evaluate, run_meta
from slm_swap.protocol import Request
from slm_swap.runs import read_run
from slm_swap.tracing import NullTracer
from slm_swap.types import Example
from tests.cli import cli

SPLIT = Path("02_dataset/toolcall/test.jsonl")


def test_chat_template_renders_system_and_user(tiny_model: Path) -> None:
    backend = LocalBackend(LocalConfig(tiny_model, max_new_tokens=4))
    text = chat_text(
        backend.engine.tokenizer, [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]
    )
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"


def test_batches_are_sorted_by_length_and_results_come_back_in_order(
    prepared: list[Example], tiny_model: Path
) -> None:
    backend = LocalBackend(LocalConfig(tiny_model, batch_size=3, max_new_tokens=6))
    batches = backend.schedule([Request.of(e) for e in prepared])
    assert [len(b) for b in batches] == [3, 3, 2]
    lengths = [
        len(backend.engine.tokenizer(chat_text(backend.engine.tokenizer, list(r.messages)))["input_ids"])
        for b in batches
        for r in b
    ]
    assert lengths == sorted(lengths)
    run = evaluate(
        prepared, backend, run_meta("toolcall", "test", SPLIT, backend), Path("05_eval/a.json"), NullTracer()
    ).run
    assert [r.id for r in run.results] == [e.id for e in prepared]
    assert all(r.usage.prompt_tokens > 100 and 0 < r.usage.completion_tokens <= 6 for r in run.results)
    assert run.meta.settings["device"] == "cpu" and run.meta.settings["precision"] == "float32"
    assert run.meta.settings["engine"] == "transformers"


def test_same_inputs_and_batch_size_give_identical_outputs(prepared: list[Example], tiny_model: Path) -> None:
    first = LocalBackend(LocalConfig(tiny_model, batch_size=4, max_new_tokens=8)).complete(prepared[:4])
    second = LocalBackend(LocalConfig(tiny_model, batch_size=4, max_new_tokens=8)).complete(prepared[:4])
    assert [c.text for c in first] == [c.text for c in second]
    assert any(c.text for c in first)


def test_adapter_changes_the_model_and_is_recorded(
    prepared: list[Example], tiny_model: Path, tiny_adapter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = LocalBackend(LocalConfig(tiny_model, max_new_tokens=8)).complete(prepared[:3])
    adapted = LocalBackend(LocalConfig(tiny_model, adapter=tiny_adapter, max_new_tokens=8)).complete(
        prepared[:3]
    )
    assert [c.text for c in base] != [c.text for c in adapted]
    monkeypatch.setenv("SLM_MODEL_PATH", str(tiny_model))
    result = cli(
        [
            "eval",
            "--track",
            "toolcall",
            "--model-kind",
            "slm",
            "--adapter",
            str(tiny_adapter),
            "--max-new-tokens",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    run = read_run(Path("05_eval/toolcall_slm_ft_test.json"))
    assert run.meta.adapter == str(tiny_adapter) and run.meta.model_kind == "slm"


def test_not_an_adapter_folder(
    prepared: list[Example], tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLM_MODEL_PATH", str(tiny_model))
    Path("empty").mkdir()
    result = cli(["eval", "--track", "toolcall", "--model-kind", "slm", "--adapter", "empty"])
    assert result.exit_code == 2 and "no LoRA adapter at empty" in result.output


def test_wrong_model_path_shows_what_was_resolved(
    prepared: list[Example], monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("slm_swap/models/phi-4-mini").mkdir(parents=True)
    Path("slm_swap/models/phi-4-mini/config.json").write_text("{}")
    monkeypatch.chdir("slm_swap")
    monkeypatch.setenv("SLM_MODEL_PATH", "slm_swap/models/phi-4-mini")
    result = cli(["eval", "--track", "toolcall", "--model-kind", "slm", "--dataset-dir", "../02_dataset"])
    assert result.exit_code == 2
    assert "no model checkpoint at slm_swap/models/phi-4-mini" in result.output
    assert "slm_swap/slm_swap/models/phi-4-mini" in result.output  # what it resolved to
    assert "did you mean models/phi-4-mini?" in result.output


def test_embedded_model_missing_says_to_pull(prepared: list[Example]) -> None:
    result = cli(["eval", "--track", "toolcall", "--model-kind", "slm"])
    assert result.exit_code == 2 and "slm-swap models pull" in result.output
