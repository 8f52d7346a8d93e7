"""The vLLM scale-out path, tested by the exact command it runs (vLLM needs a CUDA machine)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from slm_swap.scaleout import vllm_command
from tests.cli import cli


def adapter(folder: Path, rank: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"r": rank, "peft_type": "LORA"}))
    return folder


def value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_vllm_serves_the_same_names_with_lora_and_data_parallelism(workspace: Path) -> None:
    model = Path("models/SmolLM2-135M-Instruct")
    adapters = {"toolcall": adapter(Path("04_ft/adapter_toolcall"), 64), "structured": adapter(Path("s"), 16)}
    argv = vllm_command(model, adapters, host="127.0.0.1", port=8000, gpus=4)
    assert argv[:3] == ["vllm", "serve", str(model)]
    assert value(argv, "--served-model-name") == "SmolLM2-135M-Instruct"  # as slm-swap serve names it
    assert value(argv, "--data-parallel-size") == "4" and value(argv, "--max-lora-rank") == "64"
    assert value(argv, "--max-loras") == "2" and "--enable-lora" in argv
    modules = argv[argv.index("--lora-modules") + 1 :]
    assert modules == ["toolcall=04_ft/adapter_toolcall", "structured=s"]
    assert "--data-parallel-size" not in vllm_command(model, {}, host="h", port=1, gpus=1)
    big = {"big": adapter(Path("big"), 128)}
    argv = vllm_command(model, big, host="h", port=1, gpus=1)
    assert value(argv, "--max-lora-rank") == "128"


def test_serve_engine_vllm_dry_run_prints_the_command_without_the_key(workspace: Path) -> None:
    model = Path("m/SmolLM2-135M-Instruct")
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    adapter(Path("04_ft/adapter_toolcall"), 64)
    args = [
        "serve",
        "--engine",
        "vllm",
        "--model-path",
        str(model),
        "--lora",
        "toolcall=04_ft/adapter_toolcall",
    ]
    args += ["--gpus", "2"]
    result = cli([*args, "--require-api-key", "sekrit", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "sekrit" not in result.output and "VLLM_API_KEY" in result.output
    printed = shlex.split(result.output.split("  #")[0])
    assert printed[:3] == ["vllm", "serve", str(model.resolve())] and "--data-parallel-size" in printed
    missing = cli(args, env={"PATH": "/nonexistent"})
    assert missing.exit_code == 2 and "vllm is not installed here" in missing.output
    refused = cli([*args, "--constrained", "--dry-run"])
    assert refused.exit_code == 2 and "--constrained" in refused.output


def test_an_unreadable_adapter_rank_is_a_clear_error(workspace: Path) -> None:
    folder = Path("a")
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    from slm_swap.errors import ConfigError

    with pytest.raises(ConfigError, match="LoRA rank"):
        vllm_command(Path("m"), {"a": folder}, host="h", port=1, gpus=1)
