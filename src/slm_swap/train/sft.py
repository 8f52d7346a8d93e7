"""LoRA fine-tuning of the SLM on one track's train split: load, build the trainer, train, save.

The defaults are the spec's fixed hyperparameters: LoRA r=64, alpha=16, dropout=0.1, lr 2e-4, 1 epoch,
max length 2048, the base loaded 8-bit on CUDA (`load_in_4bit` gives QLoRA). Batch size 4 per device
with no gradient accumulation is ours: on 32 rows that is 8 optimizer steps. The arithmetic is bfloat16
mixed precision on CUDA, where TRL also casts the LoRA weights to bfloat16 on an 8-bit or 4-bit base (as
QLoRA's paper does), and float32 on a CPU (`--precision`). A CPU with native bfloat16 (AVX512-BF16, AMX)
can be asked for it: on the embedded model it trains 32 sample rows in 111 s instead of 125 s, but learns
less in them (validation loss 0.392 against 0.348), so it is not the default. Unsloth is used on CUDA
machines where it is installed (`load_engine` imports it before TRL, so that its patches apply);
everywhere else, TRL's SFTTrainer with PEFT. The card records the engine, the device and the precision
read from the trained model. One process trains on one GPU (`cuda.keep_one_gpu`); `slm-swap launch`
starts one DDP rank per GPU, and each learns its rank and verbosity from the `Runtime` it is given.

Each row is a TRL conversational prompt-completion pair: the prompt is the same `[system, user]`
messages evaluation sends, rendered by the same chat template, and the loss covers the completion only.
Under the native protocol (toolcall track) a row is the conversation with its tools rendered by the
checkpoint's own chat template and the answer as the template writes an assistant's `tool_calls` (or its
reply, for a no-call row), tokenized here (`native_row`), so that the adapter learns the format it is
evaluated and served in; TRL then trains on the tokens as they are, the loss on the answer only.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from slm_swap import __version__, settings
from slm_swap.data.formats import dumps
from slm_swap.errors import ConfigError, SlmSwapError
from slm_swap.files import read_examples, readable_weights, write_json
from slm_swap.identity import adapter_files_digest, checkpoint_digest, file_digest
from slm_swap.local import templates
from slm_swap.protocol import NATIVE, PROMPT
from slm_swap.runtime import ONE_PROCESS, Runtime
from slm_swap.tracing import Tracer
from slm_swap.train.card import ADAPTER_CARD, AdapterCard
from slm_swap.train.config import TrainConfig
from slm_swap.train.masking import mask_share
from slm_swap.train.preference import preference_step
from slm_swap.types import Example


@dataclass(frozen=True)
class Built:
    trainer: Any
    tokenizer: Any
    engine: str
    precision: str
    stop: dict[str, bool]  # set by Ctrl-C: save a checkpoint and stop
    batches: str = "padded"  # or "padding-free" (`use_padding_free`)
    device: str = "cpu"


@dataclass(frozen=True)
class TrainResult:
    adapter: Path
    engine: str
    train_loss: float | None
    val_loss: float | None
    steps: int
    seconds: float
    interrupted: bool
    card: AdapterCard


def engine_available() -> str:
    """ "unsloth" on a CUDA machine that has it installed, else "trl+peft"."""
    import torch

    if torch.cuda.is_available() and importlib.util.find_spec("unsloth") is not None:
        return "unsloth"
    return "trl+peft"


def load_engine(runtime: Runtime) -> str:
    """Chooses the engine and, for Unsloth, imports it now: its patches apply only to the transformers,
    TRL and PEFT classes imported after it. Call before anything imports TRL (and after `cuda.keep_one_gpu`,
    since this starts CUDA)."""
    engine = engine_available()
    if engine == "unsloth":
        import unsloth  # noqa: F401

        if runtime.verbose:
            print("engine: unsloth, imported before TRL so that its patches apply", flush=True)
    return engine


def linear_modules(model: Any) -> list[str]:
    """The names of the model's linear layers that LoRA adapts (every one but the LM head), as PEFT's
    "all-linear" finds them: `q_proj` ... `down_proj` for Llama-style models, and the fused `qkv_proj`
    and `gate_up_proj` of Phi-3 and Phi-4. Unsloth needs them listed."""
    import torch

    names = set()
    for name, module in model.named_modules():
        # bitsandbytes' 8-bit and 4-bit layers are subclasses of torch's Linear.
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] != "lm_head":
            names.add(name.rsplit(".", 1)[-1])
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    for name, module in model.named_modules():
        if module is output:
            names.discard(name.rsplit(".", 1)[-1])
    return sorted(names)


def _rows(
    examples: list[Example], track: str, path: Path, tokenizer: Any = None, protocol: str = PROMPT
) -> list[dict[str, Any]]:
    wrong = [e.id for e in examples if e.track != track]
    if wrong:
        raise ConfigError(
            f"{path} holds {examples[0].track} rows (e.g. {wrong[0]}), but {settings.TRACK} is {track}"
        )
    if protocol == NATIVE and track == "toolcall":
        return [native_row(tokenizer, e) for e in examples]
    # Only prompt and completion: TRL would hand any "tools" column to the chat template.
    return [
        {"prompt": e.messages(), "completion": [{"role": "assistant", "content": e.completion}]}
        for e in examples
    ]


def native_row(tokenizer: Any, example: Example) -> dict[str, list[int]]:
    """A training row in the checkpoint's own tool format: the tokens of the conversation with its tools
    and of the answer, as its chat template writes them, and which of them are the answer's."""
    from slm_swap import protocol

    tools = protocol.openai_tools(example.tools)
    messages = protocol.native_messages(example)
    if example.gold:
        calls = [protocol.RawCall(c.name, dumps(c.arguments)) for c in example.gold]
        answer = {"role": "assistant", "content": "", "tool_calls": protocol.openai_calls(calls)}
    else:
        answer = {"role": "assistant", "content": example.completion}
    prompt = templates.tokens(tokenizer, messages, tools, add_generation_prompt=True)
    whole = templates.tokens(tokenizer, [*messages, answer], tools, add_generation_prompt=False)
    start = next((i for i, (a, b) in enumerate(zip(prompt, whole, strict=False)) if a != b), len(prompt))
    return {"input_ids": whole, "completion_mask": [0] * start + [1] * (len(whole) - start)}


