"""LoRA fine-tuning on the tiny model: what changes, what must not, masks, determinism, resume, DDP."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from slm_swap.backends.local import LocalBackend, LocalConfig
from slm_swap.errors import ConfigError
from slm_swap.fileformats import checked
from slm_swap.files import sha256_file
from slm_swap.tracing import NullTracer
from slm_swap.train.card import ADAPTER_CARD
from slm_swap.train.packing import ROWS, completion_loss
from slm_swap.train.sft import TrainConfig, build_trainer, train
from slm_swap.types import Example
from tests.cli import cli

TOY_ANSWER = '<tool_call name="ping">{}</tool_call>'
PRECISION = "float32"  # what `--precision auto` computes in on a CPU


def toy_split(examples: list[Example], path: Path) -> Path:
    """Short rows whose answer is always the same: a set the tiny model can learn in a few steps."""
    rows = []
    for i, e in enumerate(examples):
        row = e.to_json()
        row["prompt"] = f"Request {i}: ping the server."
        row["completion"] = TOY_ANSWER
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def config(tiny_model: Path, out: str, **kw: object) -> TrainConfig:
    base = {
        "track": "toolcall",
        "train": Path("toy_train.jsonl"),
        "val": Path("toy_val.jsonl"),
        "out": Path(out),
        "model_path": tiny_model,
        "max_length": 1024,
        "batch_size": 4,
        "learning_rate": 2e-2,
        "epochs": 12.0,
    }
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture
def toy(prepared: list[Example]) -> None:
    toy_split(prepared, Path("toy_train.jsonl"))
    toy_split(prepared[:4], Path("toy_val.jsonl"))


def test_loss_covers_only_the_answer(toy: None, tiny_model: Path) -> None:
    built = build_trainer(config(tiny_model, "04_ft/a"))
    row = built.trainer.train_dataset[0]
    # TRL folds the completion mask into the labels: -100 (no loss) everywhere but the answer.
    answer = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    prompt = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label == -100]
    assert built.tokenizer.decode(answer) == TOY_ANSWER + "<|im_end|>\n"
    assert built.tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    assert built.engine == "trl+peft" and built.precision == PRECISION


def test_training_changes_lora_only_learns_and_is_reproducible(toy: None, tiny_model: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    first = train(config(tiny_model, "04_ft/a"), NullTracer())
    second = train(config(tiny_model, "04_ft/b"), NullTracer())
    card = json.loads(Path("04_ft/a", ADAPTER_CARD).read_text())
    assert math.isfinite(card["train_loss_first"]) and math.isfinite(first.val_loss or math.nan)
    assert card["train_loss_last"] < card["train_loss_first"] * 0.7  # learnable: the loss falls
    assert card["engine"] == "trl+peft" and card["precision"] == PRECISION and card["steps"] == 24
    assert card["train_sha256"] == sha256_file(Path("toy_train.jsonl"))
    assert card["hyperparameters"]["lora_r"] == 64 and card["hyperparameters"]["lora_alpha"] == 16
    assert {"torch", "transformers", "peft", "trl"} <= set(card["versions"])
    # Same inputs, same seed: the same adapter, byte for byte.
    a, b = Path("04_ft/a/adapter_model.safetensors"), Path("04_ft/b/adapter_model.safetensors")
    assert sha256_file(a) == sha256_file(b) and first.card.adapter_sha256 == second.card.adapter_sha256
    weights = load_file(a)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in weights.items())  # B starts at zero
    assert (Path("04_ft/a") / "tokenizer_config.json").is_file()
    # The weights are as readable as the files beside them (safetensors alone would write them 0600).
    config_mode = (Path("04_ft/a") / "tokenizer_config.json").stat().st_mode & 0o777
    assert a.stat().st_mode & 0o777 == config_mode and config_mode & 0o044
    # The base weights are untouched: the checkpoint on disk is what the adapter sits on.
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    loaded = LocalBackend(LocalConfig(tiny_model, adapter=Path("04_ft/a"), max_new_tokens=24))
    base_weights = {k: v for k, v in base.state_dict().items()}
    for name, tensor in loaded.engine.llm.get_base_model().state_dict().items():
        key = name.replace(".base_layer", "")
        if "lora_" not in name and key in base_weights:
            assert torch.equal(tensor, base_weights[key]), name
    # The adapter reloads for evaluation and has learnt the toy answer.
    (answer,) = loaded.complete([json_example()])
    assert answer.text.startswith(TOY_ANSWER), answer.text


def json_example() -> Example:
    return checked(json.loads(Path("toy_val.jsonl").read_text().splitlines()[0]), Example)


def test_config_errors_name_the_values() -> None:
    with pytest.raises(ConfigError, match="same file"):
        TrainConfig("toolcall", Path("a.jsonl"), Path("a.jsonl"), Path("o"), Path("m"))
    with pytest.raises(ConfigError, match="--lora-dropout must be in"):
        TrainConfig("toolcall", Path("a.jsonl"), Path("b.jsonl"), Path("o"), Path("m"), lora_dropout=1.5)


def test_wrong_track_and_non_empty_out_are_refused(toy: None, tiny_model: Path) -> None:
    with pytest.raises(ConfigError, match="holds toolcall rows"):
        build_trainer(config(tiny_model, "04_ft/x", track="structured"))
    Path("04_ft/full").mkdir(parents=True)
    Path("04_ft/full/file").write_text("x")
    from slm_swap.errors import SlmSwapError

    with pytest.raises(SlmSwapError, match="not empty"):
        build_trainer(config(tiny_model, "04_ft/full"))


def _train_cmd(tiny_model: Path, out: str, *extra: str) -> list[str]:
    return [
        "train",
        "--track",
        "toolcall",
        "--train",
        "toy_train.jsonl",
        "--val",
        "toy_val.jsonl",
        "--out",
        out,
        "--model-path",
        str(tiny_model),
        "--max-length",
        "1024",
        "--lr",
        "2e-2",
        *extra,
    ]


def test_ctrl_c_leaves_a_checkpoint_and_resume_finishes(toy: None, tiny_model: Path) -> None:
    env = {**os.environ, "LANGFUSE_DISABLED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "slm_swap",
        *_train_cmd(tiny_model, "04_ft/r", "--epochs", "20", "--save-steps", "2"),
    ]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not list(Path("04_ft/r/checkpoints").glob("checkpoint-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=240)
    assert process.returncode == 130, output
    assert "rerun with --resume" in output
    assert not Path("04_ft/r/adapter_model.safetensors").exists()
    steps = max(int(p.name.split("-")[1]) for p in Path("04_ft/r/checkpoints").glob("checkpoint-*"))
    assert 2 <= steps < 40
    resumed = cli([*_train_cmd(tiny_model, "04_ft/r", "--epochs", "20", "--save-steps", "50"), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    card = json.loads(Path("04_ft/r", ADAPTER_CARD).read_text())
    assert card["steps"] == 40 and Path("04_ft/r/adapter_model.safetensors").is_file()


def test_two_process_ddp_over_gloo_ranks_agree(toy: None, tiny_model: Path) -> None:
    env = {**os.environ, "LANGFUSE_DISABLED": "1", "PYTHONHASHSEED": "42", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "slm_swap",
        *_train_cmd(tiny_model, "04_ft/ddp", "--train-batch-size", "2"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d) adapter sha256 ([0-9a-f]{64})", done.stdout + done.stderr))
    assert set(digests) == {"0", "1"}  # two real processes
    assert digests["0"] == digests["1"]  # gradients were all-reduced: both ranks hold the same adapter
    card = json.loads(Path("04_ft/ddp", ADAPTER_CARD).read_text())
    assert card["adapter_sha256"] == digests["0"]
    # 8 rows, 2 per device on 2 ranks: 2 steps in the (default) one epoch.
    assert card["steps"] == 2


def varied_rows(prepared: list[Example], path: Path) -> Path:
    """Rows of different lengths, as real ones are: padded to a batch, a third of it or more is padding."""
    rows = []
    for i, e in enumerate(prepared[:8]):
        row = e.to_json()
        row["prompt"] = f"Request {i}: " + "please " * (60 * i) + "ping the server."
        row["completion"] = TOY_ANSWER
        rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_padding_free_batches_give_the_padded_loss_and_the_same_labels(
    prepared: list[Example], tiny_model: Path
) -> None:
    """Rows of different lengths, as real ones are: the padded batch is a third padding or more. The model
    keeps packed rows apart, so batches go padding-free; on the same batch both collations give one loss
    and train on the very same answer tokens."""
    import dataclasses

    import torch

    varied_rows(prepared, Path("long_train.jsonl"))
    toy_split(prepared[:4], Path("toy_val.jsonl"))
    built = build_trainer(config(tiny_model, "04_ft/pf", train=Path("long_train.jsonl")))
    assert built.batches == "padding-free"
    trainer = built.trainer
    packed_collator = trainer.data_collator
    padded_collator = dataclasses.replace(packed_collator, padding_free=False)
    batch = [trainer.train_dataset[i] for i in range(4)]
    packed, padded = packed_collator(batch), padded_collator(batch)
    assert "attention_mask" not in packed and packed["input_ids"].shape[0] == 1
    assert int(padded["attention_mask"].sum()) == packed["input_ids"].shape[1]  # no position is padding
    assert padded["attention_mask"].float().mean() < 0.8  # while the padded batch pads a fifth or more
    # The same answer tokens carry the loss (the completion mask is unchanged).
    assert (
        padded["labels"][padded["labels"] != -100].tolist()
        == packed["labels"][packed["labels"] != -100].tolist()
    )
    model = trainer.model
    model.eval()
    with torch.no_grad():
        loss_packed = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"], labels=packed["labels"]
        ).loss
        loss_padded = model(**padded).loss
        # The loss through the LM head at the answer positions only is the full-logits loss.
        loss_compact, _ = completion_loss(model, packed)
        # Row-by-row attention is sdpa's over the block-diagonal mask of the packed rows.
        base = model.get_base_model()
        assert base.config._attn_implementation == ROWS
        rows_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits
        base.set_attn_implementation("sdpa")
        mask_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"]).logits
    assert math.isclose(float(loss_packed), float(loss_padded), rel_tol=1e-5)
    assert math.isclose(float(loss_compact), float(loss_packed), rel_tol=1e-5)
    assert torch.allclose(rows_logits, mask_logits, atol=1e-5)


def test_the_faster_step_trains_as_the_slower_one_step_by_step(
    prepared: list[Example], tiny_model: Path
) -> None:
    """Padding-free batches, row-by-row attention and the loss at answer positions only, against TRL's
    padded batches, sdpa and full-vocabulary loss: the same loss at every step, the same adapter (float32
    and no dropout, so that only the arithmetic's order differs)."""
    import dataclasses

    varied_rows(prepared, Path("long_train.jsonl"))
    toy_split(prepared[:4], Path("toy_val.jsonl"))
    settings = {"train": Path("long_train.jsonl"), "epochs": 2.0, "lora_dropout": 0.0, "precision": "float32"}
    fast = build_trainer(config(tiny_model, "04_ft/fast", **settings))
    slow = build_trainer(config(tiny_model, "04_ft/slow", **settings))
    assert fast.batches == "padding-free" and fast.trainer.compact_loss
    slow.trainer.data_collator = dataclasses.replace(slow.trainer.data_collator, padding_free=False)
    slow.trainer.model.get_base_model().set_attn_implementation("sdpa")
    slow.trainer.compact_loss = False
    losses = {}
    for name, built in (("fast", fast), ("slow", slow)):
        built.trainer.train()
        losses[name] = [h["loss"] for h in built.trainer.state.log_history if "loss" in h]
    assert len(losses["fast"]) == 4  # 8 rows, 4 a batch, 2 epochs
    for a, b in zip(losses["fast"], losses["slow"], strict=True):
        assert math.isclose(a, b, rel_tol=1e-4), losses
    assert losses["fast"][-1] < losses["fast"][0]  # and it learns
    weights = {
        name: {k: v for k, v in built.trainer.model.named_parameters() if v.requires_grad}
        for name, built in (("fast", fast), ("slow", slow))
    }
    # Adam moves each weight by about the learning rate whatever its gradient's size, so the few weights
    # whose gradient is at the level of rounding can differ by a fraction of a step (by how much depends
    # on the libraries' arithmetic order: 0.2% of the largest move in one environment, 1.6% in another):
    # all but 0.5% of each tensor agree to float32 precision, and the two adapters are the same model —
    # the same loss on the held-out rows, to the precision the training losses agree to.
    for key, value in weights["fast"].items():
        difference = (value - weights["slow"][key]).abs()
        apart = difference > 1e-5 + 1e-3 * weights["slow"][key].abs()
        assert apart.float().mean().item() <= 0.005, (key, apart.sum().item())
    held_out = {
        name: built.trainer.evaluate()["eval_loss"] for name, built in (("fast", fast), ("slow", slow))
    }
    assert math.isclose(held_out["fast"], held_out["slow"], rel_tol=1e-4), held_out


def test_mask_dropout_is_dropout_and_replaces_every_lora_dropout(toy: None, tiny_model: Path) -> None:
    """The faster dropout keeps each element with probability 1 - p, scales what it keeps by 1 / (1 - p),
    passes gradients through the kept elements only, is the identity in eval mode; and the trainer puts it
    in every LoRA layer, with the configured p."""
    import torch

    from slm_swap.train.packing import MaskDropout

    torch.manual_seed(0)
    dropout = MaskDropout(0.1)
    x = torch.ones(1000, 1000, requires_grad=True)
    y = dropout(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.002  # 1e6 draws: 0.002 is > 6 standard deviations
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad != 0, kept)
    assert torch.equal(dropout.eval()(x), x)
    built = build_trainer(config(tiny_model, "04_ft/d"))
    lora = [m for m in built.trainer.model.modules() if hasattr(m, "lora_dropout")]
    dropouts = [d for m in lora for d in m.lora_dropout.values()]
    assert len(dropouts) == 7 * 2  # q, k, v, o, gate, up, down in each of the 2 layers
    assert all(isinstance(d, MaskDropout) and d.p == 0.1 for d in dropouts)
