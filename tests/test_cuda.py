"""The CUDA paths' logic, checked where no GPU is: the preflight's findings and fixes, the GPU a training
process keeps, the stop rule's cache under a model spread over GPUs, Unsloth's import order and target
modules, the precision a card records, and bitsandbytes' console noise."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from slm_swap.local import cuda
from slm_swap.runtime import Runtime
from tests.cli import cli

GPU_MACHINE = cuda.Machine(
    driver="580.159.03",
    hidden=False,
    torch="2.11.0+cu130",
    torch_cuda="13.0",
    cuda=True,
    compiler="/usr/bin/cc",
    python_headers=True,
    bitsandbytes="0.50.2",
)


def test_a_gpu_machine_with_what_it_needs_passes() -> None:
    assert cuda.problems(GPU_MACHINE, cuda.Needs(quantized=True, kernels=True)) == []


@pytest.mark.parametrize(
    ("machine", "needs", "says", "fix"),
    [
        # A GPU torch cannot use: the run would silently go to the CPU.
        (
            replace(GPU_MACHINE, torch="2.13.0+cpu", torch_cuda=None, cuda=False),
            cuda.Needs(),
            "is a CPU build",
            "install a CUDA build of torch",
        ),
        (
            replace(GPU_MACHINE, cuda=False),
            cuda.Needs(),
            "built for CUDA 13.0, which the driver cannot run",
            "update the NVIDIA driver",
        ),
        (replace(GPU_MACHINE, bitsandbytes=None), cuda.Needs(quantized=True), "needs bitsandbytes", "[cuda]"),
        (
            replace(GPU_MACHINE, bitsandbytes="0.45.5"),
            cuda.Needs(quantized=True),
            "older than transformers accepts (0.46.1)",
            "pip install -U",
        ),
        (
            replace(GPU_MACHINE, compiler=None),
            cuda.Needs(kernels=True),
            "needs a C compiler,",
            "build-essential",
        ),
        (
            replace(GPU_MACHINE, python_headers=False),
            cuda.Needs(kernels=True),
            "needs Python's headers",
            "python3-dev",
        ),
    ],
)
def test_each_missing_piece_is_named_with_its_fix(
    machine: cuda.Machine, needs: cuda.Needs, says: str, fix: str
) -> None:
    (found,) = cuda.problems(machine, needs)
    problem, fix_line = found.split("\n")
    assert says in problem and fix_line.startswith("  fix: ") and fix in fix_line


def test_what_a_run_does_not_need_is_not_asked_for() -> None:
    bare = replace(GPU_MACHINE, bitsandbytes=None, compiler=None, python_headers=False)
    assert cuda.problems(bare, cuda.Needs()) == []  # bfloat16, free decoding: nothing to build
    cpu = replace(bare, driver=None, cuda=False, torch_cuda=None)
    assert cuda.problems(cpu, cuda.Needs(quantized=True, kernels=True)) == []  # a CPU machine
    hidden = replace(bare, hidden=True, cuda=False)
    assert cuda.problems(hidden, cuda.Needs(quantized=True)) == []  # CUDA_VISIBLE_DEVICES= : the CPU, chosen


def test_a_gpu_that_torch_cannot_use_stops_eval_before_anything_is_written(
    prepared: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model: Path
) -> None:
    """This machine's torch is a CPU build: with an NVIDIA driver present (its /proc file, stood in for
    here), an SLM evaluation stops with the fix instead of running on the CPU."""
    driver = tmp_path / "nvidia-version"
    driver.write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.03  Release Build\n")
    monkeypatch.setattr(cuda, "DRIVER_FILE", driver)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    args = ["eval", "--track", "toolcall", "--model-kind", "slm", "--model-path", str(tiny_model)]
    result = cli(args)
    assert result.exit_code == 2, result.output
    assert "an NVIDIA GPU is here (driver 580.159.03)" in result.output and "CPU build" in result.output
    assert "fix: install a CUDA build of torch" in result.output and "Traceback" not in result.output
    assert not Path("05_eval/toolcall_slm_test.json").exists()
    assert not Path("05_eval/toolcall_slm_test.json.journal").exists()
    # Choosing the CPU (CUDA_VISIBLE_DEVICES empty) is heard.
    assert cuda.problems(cuda.probe({"CUDA_VISIBLE_DEVICES": ""}), cuda.Needs()) == []


def test_8bit_on_a_cpu_is_refused_with_the_fix(prepared: Any, tiny_model: Path) -> None:
    args = ["eval", "--track", "toolcall", "--model-kind", "slm", "--model-path", str(tiny_model)]
    result = cli([*args, "--load-in", "8bit"])
    assert result.exit_code == 2 and "--load-in 8bit needs a CUDA GPU" in result.output
    assert "fix: --load-in auto" in result.output
    assert not Path("05_eval/toolcall_slm_test.json").exists()
    assert not Path("05_eval/toolcall_slm_test.json.journal").exists()


def test_one_process_that_trains_keeps_one_gpu_and_a_launchers_rank_keeps_its_own() -> None:
    four = cuda.one_gpu(4)
    assert four.visible == "0" and four.note is not None
    assert "4 GPUs" in four.note and "slm-swap launch" in four.note
    assert cuda.one_gpu(2, visible="2,3").visible == "2"
    rank = Runtime.from_env({"WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    assert cuda.one_gpu(2, launched=rank.launched) == cuda.Pin()
    assert cuda.one_gpu(1) == cuda.Pin() and cuda.one_gpu(0) == cuda.Pin()


def test_a_training_process_keeps_the_first_gpu_before_cuda_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch counts GPUs through NVML, which honours CUDA_VISIBLE_DEVICES until CUDA starts: the process
    narrows itself to one GPU. Where CUDA has started already (the count does not change), it stops with
    the fix instead of reaching TRL's DataParallel error. The device counts are stood in for."""
    env: dict[str, str] = {"CUDA_VISIBLE_DEVICES": "1,2,3"}
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(env["CUDA_VISIBLE_DEVICES"].split(",")))
    note = cuda.keep_one_gpu(env, launched=False)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and note is not None and "trains on GPU 1 alone" in note
    assert cuda.keep_one_gpu(env, launched=False) is None  # one GPU now: nothing more to do
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    with pytest.raises(cuda.ConfigError, match="several GPUs are visible to one training process"):
        cuda.keep_one_gpu({}, launched=False)
    rank = Runtime.from_env({"WORLD_SIZE": "4", "LOCAL_RANK": "0"})
    assert cuda.keep_one_gpu({}, launched=rank.launched) is None  # a launcher's rank


