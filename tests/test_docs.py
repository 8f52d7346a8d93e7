"""The documentation stays true to the repository: every relative link in README.md and docs/*.md leads to
a file that exists (and, for `#anchor` links, to one of its headings), and every `slm-swap` command shown
in a fenced code block names a command and options the CLI has. Options are read from the click objects,
not from `--help` output, so the check is fast and needs no model."""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from slm_swap.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Fences whose content is program output or data, not commands to type.
NOT_COMMANDS = {"text", "json", "jsonl", "output"}

LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`+[^`]*`+")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^ {0,3}(```+|~~~+)\s*([\w+-]*)")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SEGMENT_BREAK = re.compile(r"\s*(?:&&|\|\||;|\s\|\s)\s*")


@dataclass(frozen=True)
class Line:
    """A logical line of a page: its text with continuations joined, and where it starts."""

    page: Path
    number: int
    text: str
    fence: str | None  # the fence's language ("" when unnamed), None outside fences

    def where(self) -> str:
        return where(self.page, self.number)


def where(page: Path, number: int) -> str:
    """`file:line`, the file relative to the repository when it lies inside it."""
    return f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}:{number}"


def lines(page: Path) -> Iterator[Line]:
    """The page's lines, each marked with the fence it sits in; inside fences, lines ending in `\\` are
    joined with the next, as a shell would."""
    fence: str | None = None
    marker = ""
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        opening = FENCE.match(raw)
        if fence is None and opening:
            fence, marker = opening.group(2).lower(), opening.group(1)
            continue
        if fence is not None and raw.strip().startswith(marker) and not raw.strip()[len(marker) :].strip():
            if pending:
                yield Line(page, pending[0], pending[1], fence)
                pending = None
            fence = None
            continue
        if fence is None:
            yield Line(page, number, raw, None)
            continue
        start, text = pending if pending else (number, "")
        text = f"{text} {raw.strip()}" if text else raw
        if text.endswith("\\"):
            pending = (start, text[:-1].rstrip())
            continue
        pending = None
        yield Line(page, start, text, fence)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "")
    text = "".join(ch for ch in text.lower() if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N", "M"))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in lines(page):
        match = HEADING.match(line.text) if line.fence is None else None
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def link_problems(page: Path) -> list[str]:
    """Links outside code, read over the whole prose so that link text may wrap across lines."""
    prose = [(line.number, "" if line.fence is not None else line.text) for line in lines(page)]
    text = "\n".join(t for _, t in prose)
    text = INLINE_CODE.sub(lambda code: "\n" * code.group().count("\n"), text)
    problems = []
    for match in LINK.finditer(text):
        target = match.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        at = where(page, prose[text.count("\n", 0, match.start(1))][0])
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            problems.append(f"{at}: link to {target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{at}: link to {target}: no heading with that anchor")
    return problems


def commands() -> dict[tuple[str, ...], click.Command]:
    """Every command path the CLI has (`("eval",)`, `("models", "pull")`), with its click object."""
    found: dict[tuple[str, ...], click.Command] = {}

    def walk(group: click.Group, prefix: tuple[str, ...]) -> None:
        for name, command in group.commands.items():
            found[(*prefix, name)] = command
            if isinstance(command, click.Group):
                walk(command, (*prefix, name))

    walk(main, ())
    return found


def option_names(command: click.Command, parent: click.Context) -> set[str]:
    context = click.Context(command, parent=parent)
    return {name for param in command.get_params(context) for name in (*param.opts, *param.secondary_opts)}


def invocation(words: list[str]) -> list[str] | None:
    """The arguments after `slm-swap` when the words run it, past any `VAR=value`, `uv run`, a path to
    the executable (`.venv/bin/slm-swap`) or `python -m slm_swap`; None when they run something else."""
    while words and ENV_ASSIGNMENT.match(words[0]):
        words = words[1:]
    if words[:2] == ["uv", "run"]:
        words = words[2:]
    if words and words[0].rsplit("/", 1)[-1] == "slm-swap":
        return words[1:]
    if len(words) >= 3 and re.fullmatch(r"(\S*/)?python3?", words[0]) and words[1:3] == ["-m", "slm_swap"]:
        return words[3:]
    return None


def command_problems(page: Path) -> list[str]:
    known = commands()
    root = click.Context(main, info_name="slm-swap", **main.context_settings)
    global_options = option_names(main, root)
    problems = []
    for line in lines(page):
        if line.fence is None or line.fence in NOT_COMMANDS:
            continue
        text = re.sub(r"(^|\s)#.*$", "", line.text).strip()
        for segment in SEGMENT_BREAK.split(text):
            try:
                words = shlex.split(segment)
            except ValueError:
                words = segment.split()
            args = invocation(words)
            if args is None:
                continue
            while args and args[0].startswith("-"):
                if args[0].split("=", 1)[0] not in global_options:
                    problems.append(f"{line.where()}: slm-swap has no option {args[0]}")
                args = args[1:]
            if not args:
                continue
            path: tuple[str, ...] = ()
            while args and (*path, args[0]) in known:
                path, args = (*path, args[0]), args[1:]
                if not isinstance(known[path], click.Group):
                    break
            if not path or isinstance(known[path], click.Group):
                problems.append(f"{line.where()}: slm-swap has no command {' '.join((*path, *args[:1]))}")
                continue
            allowed = option_names(known[path], root)
            for word in args:
                if word == "--":  # the rest goes to another program (`launch ... -- <train options>`)
                    break
                name = word.lstrip("[(").split("=", 1)[0].rstrip("])")
                if name.startswith("-") and len(name) > 1 and name not in allowed:
                    problems.append(f"{line.where()}: slm-swap {' '.join(path)} has no option {name}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading(page: Path) -> None:
    problems = link_problems(page)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_shown_exists_with_its_options(page: Path) -> None:
    problems = command_problems(page)
    assert not problems, "\n".join(problems)


def test_the_checks_find_what_they_look_for(tmp_path: Path) -> None:
    """A bad link (also one whose text wraps), a bad anchor, an unknown command and an unknown option are
    each reported with their file and line; env prefixes, continuations and other programs are read as a
    shell would."""
    (tmp_path / "other.md").write_text("# A `code` heading, here\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-code-heading-here) [bad](missing.md) [wrapped\ntext](other.md#nowhere)\n"
        "```bash\n"
        "LANGFUSE_DISABLED=1 slm-swap eval --track toolcall \\\n"
        "    --model-kind slm --no-such-flag\n"
        "make test && slm-swap frobnicate\n"
        "python bench/bfcl.py --rows 40   # not slm-swap\n"
        "slm-swap models pull --dest x && .venv/bin/slm-swap --verbose compare --hosted a.json\n"
        "```\n",
        encoding="utf-8",
    )
    assert [p.split(":", 1)[1] for p in link_problems(page)] == [
        "1: link to missing.md: no such file",
        "2: link to other.md#nowhere: no heading with that anchor",
    ]
    problems = command_problems(page)
    assert [p.split(":", 2)[1] for p in problems] == ["4", "6"]
    assert problems[0].endswith("slm-swap eval has no option --no-such-flag")
    assert problems[1].endswith("slm-swap has no command frobnicate")
