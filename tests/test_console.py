"""A quiet console: one line or bar per stage, none of the libraries' bars, advice or per-step dicts —
unless `--verbose` asks for them. Run as a user runs it: a fresh process, stderr and stdout read whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli import cli

NOISE = ("Loading weights", "it/s]", "%|", "{'loss':", "Tokenizing", "Warning", "warn(", "adapter sha256")


def slm_swap(*args: str) -> str:
    quiet = ("SLM_SWAP_", "HF_", "TRANSFORMERS_", "DATASETS_", "TQDM_", "TOKENIZERS_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(quiet)}  # as a fresh shell has it
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run(
        [sys.executable, "-m", "slm_swap", *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_training_and_evaluation_print_no_library_noise_unless_verbose(
    workspace: Path, tiny_model: Path
) -> None:
    sizes = ["--train-size", "4", "--val-size", "2", "--test-size", "2"]
    assert cli(["prepare", *sizes]).exit_code == 0
    train = ["train", "--track", "toolcall", "--model-path", str(tiny_model), "--max-length", "512"]
    quiet = slm_swap(*train, "--train-batch-size", "2", "--out", "quiet")
    assert "train toolcall" in quiet and "wrote quiet" in quiet
    assert not [n for n in NOISE if n in quiet], quiet
    evaluation = ["eval", "--track", "toolcall", "--model-kind", "slm", "--model-path", str(tiny_model)]
    quiet_eval = slm_swap(*evaluation, "--max-new-tokens", "4")
    assert not [n for n in NOISE if n in quiet_eval], quiet_eval
    loud = slm_swap("--verbose", *train, "--train-batch-size", "2", "--out", "loud")
    assert "{'loss':" in loud and "Loading weights" in loud  # the same run shows them when asked
