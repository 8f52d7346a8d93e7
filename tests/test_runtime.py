"""The process's runtime, read once at the command line: a launcher's rank, the verbosity, the cache
folder, and what a process slm-swap starts is given of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slm_swap.runtime import VERBOSE_ENV, Runtime
from tests.cli import cli


def test_a_launchers_rank_is_read_from_its_environment() -> None:
    assert Runtime.from_env({}) == Runtime(local_rank=0, world_size=1, launched=False, verbose=False)
    rank = Runtime.from_env({"LOCAL_RANK": "1", "WORLD_SIZE": "2", "PATH": "/bin"}, verbose=True)
    assert rank == Runtime(local_rank=1, world_size=2, launched=True, verbose=True)
    assert Runtime.from_env({"LOCAL_RANK": "0"}).launched  # either variable says a launcher started it


def test_the_cache_folder_follows_xdg_cache_home() -> None:
    assert Runtime.from_env({"XDG_CACHE_HOME": "/srv/cache"}).cache_dir == Path("/srv/cache/slm-swap")
    home = Path.home() / ".cache" / "slm-swap"
    assert Runtime.from_env({"XDG_CACHE_HOME": ""}).cache_dir == home == Runtime().cache_dir


def test_a_started_process_is_as_verbose_as_the_command() -> None:
    env = {"PATH": "/bin", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    assert Runtime(verbose=True).child_environment(env) == {**env, VERBOSE_ENV: "1"}
    assert Runtime().child_environment(env) == env
    assert VERBOSE_ENV not in env  # the caller's mapping is left as it was


def test_verbose_goes_to_the_command_not_into_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--verbose` reaches the commands as their runtime; this process's environment is not a channel."""
    monkeypatch.delenv(VERBOSE_ENV, raising=False)
    result = cli(["--verbose", "compare", "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    assert VERBOSE_ENV not in os.environ
