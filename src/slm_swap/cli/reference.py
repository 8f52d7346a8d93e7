"""The command line's reference, as docs/commands.md shows it: each command's options as a Markdown table,
made from the click commands themselves. The page's cog blocks call `options_table` (`cog -r
docs/commands.md` writes the tables, `cog --check` in `make lint` fails when one is stale), so the page
cannot drift from `--help`."""

from __future__ import annotations

import re

import click

from slm_swap.cli import main


def _context(*words: str) -> click.Context:
    """The context of the command the words name after `slm-swap` (none: the program itself), made as
    `--help` makes it: under its groups' contexts, which carry their settings."""
    ctx = click.Context(main, info_name="slm-swap", **main.context_settings)
    for word in words:
        group = ctx.command
        command = group.commands.get(word) if isinstance(group, click.Group) else None
        if command is None:
            raise ValueError(f"slm-swap {' '.join(words)}: no such command")
        ctx = click.Context(command, info_name=word, parent=ctx, **command.context_settings)
    return ctx


def options_table(*words: str) -> str:
    """A Markdown table of the options of the command the words name (none: the global options), one row
    each: its flags, what it takes, its default (as `--help` shows it, so never a secret's), its
    environment variable and its help. Hidden options are left out, and so is `--help`."""
    ctx = _context(*words)
    rows = ["| option | takes | default | variable | help |", "|---|---|---|---|---|"]
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        extra = param.get_help_extra(ctx)
        flags = ", ".join(f"`{flag}`" for flag in (*param.opts, *param.secondary_opts))
        default = "required" if param.required else _code(extra.get("default", ""))
        # The variable even where `--help` does not show it (`--verbose`'s): a name, never a value.
        envvars = [param.envvar] if isinstance(param.envvar, str) else param.envvar or []
        variables = ", ".join(_code(name) for name in envvars)
        cells = (flags, _takes(param, extra.get("range")), default, variables, param.help or "")
        rows.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(rows) + "\n"


def _takes(param: click.Option, value_range: str | None) -> str:
    if param.is_flag:
        return "flag"
    if isinstance(param.type, click.Choice):
        taken = ", ".join(_code(str(choice)) for choice in param.type.choices)
    else:
        taken = param.metavar or param.type.name.upper().removesuffix(" RANGE")  # the range follows
    if value_range:
        taken += f" ({value_range})"
    if param.multiple:
        taken += ", repeatable"
    return taken


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _cell(text: str) -> str:
    # A table row is one line, a bare `|` would end its cell (even inside backticks) and `<eval-dir>`
    # would be read as an HTML tag.
    return re.sub(r"<(?=[A-Za-z/])", "&lt;", " ".join(text.split()).replace("|", "\\|"))
