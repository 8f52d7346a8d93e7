"""How a native tool format writes an answer of calls, for grammar-constrained decoding and its stop rules:
the calls' list opening and closing, each call's opening (with its tool's name) and closing around its
arguments, and what stands between two calls. One per chat-template family (`templates.py`), each the
form that family's reader takes back.

A format's name in a `Constraint` and the stop rules is `native:<family>`; the two tracks' own formats are
`toolcall` and `structured`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class CallFormat:
    prefix: str  # before the first call
    open: str  # a call's opening, `{name}` standing for its tool's name
    close: str  # after its arguments
    sep: str  # between two calls
    suffix: str  # after the last call

    @property
    def head(self) -> str:
        """A call's opening up to its tool's name."""
        return self.open.split("{name}")[0]

    def opening(self, name: str) -> str:
        return self.head + name + self.open.split("{name}")[1]

    @property
    def first(self) -> str:
        """The text that begins an answer of calls, up to the first tool's name."""
        return self.prefix + self.head

    def lark(self, names: list[str]) -> str:
        """The answer as a Lark grammar: one or more calls (each alternative `@args<i>` for tool i's
        arguments), or a reply in plain text without the character that begins a call."""
        calls = " ".join(
            part
            for part in (
                json.dumps(self.prefix) if self.prefix else "",
                "call",
                f"({json.dumps(self.sep)} call)*",
                json.dumps(self.suffix) if self.suffix else "",
            )
            if part
        )
        alternatives = " | ".join(
            f"{json.dumps(self.opening(name))} @args{i} {json.dumps(self.close)}"
            for i, name in enumerate(names)
        )
        stop = "\\" + self.first[0] if self.first[0] in "[]\\^-" else self.first[0]
        return f"start: calls | reply\ncalls: {calls}\ncall: {alternatives}\nreply: /[^{stop}]+/\n"


CALL_FORMATS = {
    "hermes": CallFormat("", '<tool_call>\n{"name": "{name}", "arguments": ', "}\n</tool_call>", "\n", ""),
    "phi4": CallFormat("<|tool_call|>[", '{"name": "{name}", "arguments": ', "}", ", ", "]<|/tool_call|>"),
    "mistral": CallFormat("[TOOL_CALLS] [", '{"name": "{name}", "arguments": ', "}", ", ", "]"),
    "llama3": CallFormat("", '{"name": "{name}", "parameters": ', "}", "; ", ""),
}
NATIVE = "native:"


def call_format(name: str | None) -> CallFormat | None:
    """The native format a constraint's format name stands for, or None (a track's own format)."""
    if name is None or not name.startswith(NATIVE):
        return None
    return CALL_FORMATS[name.removeprefix(NATIVE)]
