"""What a CUDA run needs, checked before any model loads, and which GPU a single process trains on.

A run on an NVIDIA machine can fail far from its cause: a torch build the driver cannot run evaluates
silently in float32 on the CPU; an 8-bit load without bitsandbytes (or with one older than transformers
accepts) stops inside transformers; xgrammar's token mask and TRL's fused LM head are Triton kernels,
compiled at their first use with the machine's C compiler against Python's headers, so a machine without
them fails deep inside a kernel build. `preflight` checks these up front and stops with the fix.

Several GPUs visible to one process that trains: `Trainer` would wrap the model in `nn.DataParallel`,
which TRL refuses. Such a process trains on one GPU (`one_gpu`), and says so; `slm-swap launch` trains
on all of them (one DDP rank per GPU).

CUDA and Triton take their settings (CUDA_VISIBLE_DEVICES, CC) from the process's environment, at the
moment they start. So the command line narrows the GPUs there (`keep_one_gpu(os.environ, ...)`), and
`preflight` reads the environment as they will: the one place outside the command line that reads it.
"""

from __future__ import annotations

import os
import shutil
import sysconfig
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from slm_swap import settings
from slm_swap.errors import ConfigError

# transformers' own floor for 8-bit and 4-bit loading (`BITSANDBYTES_MIN_VERSION`).
BITSANDBYTES_MIN = (0, 46, 1)
DRIVER_FILE = Path("/proc/driver/nvidia/version")


@dataclass(frozen=True)
class Machine:
    """The facts a CUDA run depends on, as read on this machine (`probe`)."""

    driver: str | None  # the NVIDIA kernel driver's version, when one is loaded
    hidden: bool  # CUDA_VISIBLE_DEVICES is empty: the user chose the CPU
    torch: str  # torch's version
    torch_cuda: str | None  # the CUDA version torch was built for (None: a CPU build)
    cuda: bool  # torch can use a GPU
    compiler: str | None  # the C compiler Triton would use
    python_headers: bool  # Python.h, which Triton's launcher stubs include
    bitsandbytes: str | None  # its version, when installed
    visible: str | None = None  # CUDA_VISIBLE_DEVICES (None: not set, every GPU)


@dataclass(frozen=True)
class Needs:
    """What a run will use on CUDA: an 8-bit or 4-bit base (bitsandbytes), Triton kernels (constrained
    decoding's token mask, training's fused LM head)."""

    quantized: bool = False
    kernels: bool = False


def probe(env: Mapping[str, str]) -> Machine:
    """Reads the machine. Counting GPUs here initialises CUDA, so pick the GPU (`one_gpu`) before."""
    import torch

    driver = None
    if DRIVER_FILE.is_file():
        words = DRIVER_FILE.read_text(errors="replace").split()
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.159.03  ..."
        driver = next((w for w in words if w[:1].isdigit() and w.count(".") >= 1), "unknown")
    try:
        bnb: str | None = metadata.version("bitsandbytes")
    except metadata.PackageNotFoundError:
        bnb = None
    compiler = next(
        (found for name in (env.get("CC"), "cc", "gcc", "clang") if name and (found := shutil.which(name))),
        None,
    )
    include = sysconfig.get_paths().get("include")
    return Machine(
        driver=driver,
        hidden=env.get("CUDA_VISIBLE_DEVICES") is not None and not env["CUDA_VISIBLE_DEVICES"].strip(),
        torch=torch.__version__,
        torch_cuda=torch.version.cuda,
        cuda=torch.cuda.is_available(),
        compiler=compiler,
        python_headers=bool(include) and (Path(str(include)) / "Python.h").is_file(),
        bitsandbytes=bnb,
        visible=env.get("CUDA_VISIBLE_DEVICES"),
    )


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in text.split("+")[0].split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def problems(machine: Machine, needs: Needs) -> list[str]:
    """What stops this run on this machine, each as the problem and its fix (empty: nothing)."""
    found = []
    if machine.driver is not None and not machine.hidden and not machine.cuda:
        if machine.torch_cuda is None:
            why = f"this torch ({machine.torch}) is a CPU build"
            fix = "install a CUDA build of torch that the driver supports"
        else:
            why = (
                f"this torch ({machine.torch}) was built for CUDA {machine.torch_cuda}, "
                "which the driver cannot run"
            )
            fix = "update the NVIDIA driver, or install a torch built for an older CUDA"
        found.append(
            f"an NVIDIA GPU is here (driver {machine.driver}) but {why}, so the model would run on the CPU\n"
            f"  fix: {fix}; or run on the CPU knowingly with CUDA_VISIBLE_DEVICES= (empty)"
        )
        return found  # the rest only matters once the GPU is used
    if not machine.cuda:
        return found
    if needs.quantized:
        if machine.bitsandbytes is None:
            found.append(
                "an 8-bit (or 4-bit) base on CUDA needs bitsandbytes, which is not installed\n"
                f"  fix: pip install 'slm-swap[cuda]'; or load without it: {settings.LOAD_IN} bfloat16"
            )
        elif _version(machine.bitsandbytes) < BITSANDBYTES_MIN:
            floor = ".".join(map(str, BITSANDBYTES_MIN))
            found.append(
                f"bitsandbytes {machine.bitsandbytes} is older than transformers accepts ({floor})\n"
                "  fix: pip install -U 'slm-swap[cuda]'"
            )
    if needs.kernels and (machine.compiler is None or not machine.python_headers):
        missing = " and ".join(
            what
            for what, ok in (("a C compiler", machine.compiler), ("Python's headers", machine.python_headers))
            if not ok
        )
        found.append(
            f"Triton compiles its GPU kernels (constrained decoding's token mask, training's fused LM head) "
            f"at first use and needs {missing}, which this machine lacks\n"
            "  fix: apt-get install build-essential python3-dev (or set CC to a C compiler)"
        )
    return found