def test_a_training_process_that_kept_no_gpu_is_stopped_once_cuda_has_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A library caller that trains without `keep_one_gpu` (CUDA has started, so too late to choose): the
    same fix, naming the first GPU it sees; a launcher's rank was given its GPU and goes on."""
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    machine = replace(GPU_MACHINE, visible="3,5")
    with pytest.raises(cuda.ConfigError, match="fix: CUDA_VISIBLE_DEVICES=3 slm-swap"):
        cuda.refuse_several_gpus(machine, launched=False)
    assert cuda.refuse_several_gpus(machine, launched=True) is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert cuda.refuse_several_gpus(machine, launched=False) is None


class Recording:
    """A fake cached tensor that lives on `device` and records the device of each index it is given."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.indexed_on: list[torch.device] = []

    def __getitem__(self, index: torch.Tensor) -> Recording:
        self.indexed_on.append(index.device)
        return self


def test_the_stop_rule_indexes_each_layers_cache_on_that_layers_device() -> None:
    """With device_map="auto" the layers' caches sit on different GPUs; a row index made on the prompt's
    device and applied to every layer fails there. Devices here are data: cpu and meta stand for two GPUs."""
    from slm_swap.local.stops import rows_of

    layers = [(Recording("cpu"), Recording("cpu")), (Recording("meta"), Recording("meta"))]
    picked = rows_of(layers, [0, 0, 1, 1])  # type: ignore[arg-type]
    assert len(picked) == 2
    for keys, values in layers:
        assert keys.indexed_on == [keys.device] and values.indexed_on == [values.device]
    real = [(torch.arange(12.0).view(3, 4), torch.arange(12.0).view(3, 4) * 2)]
    ((keys, values),) = rows_of(real, [2, 0])
    assert keys.tolist() == [[8, 9, 10, 11], [0, 1, 2, 3]] and values[0, 0] == 16


def tiny_phi3() -> Any:
    from transformers import Phi3Config, Phi3ForCausalLM

    config = Phi3Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        pad_token_id=0,
    )
    return Phi3ForCausalLM(config)


def test_unsloth_gets_the_fused_projections_of_phi_models(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    from slm_swap.train.sft import linear_modules

    assert linear_modules(tiny_phi3()) == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]
    llama = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert linear_modules(llama) == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]


def test_unsloth_is_imported_before_trl_and_transformers(tmp_path: Path) -> None:
    """Its patches reach only what is imported after it. A stand-in `unsloth` package records what was
    imported before it; the engine is forced to Unsloth (it needs CUDA), and a training process readies
    itself as `slm-swap train` and `run` do."""
    fake = tmp_path / "site" / "unsloth"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import sys\nBEFORE = sorted(m for m in ('trl', 'transformers', 'peft') if m in sys.modules)\n"
    )
    script = textwrap.dedent(
        """
        import sys
        import slm_swap.train.sft as sft
        sft.engine_available = lambda: "unsloth"
        from slm_swap.cli.train import training_process
        from slm_swap.runtime import Runtime
        training_process(Runtime())
        import unsloth
        print("before unsloth:", unsloth.BEFORE)
        """
    )
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert "before unsloth: []" in out.stdout, out.stdout + out.stderr


def test_the_card_records_the_lora_weights_dtype_the_trainer_holds(tiny_model: Path) -> None:
    """TRL casts LoRA weights to bfloat16 on an 8-bit base; the recorded precision is read from the model,
    so it says so (a model whose LoRA weights are bfloat16 stands for that base here)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from slm_swap.train.sft import TrainConfig, precision_of

    config = TrainConfig(
        track="toolcall", train=Path("t.jsonl"), val=Path("v.jsonl"), out=Path("o"), model_path=tiny_model
    )
    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(tiny_model), LoraConfig(r=4, target_modules=["q_proj"])
    )
    assert precision_of(config, model, cuda=False) == "float32"
    assert precision_of(config, model, cuda=True) == "8-bit base, float32 LoRA weights, bfloat16 mixed"
    for param in model.parameters():
        if param.requires_grad:
            param.data = param.data.to(torch.bfloat16)
    quantized = replace(config, load_in_4bit=True)
    assert precision_of(quantized, model, cuda=True) == "4-bit base, bfloat16 LoRA weights, bfloat16 mixed"


def test_bitsandbytes_cast_notice_is_held_back_even_when_verbose() -> None:
    from slm_swap.console import configure

    notice = "MatMul8bitLt: inputs will be cast from torch.bfloat16 to float16 during quantization"
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        configure(verbose_output=True)
        warnings.warn(notice, stacklevel=1)
        warnings.warn("another warning", stacklevel=1)
    assert [str(w.message) for w in seen] == ["another warning"]
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("bitsandbytes.autograd._functions")
    keep, level = Keep(), logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.WARNING)  # as under --verbose (a quiet console holds back all but errors)
    try:
        logger.warning(notice)
        logger.warning("an 8-bit problem")
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    assert [r.getMessage() for r in records] == ["an 8-bit problem"]


def test_vllm_serves_bfloat16_and_refuses_an_8bit_request() -> None:
    from slm_swap.scaleout import vllm_command

    argv = vllm_command(Path("models/m"), {}, host="127.0.0.1", port=8000, gpus=1)
    assert argv[argv.index("--dtype") + 1] == "bfloat16"
    result = cli(["serve", "--engine", "vllm", "--load-in", "8bit", "--dry-run"])
    assert result.exit_code == 2 and "vLLM serves the model unquantised in bfloat16" in result.output
