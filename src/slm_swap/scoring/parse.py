"""Reading tool calls out of raw model text. Never raises, whatever the text.

Both parsers accept surrounding whitespace and one enclosing markdown code fence (hosted models often add
one); any other text around the answer makes it invalid for its track.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from slm_swap.files import loads
from slm_swap.types import ToolCall, Track

_FENCE = re.compile(r"^```[\w-]*[ \t]*\n(.*?)\n?```$", re.S)
# A block's body never runs past the next `<tool_call`, so an output full of unclosed blocks is read in
# one pass rather than rescanned to its end from every opening (quadratic on a runaway answer).
TOOL_CALL_BLOCK = re.compile(
    r'<tool_call\s+name\s*=\s*"([^"<>]*)"\s*>((?:(?!</?tool_call).)*)</tool_call>', re.S
)


@dataclass(frozen=True)
class Parsed:
    """What could be read from one output.

    `valid` is the track's syntax check (JSON valid / tool-call format valid). `calls` holds every
    well-formed call found, or None when nothing call-shaped was there. `document` is the decoded JSON of
    a structured answer, for the schema check. `no_call` marks the well-formed no-call answer (structured
    `{"calls": []}`; toolcall, plain text with no `<tool_call` in it); anything else that holds no call
    is malformed, never an abstention.
    """

    valid: bool
    calls: tuple[ToolCall, ...] | None
    document: Any = None
    problem: str | None = None
    no_call: bool = False


def _strip(text: str) -> str:
    text = text.strip()
    fenced = _FENCE.match(text)
    return fenced.group(1).strip() if fenced else text


def _loads(text: str) -> tuple[bool, Any]:
    try:
        return True, loads(text)
    except (ValueError, RecursionError):
        return False, None


def _call_from(entry: Any) -> ToolCall | None:
    if (
        isinstance(entry, dict)
        and isinstance(entry.get("name"), str)
        and isinstance(entry.get("arguments"), dict)
    ):
        return ToolCall(name=entry["name"], arguments=entry["arguments"])
    return None


def parse_structured(text: str) -> Parsed:
    body = _strip(text)
    if not body:
        return Parsed(False, None, problem="empty output")
    ok, doc = _loads(body)
    if not ok:
        return Parsed(False, None, problem="not valid JSON")
    entries = doc.get("calls") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        return Parsed(True, None, doc, problem='JSON is not an object with a "calls" list')
    calls = tuple(c for c in map(_call_from, entries) if c is not None)
    return Parsed(True, calls, doc, no_call=not entries)


def parse_toolcall(text: str) -> Parsed:
    body = _strip(text)
    if not body:
        return Parsed(False, None, problem="empty output")
    calls: list[ToolCall] = []
    bad_bodies = 0
    for match in TOOL_CALL_BLOCK.finditer(body):
        ok, args = _loads(match.group(2).strip())
        if ok and isinstance(args, dict):
            calls.append(ToolCall(name=match.group(1), arguments=args))
        else:
            bad_bodies += 1
    if not calls and not bad_bodies:
        if "<tool_call" in body:
            return Parsed(False, None, problem="a <tool_call block that is not well-formed")
        return Parsed(True, (), no_call=True)  # a reply in plain text: the no-call answer
    outside = TOOL_CALL_BLOCK.sub("", body).strip()
    problem = None
    if bad_bodies:
        problem = f"{bad_bodies} block(s) do not hold a JSON object"
    elif outside:
        problem = "text outside the <tool_call> blocks"
    return Parsed(problem is None, tuple(calls), problem=problem)


def parse(track: Track, text: str) -> Parsed:
    return parse_structured(text) if track == "structured" else parse_toolcall(text)