def preflight(needs: Needs) -> Machine:
    """Stops a run that would fail or silently leave the GPU unused, before any model loads (exit 2,
    with the fix); returns the machine as read. It reads this process's environment, as CUDA and Triton
    will (see the module's docstring)."""
    machine = probe(os.environ)
    found = problems(machine, needs)
    if found:
        raise ConfigError(found[0])
    return machine


@dataclass(frozen=True)
class Pin:
    """The GPU a single process should keep: `visible` for CUDA_VISIBLE_DEVICES (None: leave it as it
    is) and what to tell the user."""

    visible: str | None = None
    note: str | None = None


def one_gpu(gpus: int, *, visible: str | None = None, launched: bool = False) -> Pin:
    """Which GPU a process that trains should keep, when `gpus` are visible to it (`visible`: the
    CUDA_VISIBLE_DEVICES it has). A launcher's rank (`Runtime.launched`) keeps what it was given; a
    single process keeps the first visible."""
    if gpus <= 1 or launched:
        return Pin()
    listed = [d.strip() for d in (visible or "").split(",") if d.strip()]
    first = listed[0] if listed else "0"
    return Pin(
        visible=first,
        note=f"{gpus} GPUs are visible to this one process: it trains on GPU {first} alone "
        "(to train on every GPU, one process each: slm-swap launch --strategy parallel|sequential)",
    )


def keep_one_gpu(env: MutableMapping[str, str], *, launched: bool) -> str | None:
    """Applies `one_gpu` to this process's environment `env` (the command line's `os.environ`) before
    CUDA starts; returns the note to show.

    torch counts GPUs through NVML without starting CUDA, and CUDA reads CUDA_VISIBLE_DEVICES only when
    it starts, so setting it here takes effect."""
    import torch

    pin = one_gpu(torch.cuda.device_count(), visible=env.get("CUDA_VISIBLE_DEVICES"), launched=launched)
    if pin.visible is None:
        return None
    env["CUDA_VISIBLE_DEVICES"] = pin.visible
    if torch.cuda.device_count() > 1:  # CUDA had started already (NVML unavailable): too late to choose
        raise _several_gpus(pin.visible)
    return pin.note


def refuse_several_gpus(machine: Machine, *, launched: bool) -> None:
    """Stops a process that trains where CUDA has started with several GPUs in sight and no launcher
    gave it one (`keep_one_gpu` was not called before): `Trainer` would wrap the model in
    `nn.DataParallel`, which TRL refuses."""
    import torch

    pin = one_gpu(torch.cuda.device_count(), visible=machine.visible, launched=launched)
    if pin.visible is not None:
        raise _several_gpus(pin.visible)


def _several_gpus(first: str) -> ConfigError:
    return ConfigError(
        "several GPUs are visible to one training process, which TRL cannot use\n"
        f"  fix: CUDA_VISIBLE_DEVICES={first} slm-swap ..., or slm-swap launch for every GPU"
    )


def describe(model: object) -> str:
    """Where a loaded model's weights are: `cpu`, `cuda:0`, or the devices `device_map` spread it over."""
    device_map = getattr(model, "hf_device_map", None)
    if isinstance(device_map, dict):
        devices = sorted({str(d) for d in device_map.values()})
        named = [d if not d.isdigit() else f"cuda:{d}" for d in devices]
        return ",".join(named)
    device = getattr(model, "device", None)
    return str(device) if device is not None else "unknown"
