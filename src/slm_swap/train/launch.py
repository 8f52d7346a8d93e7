"""The spec's two multi-GPU strategies as launch plans: exact commands, environments and logs.

* parallel: structured on GPUs 0,1 and toolcall on GPUs 2,3 at the same time (two 2-GPU DDP runs, separate
  ports and logs) — for small datasets this halves wall-clock time against running them one by one;
* sequential: each track in turn on all four GPUs.

Each launch is `accelerate launch` (with the settings of the checked-in `configs/accelerate/*.yaml` given
as flags, so that any GPU count works from any folder) or `torchrun`, running `slm-swap train`
under DDP: every rank loads its own copy of the base on its own GPU. A track given one GPU (`--gpus 2`
in parallel) runs `slm-swap train` alone on it, with no launcher. Launchers and trainers start from this
Python (`sys.executable -m ...`), so they are found whether or not the environment's bin folder is on
PATH. The launchers set the spec's environment: PYTHONHASHSEED=42 and CUBLAS_WORKSPACE_CONFIG=:4096:8.

No DeepSpeed ZeRO config is shipped, on purpose: LoRA trains ~1-2% of the weights, so the optimizer state
and gradients ZeRO would shard are already small, and ZeRO-3 cannot partition a bitsandbytes 8-bit base.
Plain DDP is simpler and at least as fast here.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from slm_swap.local.engine import CUBLAS_WORKSPACE
from slm_swap.types import TRACKS
from slm_swap.workspace import Workspace

BASE_PORT = 29500
ENV = {"PYTHONHASHSEED": "42", "CUBLAS_WORKSPACE_CONFIG": CUBLAS_WORKSPACE}


@dataclass(frozen=True)
class Launch:
    track: str
    argv: list[str]
    env: dict[str, str]
    log: Path

    def shell(self) -> str:
        env = " ".join(f"{k}={v}" for k, v in self.env.items())
        return f"{env} {' '.join(self.argv)} > {self.log} 2>&1"


def plan(
    strategy: str,
    *,
    launcher: str = "accelerate",
    gpus: int = 4,
    workspace: Workspace | None = None,
    extra: tuple[str, ...] = (),
) -> list[list[Launch]]:
    """Stages of launches: the launches of one stage run at the same time, stages one after another."""
    if strategy not in ("parallel", "sequential"):
        raise ValueError(f"strategy must be parallel or sequential, got {strategy!r}")
    if launcher not in ("accelerate", "torchrun"):
        raise ValueError(f"launcher must be accelerate or torchrun, got {launcher!r}")
    workspace = workspace or Workspace()
    per_track = gpus // 2 if strategy == "parallel" else gpus
    stages: list[list[Launch]] = []
    for index, track in enumerate(TRACKS):
        devices = (
            list(range(index * per_track, (index + 1) * per_track))
            if strategy == "parallel"
            else list(range(gpus))
        )
        port = str(BASE_PORT + index)
        train = [
            "-m",
            "slm_swap",
            "train",
            "--track",
            track,
            "--train",
            str(workspace.split(track, "train")),
            "--val",
            str(workspace.split(track, "val")),
            "--out",
            str(workspace.adapter(track)),
            "--strategy",
            strategy,
            *extra,
        ]
        if per_track == 1:
            argv = [sys.executable, *train]
        elif launcher == "accelerate":
            argv = [
                sys.executable,
                "-m",
                "accelerate.commands.launch",
                # The settings of configs/accelerate/*.yaml as flags: any GPU count, from any folder.
                "--multi_gpu",
                "--num_machines",
                "1",
                "--num_processes",
                str(per_track),
                "--mixed_precision",
                "bf16",
                "--dynamo_backend",
                "no",
                "--main_process_port",
                port,
                *train,
            ]
        else:
            argv = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nproc_per_node",
                str(per_track),
                "--master_port",
                port,
                *train,
            ]
        env = {**ENV, "CUDA_VISIBLE_DEVICES": ",".join(map(str, devices))}
        launch = Launch(track, argv, env, workspace.log(f"train_{track}_{per_track}gpu.log"))
        if strategy == "parallel" and stages:
            stages[0].append(launch)
        else:
            stages.append([launch])
    return stages


def run(stages: list[list[Launch]], base_env: Mapping[str, str]) -> list[tuple[Launch, int]]:
    """Runs the plan: each stage's launches at once, waiting for a stage before the next. Each process
    gets `base_env` (the command line's `Runtime.child_environment`) with its launch's settings."""
    results: list[tuple[Launch, int]] = []
    for stage in stages:
        running = []
        for launch in stage:
            launch.log.parent.mkdir(parents=True, exist_ok=True)
            log = launch.log.open("w")
            running.append(
                (
                    launch,
                    subprocess.Popen(
                        launch.argv, env={**base_env, **launch.env}, stdout=log, stderr=subprocess.STDOUT
                    ),
                    log,
                )
            )
        for launch, process, log in running:
            results.append((launch, process.wait()))
            log.close()
    return results