def load_base(config: TrainConfig, engine: str, runtime: Runtime) -> tuple[Any, Any]:
    """The base model and tokenizer for training. Under DDP each rank loads its own copy on its own
    device (`runtime.local_rank`; never device_map="auto"). The CUDA preflight runs first."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from slm_swap.local import cuda

    # Unsloth's kernels are Triton's; TRL + PEFT here use none (the loss is `CompletionLossTrainer`'s).
    machine = cuda.preflight(cuda.Needs(quantized=True, kernels=engine == "unsloth"))
    if engine == "unsloth":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            str(config.model_path),
            max_seq_length=config.max_length,
            load_in_4bit=config.load_in_4bit,
            load_in_8bit=not config.load_in_4bit,
            device_map={"": runtime.local_rank},
        )
        return model, tokenizer
    tokenizer = AutoTokenizer.from_pretrained(config.model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if machine.cuda:
        from transformers import BitsAndBytesConfig

        # The CLI has kept one GPU already; a library caller that has not gets the same error (Trainer
        # would wrap the model in nn.DataParallel, which TRL refuses), as CUDA has started by now.
        cuda.refuse_several_gpus(machine, launched=runtime.launched)
        quantization = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_compute_dtype=torch.bfloat16)
            if config.load_in_4bit
            else BitsAndBytesConfig(load_in_8bit=True)
        )
        model = AutoModelForCausalLM.from_pretrained(
            config.model_path,
            quantization_config=quantization,
            device_map={"": runtime.local_rank},
            dtype=torch.bfloat16,
        )
        return model, tokenizer
    if config.load_in_4bit:
        raise ConfigError(f"{settings.LOAD_IN_4BIT} (QLoRA) needs a CUDA GPU")
    model = AutoModelForCausalLM.from_pretrained(config.model_path, dtype=torch.float32)
    return model, tokenizer


def precision_of(config: TrainConfig, model: Any, *, cuda: bool) -> str:
    """The precision a run really trains in, read from the model the trainer holds: the base's weights,
    the LoRA weights' dtype (TRL casts them to bfloat16 on an 8-bit or 4-bit base) and the arithmetic."""
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.requires_grad})
    arithmetic = "bfloat16 mixed" if mixed_bfloat16(config, cuda=cuda) else "float32"
    if not cuda:
        return arithmetic  # float32 weights and LoRA weights: the arithmetic says it all
    base = "4-bit" if config.load_in_4bit else "8-bit"
    return f"{base} base, {'/'.join(dtypes) or 'no'} LoRA weights, {arithmetic}"


