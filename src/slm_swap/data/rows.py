"""A source row after loading: tools in JSON Schema, gold calls and their acceptable alternatives.

A row whose answer is no tool call (small talk, a request no offered tool can serve) has `gold == ()` and
`acceptable == ()`; its completion is the no-call answer (`formats.render_completion`), in the toolcall
track the conversation's own reply where it has one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from slm_swap.data.formats import Turn, render_completion, render_prompt, render_turns, system_text
from slm_swap.data.schema import json_type_of
from slm_swap.jsonvalues import json_equal
from slm_swap.types import AcceptableCall, Example, ToolCall, ToolSpec, Track

OMITTED = ""  # BFCL's marker, inside a list of acceptable values, for "may be left out"
NO_TOOL = "no tool offered (abstaining is the only possible answer)"
MADE_SUFFIX = "-nocall"  # the id of a no-call row made from a call row (`without_called_tools`)


class RowLeftOut(Exception):
    """A well-formed row that makes no example (a conversation that has no answer yet, a request that
    offers no tool); `reason` is counted and reported, never an error."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RowError(ValueError):
    """A row that cannot be used; `problem` says what is wrong, `fix` what to do about it."""

    def __init__(self, problem: str, fix: str | None = None):
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class SourceRow:
    id: str
    source: str
    query: str
    tools: tuple[ToolSpec, ...]
    gold: tuple[ToolCall, ...]
    acceptable: tuple[AcceptableCall, ...]
    unknown_types: tuple[str, ...] = ()
    instructions: str = ""  # the conversation's own system text
    turns: tuple[Turn, ...] = ()  # the conversation after its first user message (`query`)
    labelled_by: str = ""  # the hosted model whose answer is the gold (`slm-swap label`), if any
    reply: str = ""  # a no-call row's own answer text (the conversation's final assistant message)

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(t.name for t in self.tools)

    @property
    def called_names(self) -> frozenset[str]:
        return frozenset(call.name for call in self.gold)

    def to_example(self, track: Track) -> Example:
        """Renders this row for one track with the shared prompt renderer."""
        return Example(
            id=self.id,
            track=track,
            source=self.source,
            query=self.query,
            tools=self.tools,
            gold=self.gold,
            acceptable=self.acceptable,
            system=system_text(track, self.instructions),
            prompt=render_prompt(self.query, self.tools),
            completion=render_completion(track, self.gold, self.reply),
            turns=tuple(render_turns(track, self.turns)),
            labelled_by=self.labelled_by,
        )


def without_called_tools(row: SourceRow, donor: SourceRow | None = None) -> SourceRow | None:
    """A no-call row made from a call row the way Hammer's xlam-irrelevance set was made: the same request
    with every tool its gold calls removed from the offer, so no offered tool can serve it; its id is the
    row's with `MADE_SUFFIX`. A row that offers only the tools its answer calls (every BFCL live_simple row,
    a team's single-tool traffic) would be left with none: it is offered instead the tools of `donor`,
    another row, when none of them bears the name of a tool `row` offers (`can_borrow`). None where the row
    cannot be made (`no_call_offer`), or needs a donor and has no fit one."""
    offer = no_call_offer(row)
    if offer is None:
        return None
    if offer == "borrowed":
        if donor is None or not can_borrow(names_of(row), donor.tool_names):
            return None
        tools = donor.tools
    else:
        tools = tuple(t for t in row.tools if t.name not in row.called_names)
    # The answer is ours, made by construction, not the teacher's: no `labelled_by`.
    return replace(
        row, id=f"{row.id}{MADE_SUFFIX}", tools=tools, gold=(), acceptable=(), labelled_by="", reply=""
    )


def no_call_offer(row: SourceRow) -> Literal["own", "borrowed"] | None:
    """What a no-call row made from `row` offers: "own", its tools less those its answer calls;
    "borrowed", another row's tools, where it offers only tools its answer calls; None for a row without
    gold calls, or a conversation whose earlier turns call a tool that would be removed (it would show a
    call of a tool no longer offered)."""
    called = row.called_names
    earlier = {call.name for turn in row.turns for call in turn.calls}
    if not called or called & earlier:
        return None
    return "borrowed" if row.tool_names <= called else "own"


def names_of(row: SourceRow) -> frozenset[str]:
    """Every tool name `row` offers or calls: a borrowed offer bears none of them."""
    return row.tool_names | row.called_names


def can_borrow(names: frozenset[str], donor_names: frozenset[str]) -> bool:
    """Whether an offer of tools named `donor_names` can stand in for that of a row whose tools are named
    `names` (`names_of`): some tool, none under a name of the row's."""
    return bool(donor_names) and names.isdisjoint(donor_names)


def _wrap_value(schema: dict[str, Any], value: Any) -> Any:
    """Puts a gold value in BFCL's possible-answer shape, where dict values (also inside a list of
    dicts) are themselves lists of acceptable values."""
    kind = json_type_of(schema)
    if kind == "object" and isinstance(value, dict):
        return {k: [v] for k, v in value.items()}
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    is_dict_list = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if kind == "array" and json_type_of(items or {}) == "object" and is_dict_list:
        return [{k: [v] for k, v in item.items()} for item in value]
    return value


def acceptable_from_gold(call: ToolCall, tool: ToolSpec) -> AcceptableCall:
    """The acceptable answers for a source that gives one exact gold call (xLAM).

    A parameter the gold call passes must have that value; an optional parameter it leaves out may be
    left out or set to its declared default; passing the default explicitly is as good as omitting it.
    """
    properties: dict[str, Any] = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", []))
    accepted: dict[str, list[Any]] = {}
    for name, schema in properties.items():
        has_default = "default" in schema and schema["default"] not in (None, "")
        if name in call.arguments:
            value = call.arguments[name]
            options = [_wrap_value(schema, value)]
            if name not in required and has_default and json_equal(value, schema["default"]):
                options.append(OMITTED)
            accepted[name] = options
        elif name not in required:
            accepted[name] = [OMITTED, _wrap_value(schema, schema["default"])] if has_default else [OMITTED]
    return AcceptableCall(name=call.name, arguments=accepted)
