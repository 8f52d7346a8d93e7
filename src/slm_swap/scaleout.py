"""Scale-out: the same base model and adapters served by vLLM on GPUs, under the same model names, so
`eval --model-kind openai` (and any OpenAI client) points at it unchanged.

vLLM serves the base model under the folder name `slm-swap serve` uses and each adapter under its
`--adapter` NAME (`--enable-lora --lora-modules NAME=DIR`), with data parallelism across GPUs. Requests
from `eval` are plain text prompts, so no tool parser is needed; vLLM has no parser for slm-swap's
`<tool_call name=...>` format, so applications that send OpenAI `tools` use `slm-swap serve`.

vLLM serves the weights in bfloat16, not 8-bit as the in-process backend does by default on CUDA: an
`eval --model-kind openai` against it scores the bfloat16 model, like `eval --load-in bfloat16`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from slm_swap import settings
from slm_swap.errors import ConfigError

# The ranks vLLM accepts for --max-lora-rank.
VLLM_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def adapter_rank(folder: Path) -> int:
    config = folder / "adapter_config.json"
    try:
        return int(json.loads(config.read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{config}: cannot read the LoRA rank `r` ({e})") from e


def vllm_command(
    model_path: Path,
    adapters: Mapping[str, Path],
    *,
    host: str,
    port: int,
    gpus: int,
    tool_parser: str | None = None,
) -> list[str]:
    """The `vllm serve` argv serving `model_path` and `adapters` as slm-swap serve names them; with
    `tool_parser` (`serve --protocol native`), vLLM answers `tool_choice: auto` with the model's own calls,
    read by that parser. An API key goes in the environment (VLLM_API_KEY), never in the argv."""
    argv = [
        "vllm",
        "serve",
        str(model_path),
        "--served-model-name",
        model_path.name,
        "--host",
        host,
        "--port",
        str(port),
        "--seed",
        str(settings.DECODING_SEED),
        "--generation-config",
        "vllm",  # requests' own settings (temperature 0 from eval), not the checkpoint's defaults
        # Unquantised: its runs compare with `eval --load-in bfloat16`, not with the in-process 8-bit default.
        "--dtype",
        "bfloat16",
    ]
    if gpus > 1:
        argv += ["--data-parallel-size", str(gpus)]
    if tool_parser is not None:
        argv += ["--enable-auto-tool-choice", "--tool-call-parser", tool_parser]
    if adapters:
        rank = max(adapter_rank(folder) for folder in adapters.values())
        max_rank = next((r for r in VLLM_LORA_RANKS if r >= rank), None)
        if max_rank is None:
            raise ConfigError(f"LoRA rank {rank} is over vLLM's largest ({VLLM_LORA_RANKS[-1]})")
        argv += [
            "--enable-lora",
            "--max-lora-rank",
            str(max(64, max_rank)),
            "--max-loras",
            str(len(adapters)),
        ]
        argv += ["--lora-modules", *(f"{name}={folder}" for name, folder in adapters.items())]
    return argv


def exec_vllm(
    model_path: Path,
    adapters: Mapping[str, Path],
    host: str,
    port: int,
    gpus: int,
    api_key: str | None,
    *,
    environment: Mapping[str, str],
    dry_run: bool = False,
    tool_parser: str | None = None,
) -> str:
    """Replaces this process with `vllm serve` for the same models, in `environment` (the key travels in
    VLLM_API_KEY, never on the command line), or with `dry_run` only returns the command as shown."""
    import os
    import shlex
    import shutil
    import sys

    argv = vllm_command(model_path, adapters, host=host, port=port, gpus=gpus, tool_parser=tool_parser)
    shown = shlex.join(argv) + ("  # with VLLM_API_KEY set" if api_key else "")
    if dry_run:
        return shown
    executable = shutil.which("vllm")
    if executable is None:
        raise ConfigError(
            "vllm is not installed here (it needs a CUDA machine)\n"
            "  fix: pip install vllm in a GPU environment, then run:\n  " + shown
        )
    env = {**environment, **({"VLLM_API_KEY": api_key} if api_key else {})}
    print(f"running: {shown}", file=sys.stderr, flush=True)
    os.execve(executable, argv, env)