def native_bfloat16() -> bool:
    """Whether this machine computes in bfloat16 natively: CUDA, or a CPU with AVX512-BF16 or AMX. (Where
    it is emulated, bfloat16 is many times slower than float32: `bench/cpu_precision.py`.)"""
    import torch

    if torch.cuda.is_available():
        return True
    cpu = torch.cpu
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch's own CPU feature checks
    return any(getattr(cpu, probe, lambda: False)() for probe in probes)


def mixed_bfloat16(config: TrainConfig, *, cuda: bool) -> bool:
    """Whether the run computes in bfloat16 mixed precision: `--precision bfloat16`, or auto on CUDA."""
    if config.precision == "bfloat16" and not (cuda or native_bfloat16()):
        raise ConfigError(
            f"{settings.PRECISION} bfloat16: this machine has no native bfloat16; use auto or float32"
        )
    return config.precision == "bfloat16" or (config.precision == "auto" and cuda)


@contextmanager
def _interruptible(flag: dict[str, bool]) -> Iterator[None]:
    """Ctrl-C (or SIGTERM) asks the trainer to save a checkpoint and stop at the end of the step, instead
    of dying."""

    def ask_to_stop(signum: int, frame: Any) -> None:
        flag["stop"] = True

    previous = {sig: signal.signal(sig, ask_to_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _device(model: Any) -> str:
    return str(next(model.parameters()).device)


def _digest(model: Any) -> str:
    """SHA-256 over the trainable (LoRA) weights, to compare ranks and runs."""
    import hashlib

    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        if param.requires_grad:
            digest.update(name.encode())
            digest.update(param.detach().to("cpu").float().contiguous().numpy().tobytes())
    return digest.hexdigest()


def build_trainer(
    config: TrainConfig,
    on_step: Callable[[int, int], None] | None = None,
    *,
    runtime: Runtime = ONE_PROCESS,
) -> Built:
    """Loads the data and the base model and builds the SFT trainer (nothing is trained yet).
    `on_step(step, steps)` is called after each optimizer step; the trainer's per-step dictionaries are
    printed only under `--verbose` (they are kept in the card's loss history either way)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import PrinterCallback, TrainerCallback, set_seed
    from trl import SFTConfig

    from slm_swap.local.engine import deterministic_cublas
    from slm_swap.train.packing import CompletionLossTrainer, use_mask_dropout, use_padding_free

    deterministic_cublas()
    if config.objective == "sft+dpo" and (config.protocol == NATIVE or runtime.world_size > 1):
        raise ConfigError(
            f"{settings.OBJECTIVE} sft+dpo: the preference step asks the fine-tuned model in slm-swap's own "
            f"format, in one process\n  fix: use {settings.PROTOCOL} prompt without a launcher, or "
            f"{settings.OBJECTIVE} sft"
        )
    if config.protocol == NATIVE:  # the template must have a tool format (exit 2 before anything loads)
        from transformers import AutoTokenizer

        template_tokenizer = AutoTokenizer.from_pretrained(config.model_path)
        templates.family_of(template_tokenizer, config.model_path.name)
    else:
        template_tokenizer = None
    train_examples = read_examples(config.train)
    if config.mask_names:
        train_examples = mask_share(train_examples, config.mask_names, config.seed)
    train_rows = _rows(train_examples, config.track, config.train, template_tokenizer, config.protocol)
    val_rows = _rows(read_examples(config.val), config.track, config.val, template_tokenizer, config.protocol)
    checkpoints = config.out / "checkpoints"
    if config.resume and not any(checkpoints.glob("checkpoint-*")):
        raise SlmSwapError(
            f"{settings.RESUME}: no checkpoint under {checkpoints}; start without {settings.RESUME}"
        )
    if not config.resume and config.out.exists() and any(config.out.iterdir()):
        raise SlmSwapError(
            f"{config.out} is not empty; pass {settings.RESUME} to continue its checkpoint, or choose "
            f"another {settings.OUT}"
        )
    engine = engine_available()
    # TRAINING_SEED seeds LoRA's initialisation (drawn from the global generators as the base loads and
    # the adapter is made) and the order of the training rows; nothing else here seeds them.
    set_seed(config.seed)
    model, tokenizer = load_base(config, engine, runtime)
    cuda = torch.cuda.is_available()
    trainer_args = trainer_settings(config, cuda=cuda, world_size=runtime.world_size)
    args = SFTConfig(output_dir=str(checkpoints), **trainer_args)
    lora: LoraConfig | None = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    if engine == "unsloth":
        from unsloth import FastLanguageModel

        # Unsloth patches its own LoRA layers in; SFTTrainer then gets a ready PEFT model.
        model = FastLanguageModel.get_peft_model(
            model,
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=linear_modules(model),
            random_state=config.seed,
        )
        lora = None
    stop = {"stop": False}

    class StopOnInterrupt(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if on_step is not None:
                on_step(state.global_step, state.max_steps)
            if stop["stop"]:
                control.should_save = True
                control.should_training_stop = True
            return control

    created = not config.out.exists()
    trainer = CompletionLossTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows),
        processing_class=tokenizer,
        peft_config=lora,
        callbacks=[StopOnInterrupt()],
    )
    if not runtime.verbose:
        trainer.remove_callback(PrinterCallback)
    for split, path in (("train", config.train), ("eval", config.val)):
        dataset = getattr(trainer, f"{split}_dataset")
        if dataset is not None and len(dataset) == 0:
            # TRL drops a row whose answer is cut off entirely by max_length: nothing would be learnt.
            if created:  # leave nothing behind of a run that cannot start
                shutil.rmtree(config.out, ignore_errors=True)
            raise SlmSwapError(
                f"{path}: no row keeps any of its answer within {settings.MAX_LENGTH} {config.max_length}\n"
                f"  fix: raise {settings.MAX_LENGTH} (the specification's default is "
                f"{settings.MAX_LENGTH.default})"
            )
    batches = "padded"
    if engine != "unsloth" and use_padding_free(trainer):
        batches = "padding-free"
    # TRL's loss would project every position through the LM head (off CUDA) or through a Triton kernel
    # compiled at first use (on CUDA); this one projects only the answers' positions, with plain torch.
    trainer.compact_loss = engine != "unsloth"
    if engine != "unsloth" and not cuda:  # CUDA's dropout kernel is fast already
        use_mask_dropout(trainer.model)
    precision = precision_of(config, trainer.model, cuda=cuda)
    return Built(trainer, tokenizer, engine, precision, stop, batches, device=_device(trainer.model))


def trainer_settings(config: TrainConfig, *, cuda: bool, world_size: int = 1) -> dict[str, Any]:
    """The SFTConfig of a run, on a CUDA machine or a CPU and under DDP: the plan a launcher's ranks get."""
    return {
        "num_train_epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.batch_size,
        "per_device_eval_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation,
        "max_length": config.max_length,
        "completion_only_loss": True,
        "seed": config.seed,
        "data_seed": config.seed,
        "full_determinism": True,
        "logging_steps": 1,
        "eval_strategy": "epoch",
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": 2,
        "report_to": [],
        "use_cpu": not cuda,
        # Recomputing activations saves GPU memory; on a CPU memory is plentiful and it only costs time.
        "gradient_checkpointing": cuda,
        "bf16": mixed_bfloat16(config, cuda=cuda),
        "fp16": False,
        # LoRA leaves no trainable parameter unused: DDP need not search for them every step.
        "ddp_find_unused_parameters": False if world_size > 1 else None,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


# Settings a card records only when they are not their default, so that adapters trained before each
# existed still match.
LATER_SETTINGS = {"protocol": PROMPT, "mask_names": 0.0, "objective": "sft"}


def hyperparameters(config: TrainConfig) -> dict[str, Any]:
    """The settings of a run as its card records them (everything but paths and --resume)."""
    return {
        k: v
        for k, v in asdict(config).items()
        if k not in ("train", "val", "out", "model_path", "resume")
        and not (k in LATER_SETTINGS and v == LATER_SETTINGS[k])
    }


def train_inputs(config: TrainConfig) -> dict[str, Any]:
    """What an adapter is a function of (the identity rule): the content of the splits and of the base
    checkpoint, and the hyperparameters. An adapter whose card records the same is kept by `run`."""
    return {
        "train_sha256": file_digest(config.train),
        "val_sha256": file_digest(config.val),
        "base_model_sha256": checkpoint_digest(config.model_path),
        "hyperparameters": hyperparameters(config),
    }


def train(
    config: TrainConfig,
    tracer: Tracer,
    *,
    session_id: str | None = None,
    on_step: Callable[[int, int], None] | None = None,
    runtime: Runtime = ONE_PROCESS,
) -> TrainResult:
    """Fine-tunes a LoRA adapter and writes it, with its tokenizer and card, to `config.out`; the trace
    joins `session_id` when given (a `slm-swap run`). `runtime` says which rank this process is (under a
    launcher) and whether it is verbose."""
    built = build_trainer(config, on_step, runtime=runtime)
    trainer, tokenizer, engine, precision, stop = (
        built.trainer,
        built.tokenizer,
        built.engine,
        built.precision,
        built.stop,
    )
    metadata = {
        "track": config.track,
        "train": str(config.train),
        "val": str(config.val),
        "adapter": str(config.out),
        "base_model": str(config.model_path),
        "engine": engine,
        "device": built.device,
        "precision": precision,
        "batches": built.batches,
        "strategy": config.strategy,
        **train_inputs(config),
    }
    start = time.perf_counter()
    with (
        tracer.run(
            f"train {config.track}",
            input={"train": str(config.train), "val": str(config.val)},
            metadata=metadata,
            session_id=session_id,
        ) as trace,
        _interruptible(stop),
    ):
        output = trainer.train(resume_from_checkpoint=True if config.resume else None)
        seconds = time.perf_counter() - start
        history = trainer.state.log_history
        train_losses = [h["loss"] for h in history if "loss" in h]
        val_loss = None if stop["stop"] else _final_val_loss(trainer)
        digest = _digest(trainer.model)
        if runtime.world_size > 1 or runtime.verbose:
            # Each rank's adapter, so a multi-GPU run shows that its ranks agree (the card keeps rank 0's).
            print(f"rank {runtime.local_rank} adapter sha256 {digest}", flush=True)
        card = AdapterCard(
            **metadata,
            interrupted=stop["stop"],
            steps=trainer.state.global_step,
            train_loss_first=train_losses[0] if train_losses else None,
            train_loss_last=train_losses[-1] if train_losses else None,
            train_loss_mean=output.training_loss,
            val_loss=val_loss,
            wall_seconds=round(seconds, 2),
            adapter_sha256=digest,
            versions=_versions(),
        )
        if not stop["stop"] and trainer.is_world_process_zero():
            trainer.save_model(str(config.out))
            tokenizer.save_pretrained(str(config.out))
            if config.objective == "sft+dpo":
                preferred = preference_step(
                    config,
                    tokenizer,
                    cuda=built.device.startswith("cuda"),
                    bf16=mixed_bfloat16(config, cuda=built.device.startswith("cuda")),
                    load_base=lambda: load_base(config, "trl+peft", runtime)[0],
                    digest=_digest,
                )
                card = replace(
                    card,
                    preference=preferred.to_json(),
                    adapter_sha256=preferred.adapter_sha256 or card.adapter_sha256,
                )
            readable_weights(config.out)
            # The digest of the files just written is the adapter's identity for later evaluations.
            card = replace(card, adapter_files_sha256=adapter_files_digest(config.out))
            write_json(config.out / ADAPTER_CARD, card.to_json())
        trace.update(
            output={"train_loss": card.train_loss_last, "val_loss": val_loss},
            metadata={"steps": card.steps, "wall_seconds": card.wall_seconds},
        )
        if val_loss is not None:
            trace.score("val_loss", float(val_loss))
    last = train_losses[-1] if train_losses else None
    return TrainResult(
        config.out, engine, last, val_loss, trainer.state.global_step, seconds, stop["stop"], card
    )


def _final_val_loss(trainer: Any) -> float | None:
    """The validation loss of the trained adapter: the one the end of the last epoch logged, else measured
    now (a fractional epoch), so the validation rows are not run twice."""
    state = trainer.state
    logged = [h for h in state.log_history if "eval_loss" in h and h.get("step") == state.global_step]
    if logged:
        return float(logged[-1]["eval_loss"])
    loss = trainer.evaluate().get("eval_loss")
    return None if loss is None else float(loss)


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "slm_swap": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "trl": trl.__version__,
    }
