"""The multi-GPU launch plans, checked by the exact commands they would run (no GPU here)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from slm_swap.train.launch import plan
from tests.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_parallel_runs_both_tracks_at_once_on_separate_gpu_pairs() -> None:
    (stage,) = plan("parallel")
    structured, toolcall = stage
    assert structured.env == {
        "PYTHONHASHSEED": "42",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
        "CUDA_VISIBLE_DEVICES": "0,1",
    }
    assert toolcall.env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert structured.argv == [
        sys.executable,  # this environment's launcher, whether or not its bin folder is on PATH
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_machines",
        "1",
        "--num_processes",
        "2",
        "--mixed_precision",
        "bf16",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "29500",
        "-m",
        "slm_swap",
        "train",
        "--track",
        "structured",
        "--train",
        "02_dataset/structured/train.jsonl",
        "--val",
        "02_dataset/structured/val.jsonl",
        "--out",
        "04_ft/adapter_structured",
        "--strategy",
        "parallel",
    ]
    assert toolcall.argv[toolcall.argv.index("--main_process_port") + 1] == "29501"  # its own port
    assert (structured.log, toolcall.log) == (
        Path("logs/train_structured_2gpu.log"),
        Path("logs/train_toolcall_2gpu.log"),
    )


def test_sequential_runs_each_track_on_all_gpus_in_turn() -> None:
    stages = plan("sequential", launcher="torchrun", extra=("--load-in-4bit",))
    assert [len(s) for s in stages] == [1, 1]
    first = stages[0][0]
    assert first.env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"
    assert first.argv[:8] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "4",
        "--master_port",
        "29500",
        "-m",
    ]
    assert first.argv[-1] == "--load-in-4bit" and first.log == Path("logs/train_structured_4gpu.log")


def test_accelerate_configs_match_the_plans() -> None:
    """The checked-in configs (for a hand-run `accelerate launch`) say what the plans pass as flags."""
    for gpus in (2, 4):
        config = yaml.safe_load((ROOT / f"configs/accelerate/{gpus}gpu.yaml").read_text())
        assert config["num_processes"] == gpus and config["distributed_type"] == "MULTI_GPU"
        (launch,) = plan("sequential", gpus=gpus)[0]
        flags = dict(zip(launch.argv[4:12:2], launch.argv[5:13:2], strict=True))
        assert flags == {
            "--num_machines": str(config["num_machines"]),
            "--num_processes": str(gpus),
            "--mixed_precision": config["mixed_precision"],
            "--dynamo_backend": "no",
        }


def test_one_gpu_a_track_runs_the_trainer_alone_on_it() -> None:
    """`--gpus 2` in parallel gives each track one GPU: no launcher, no config for one process."""
    (stage,) = plan("parallel", gpus=2)
    for gpu, launch in enumerate(stage):
        assert launch.argv[:4] == [sys.executable, "-m", "slm_swap", "train"]
        assert launch.env["CUDA_VISIBLE_DEVICES"] == str(gpu)
        assert launch.log == Path(f"logs/train_{launch.track}_1gpu.log")


def test_launch_dry_run_prints_the_commands() -> None:
    """--gpus defaults to every GPU visible (here the four CUDA_VISIBLE_DEVICES names); where none is
    visible it must be given."""
    argv = ["launch", "--strategy", "parallel", "--dry-run"]
    none = cli(argv, env={"CUDA_VISIBLE_DEVICES": ""})
    assert none.exit_code == 2 and "no GPU is visible here" in none.output and "--gpus N" in none.output
    one = cli([*argv, "--gpus", "1"])
    assert one.exit_code == 2 and "slm-swap train" in one.output
    result = cli([*argv, "--", "--load-in-4bit"], env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert result.exit_code == 0, result.output
    assert "stage 1 (at the same time):" in result.output
    assert f"CUDA_VISIBLE_DEVICES=2,3 {sys.executable} -m accelerate.commands.launch" in result.output
    assert result.output.count("--load-in-4bit") == 2
    assert "> logs/train_toolcall_2gpu.log 2>&1" in result.output


def test_shell_scripts_call_the_launcher() -> None:
    assert "slm-swap launch --strategy parallel" in (ROOT / "scripts/train_parallel.sh").read_text()
    assert "slm-swap launch --strategy sequential" in (ROOT / "scripts/train_sequential.sh").read_text()


def test_the_trainer_settings_a_gpu_rank_gets() -> None:
    """The GPU plan, checked where no GPU is: each DDP rank of a launch trains in bfloat16 mixed precision
    with activations recomputed, skips DDP's search for unused parameters, and keeps the spec's
    hyperparameters; a CPU run keeps float32 unless asked, and cannot be asked without native bfloat16."""
    from slm_swap.errors import ConfigError
    from slm_swap.train.sft import TrainConfig, native_bfloat16, trainer_settings

    config = TrainConfig(
        track="toolcall", train=Path("t.jsonl"), val=Path("v.jsonl"), out=Path("o"), model_path=Path("m")
    )
    rank = trainer_settings(config, cuda=True, world_size=2)
    assert rank["bf16"] and rank["gradient_checkpointing"] and not rank["use_cpu"]
    assert rank["ddp_find_unused_parameters"] is False and rank["completion_only_loss"]
    spec = (rank["learning_rate"], rank["num_train_epochs"], rank["per_device_train_batch_size"])
    assert spec == (2e-4, 1, 4)
    cpu = trainer_settings(config, cuda=False)
    assert not cpu["bf16"] and not cpu["gradient_checkpointing"] and cpu["use_cpu"]
    assert cpu["ddp_find_unused_parameters"] is None
    assert not trainer_settings(replace(config, precision="float32"), cuda=True)["bf16"]
    asked = replace(config, precision="bfloat16")
    if native_bfloat16():
        assert trainer_settings(asked, cuda=False)["bf16"]
    else:
        with pytest.raises(ConfigError, match="no native bfloat16"):
            trainer_settings(asked, cuda=False)
