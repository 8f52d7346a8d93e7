"""docs/commands.md's option tables are the command line's own: cog regenerates them from the click commands
(`slm_swap.cli.reference`), and a table that no longer matches its command fails here as in `make lint`.
The tables show what `--help` shows: choices, defaults and variables, never a secret's value, no hidden
option."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from slm_swap import settings
from slm_swap.cli import main
from slm_swap.cli.options import option
from slm_swap.cli.reference import options_table
from slm_swap.settings import Setting

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "commands.md"


def cog_check(page: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cogapp", "--check", "--diff", str(page)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def rows(table: str) -> dict[str, dict[str, str]]:
    """The table's rows by their first flag, each a mapping of column name to cell."""
    lines = table.strip().splitlines()
    split = re.compile(r"\s*(?<!\\)\|\s*")
    header = split.split(lines[0].strip("| "))
    found = {}
    for line in lines[2:]:
        cells = dict(zip(header, split.split(line.strip("| ")), strict=True))
        found[cells["option"].split(",")[0].strip("`")] = cells
    return found


def test_the_tables_in_commands_md_match_the_commands() -> None:
    checked = cog_check(PAGE)
    assert checked.returncode == 0, (
        f"docs/commands.md's option tables are stale; regenerate them: .venv/bin/cog -r docs/commands.md\n"
        f"{checked.stdout}{checked.stderr}"
    )


def test_a_stale_table_fails_the_check(tmp_path: Path) -> None:
    page = tmp_path / "commands.md"
    text = PAGE.read_text(encoding="utf-8")
    assert text.count("| `--model-kind` |") >= 1
    page.write_text(text.replace("| `--model-kind` |", "| `--model-type` |", 1), encoding="utf-8")
    checked = cog_check(page)
    assert checked.returncode != 0
    assert "--model-type" in checked.stdout + checked.stderr  # the diff shows what is stale


def test_the_eval_table_names_the_model_kinds_and_never_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-the-key-itself")
    table = options_table("eval")
    eval_rows = rows(table)
    assert eval_rows["--model-kind"]["takes"] == ", ".join(f"`{kind}`" for kind in settings.MODEL_KINDS)
    assert eval_rows["--model-kind"]["default"] == "required"
    assert eval_rows["--api-key"]["default"] == ""
    assert eval_rows["--api-key"]["variable"] == "`OPENAI_API_KEY`"
    assert eval_rows["--batch-size"]["default"] == f"`{settings.BATCH_SIZE.default}`"
    assert "sk-the-key-itself" not in table


def test_a_secret_default_and_a_hidden_option_are_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = Setting("--token", "s3cret-default", "SLM_SWAP_TEST_TOKEN", "A token.", secret=True)

    @click.command()
    @option(secret)
    @option(Setting("--internal", 1, None, "Set by another command."), hidden=True)
    @option(Setting("--tries", 3, None, "How many tries.", min=1))
    def probe(**kw: object) -> None:
        """A command made to be tabled."""

    monkeypatch.setitem(main.commands, "probe", probe)
    table = options_table("probe")
    probe_rows = rows(table)
    assert probe_rows["--token"]["default"] == ""
    assert probe_rows["--token"]["variable"] == "`SLM_SWAP_TEST_TOKEN`"
    assert "s3cret-default" not in table
    assert "--internal" not in table
    assert probe_rows["--tries"] == {
        "option": "`--tries`",
        "takes": "INTEGER (x>=1)",
        "default": "`3`",
        "variable": "",
        "help": "How many tries.",
    }
