"""slm-swap's command line, run in-process the way every test runs it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from click.testing import CliRunner, Result

from slm_swap.cli import main


def cli(args: Sequence[str], **kwargs: Any) -> Result:
    """`slm-swap ARGS` through click's CliRunner (`env`, `input` and the rest as `CliRunner.invoke` takes
    them): its exit code, output and exception."""
    return CliRunner().invoke(main, list(args), **kwargs)
