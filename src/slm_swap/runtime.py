"""This process's place and manner, read once from the environment at the command line's edge.

A launcher (accelerate launch, torchrun) tells each rank where it is with LOCAL_RANK and WORLD_SIZE;
`--verbose` (or SLM_SWAP_VERBOSE) lets the libraries' own output through; XDG_CACHE_HOME moves the folder
fetched wheels are kept in (`wheels.py`). The command line reads them into one `Runtime` and passes it to
the code that needs them, which never reads `os.environ` for them. A process slm-swap starts gets its
environment explicitly (`child_environment`), so that it is as verbose as the command that started it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

VERBOSE_ENV = "SLM_SWAP_VERBOSE"
LAUNCHED = ("WORLD_SIZE", "LOCAL_RANK")  # set by accelerate launch and torchrun for each rank


def _home_cache() -> Path:
    return Path.home() / ".cache" / "slm-swap"


@dataclass(frozen=True)
class Runtime:
    """Where this process runs, how it speaks and where it keeps what it fetches. The defaults are a library
    caller's: one quiet process that no launcher started, caching under ~/.cache/slm-swap."""

    local_rank: int = 0  # the GPU of this rank on its machine, under a launcher
    world_size: int = 1  # how many ranks train together
    launched: bool = False  # a launcher started this process: it keeps the GPU it was given
    verbose: bool = False  # the libraries' bars and warnings and the trainer's per-step logs are shown
    cache_dir: Path = field(default_factory=_home_cache)  # fetched wheels: BFCL's data, the embedded model

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, verbose: bool = False) -> Runtime:
        """The runtime `env` describes (the command line passes `os.environ`); `verbose` is the
        command line's `--verbose`, which reads SLM_SWAP_VERBOSE itself."""
        cache_home = env.get("XDG_CACHE_HOME")
        return cls(
            local_rank=int(env.get("LOCAL_RANK", "0")),
            world_size=int(env.get("WORLD_SIZE", "1")),
            launched=any(key in env for key in LAUNCHED),
            verbose=verbose,
            cache_dir=Path(cache_home) / "slm-swap" if cache_home else _home_cache(),
        )

    def child_environment(self, env: Mapping[str, str]) -> dict[str, str]:
        """`env` for a process this one starts (a launcher's ranks, the stand-in server), with this
        process's verbosity, which the child's command line reads as `--verbose`."""
        return {**env, VERBOSE_ENV: "1"} if self.verbose else dict(env)


ONE_PROCESS = Runtime()  # a library caller's: no launcher, quiet
