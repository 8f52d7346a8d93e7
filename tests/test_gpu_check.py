"""The prepared GPU check, run in its CPU mode so that it cannot rot where no GPU is: every check that a
CPU can run passes through slm-swap's own commands, and each one a CPU cannot run says why."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_its_cpu_mode(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--cpu", "--work", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    # "outcome  name  seconds s  detail", one line a check
    outcome = {m[2]: m[1] for line in lines[:-1] if (m := re.match(r"(\w+)\s+(.+?)\s+[\d.]+ s  ", line))}
    ran = [
        "machine",
        "model",
        "prepare",
        "eval structured float32 free",
        "eval structured float32 constrained",
        "eval toolcall float32 free",
        "eval toolcall float32 constrained",
        "train toolcall 32 rows",
        "eval with the adapter",
        "serve with the adapter",
    ]
    assert {name: outcome.get(name) for name in ran} == dict.fromkeys(ran, "ok"), done.stdout
    skipped = ["8-bit cost", "ddp 2 ranks", "one process, several GPUs", "vllm"]
    assert {name: outcome.get(name) for name in skipped} == dict.fromkeys(skipped, "skip"), done.stdout
    said = "\n".join(lines)
    assert "cpu, float32, 8 examples" in said and "trl+peft on cpu, float32, 8 steps" in said
    assert "two DDP ranks need two GPUs" in said and "vllm is not installed here" in said
    assert lines[-1].startswith("gpu_check on cpu: 10 ok, 0 failed, 4 skipped")
    assert (tmp_path / "04_ft" / "adapter_toolcall" / "adapter_config.json").is_file()
