"""Function masking for training rows (`train --mask-names F`), as Hammer trains: in a share F of the
training rows, every offered tool's name and every parameter name is replaced by a random identifier,
the same one in the tools, the request and the answer, and the tools are offered in shuffled order. A
name then tells the model nothing, so it must choose the tool and fill its parameters from their
descriptions, the way it must for tools it has never seen.

The rows are chosen and the identifiers drawn with the training seed, so the same split gives the same
masked rows. Only training rows are masked: the validation loss and every evaluation see the real names.
A row is left as it is where masking could not be consistent: a conversation with earlier turns (their
calls and results are rendered text), or a request whose prompt is not the standard rendering of its
tools and query.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from slm_swap.data.formats import render_completion, render_prompt
from slm_swap.types import AcceptableCall, Example, ToolCall, ToolSpec

_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class Renaming:
    """One row's new names: tool name -> identifier, and per tool, parameter name -> identifier."""

    tools: dict[str, str]
    parameters: dict[str, dict[str, str]]

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        own = self.parameters.get(name, {})
        return self.tools.get(name, name), {own.get(k, k): v for k, v in arguments.items()}


def identifier(rng: random.Random, prefix: str, taken: set[str]) -> str:
    """A fresh random identifier (`prefix` and eight letters or digits), none of `taken`."""
    while True:
        name = prefix + "".join(rng.choices(_ALPHABET, k=8))
        if name not in taken:
            taken.add(name)
            return name


def renaming(tools: Sequence[ToolSpec], rng: random.Random) -> Renaming:
    taken: set[str] = set()
    names = {t.name: identifier(rng, "f_", taken) for t in tools}
    parameters = {
        t.name: {p: identifier(rng, "p_", taken) for p in t.parameters.get("properties", {})} for t in tools
    }
    return Renaming(names, parameters)


def masked_schema(schema: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The tool's parameters with its top-level parameter names replaced (the properties and the
    required list); nested schemas, types and descriptions as they were."""
    masked = dict(schema)
    if "properties" in schema:
        masked["properties"] = {names.get(k, k): v for k, v in schema["properties"].items()}
    if isinstance(schema.get("required"), list):
        masked["required"] = [names.get(k, k) for k in schema["required"]]
    return masked


def maskable(example: Example) -> bool:
    """Whether `example` can be masked consistently (no earlier turns; its prompt is the standard
    rendering of its tools and query)."""
    return not example.turns and example.prompt == render_prompt(example.query, example.tools)


def mask(example: Example, rng: random.Random) -> Example:
    """`example` with its tool and parameter names replaced by random identifiers in the tools, the
    request and the answer, and its tools shuffled (see the module's docstring)."""
    renamed = renaming(example.tools, rng)
    tools = []
    for tool in example.tools:
        parameters = masked_schema(tool.parameters, renamed.parameters[tool.name])
        tools.append(ToolSpec(renamed.tools[tool.name], tool.description, parameters))
    rng.shuffle(tools)
    gold = tuple(ToolCall(*renamed.call(c.name, c.arguments)) for c in example.gold)
    acceptable = tuple(AcceptableCall(*renamed.call(c.name, c.arguments)) for c in example.acceptable)
    query = example.query
    for old, new in renamed.tools.items():  # a request that names a tool names it by its new name
        if not old.isalpha():  # an identifier (get_weather, math.sqrt), not a word of the request
            query = re.sub(rf"(?<![\w.]){re.escape(old)}(?![\w])", new, query)
    completion = render_completion(example.track, gold) if example.gold else example.completion
    return replace(
        example,
        prompt=render_prompt(query, tools),
        completion=completion,
        query=query,
        tools=tuple(tools),
        gold=gold,
        acceptable=acceptable,
    )


def masked_count(share: float, rows: int) -> int:
    """How many of `rows` training rows are masked: rows × share rounded to the nearest whole number, a
    half rounding up (in decimal, as the no-call share is)."""
    exact = Decimal(repr(share)) * rows
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def mask_share(examples: Sequence[Example], share: float, seed: int) -> list[Example]:
    """The training rows with `share` of them masked (chosen among the maskable ones with `seed`), in
    their order."""
    rng = random.Random(seed)
    candidates = [i for i, e in enumerate(examples) if maskable(e)]
    chosen = set(rng.sample(candidates, min(len(candidates), masked_count(share, len(examples)))))
    return [mask(e, rng) if i in chosen else e for i, e in enumerate(examples)]
