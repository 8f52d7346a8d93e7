"""JSON Schemas of tools: checked, referenced only within themselves, patterns bounded.

A tool's parameters come from files nobody reads line by line (a team's logs, a dataset from the web),
and a JSON Schema can do more than describe a value: left to itself, jsonschema fetches a `$ref` to a URL
and reads a `file:` one, recurses until the stack runs out on `{"$ref": "#"}`, and runs Python's
backtracking `re` on a `pattern` for as long as it takes. So each tool schema is checked where it enters
(`tool_schema_problem`), and each value is checked against one in bounded time and space (`mismatch`):

* A reference (`$ref`, `$dynamicRef`) is a JSON pointer into the schema itself (`#`, `#/$defs/name`) that
  points at one of its subschemas; any other is refused, and the validators' registry retrieves nothing,
  so nothing is fetched or read because a schema names it. `$id` and `$schema` may stand only at the top
  (an inner one would move references elsewhere, or switch to a validator without these bounds).
* A reference that comes back to where it started without descending into the value (`{"$ref": "#"}`,
  an `allOf` holding itself) is refused: it would check the same value forever. Recursion through
  `properties` or `items` (a tree's schema) is allowed; the value's depth bounds it.
* Schemas and values nested deeper than `MAX_DEPTH` levels are refused before anything recurses over them.
* Patterns are matched by the `regex` engine, which avoids much of `re`'s backtracking and takes a
  timeout. A value check stops matching patterns `PATTERN_SECONDS` after it starts and follows at most
  `MAX_REFERENCES` references; past either it is cut short and the value counts as not satisfying the
  schema, with a message that says so. `regex` reads patterns as `re` does (its VERSION0), so ordinary
  patterns behave as before (neither is the ECMA-262 dialect JSON Schema names). A pattern it cannot
  compile is refused with its schema, and so is one too large once its counted repetitions are written
  out (`regex` copies `x{1000}` a thousand times: `(a{65535}){65535}` would take all memory to compile).
* `unevaluatedProperties` beside `patternProperties` is refused: jsonschema matches those patterns for it
  internally, with `re`, where no bound reaches.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

MAX_DEPTH = 64  # nesting of arrays and objects in a tool schema, or in a value checked against one
PATTERN_SECONDS = 0.25  # matching patterns, per value check
MAX_REFERENCES = 10_000  # references followed, per value check
MAX_PATTERN_SIZE = 20_000  # a pattern's size with its counted repetitions written out (`_written_out_size`)

Where = tuple[str, ...]  # where a subschema is in its schema, as the tokens of a JSON pointer

# The keywords of JSON Schema 2020-12 that hold schemas: one, a list or a map of them. Those in place
# apply to the value itself, the others to its parts; definitions are not applied, only referred to
# (`definitions` is the name before 2019-09, still common).
_IN_PLACE = {
    "not": "one",
    "if": "one",
    "then": "one",
    "else": "one",
    "allOf": "list",
    "anyOf": "list",
    "oneOf": "list",
    "dependentSchemas": "map",
}
_PARTS = {
    "items": "one",
    "contains": "one",
    "additionalProperties": "one",
    "propertyNames": "one",
    "unevaluatedItems": "one",
    "unevaluatedProperties": "one",
    "prefixItems": "list",
    "properties": "map",
    "patternProperties": "map",
}
_DEFINITIONS = {"$defs": "map", "definitions": "map"}
_REFERENCES = ("$ref", "$dynamicRef")


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether a JSON value nests arrays and objects more than `limit` levels deep (found without
    recursing, so a value of any depth can be asked about)."""
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


@dataclass(frozen=True)
class Mismatch:
    """Why a value does not satisfy a schema: what, and where in the value (None where the check was cut
    short, which can happen anywhere)."""

    message: str
    where: str | None = None
    cut_short: bool = False  # a bound stopped the check: counted as not satisfying the schema

    def __str__(self) -> str:
        return f"at {self.where}: {self.message}" if self.where is not None else f"({self.message})"


def mismatch(value: Any, schema: dict[str, Any]) -> Mismatch | None:
    """Why `value` does not satisfy the JSON Schema `schema` (a tool's parameters), or None; its best
    match names the field. Never raises: a schema `tool_schema_problem` refuses is a mismatch too."""
    if deeper_than(value):
        return Mismatch(f"the value is nested deeper than {MAX_DEPTH} levels", "the top level")
    if deeper_than(schema):
        return Mismatch(f"the schema cannot be used: it is nested deeper than {MAX_DEPTH} levels")
    key = json.dumps(schema, sort_keys=True)
    problem = _problem(key)
    if problem is not None:
        return Mismatch(f"the schema cannot be used: {problem}")
    import jsonschema

    allowance = _allowance.set(_Allowance(time.monotonic() + PATTERN_SECONDS, MAX_REFERENCES))
    try:
        error = jsonschema.exceptions.best_match(_validator(key).iter_errors(value))
    except _CutShort as e:
        return Mismatch(str(e), cut_short=True)
    except RecursionError:
        # Recursion through properties or items is bounded by the value's depth, but a schema whose
        # references chain many subschemas at each level can still need more stack than there is.
        return Mismatch("the schema's references go too deep to check this value", cut_short=True)
    finally:
        _allowance.reset(allowance)
    if error is None:
        return None
    return Mismatch(error.message[:200], "/".join(str(p) for p in error.absolute_path) or "the top level")


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """`mismatch` as a message (for rows refused with it), or None."""
    found = mismatch(value, schema)
    return None if found is None else str(found)


def tool_schema_problem(name: str, parameters: dict[str, Any]) -> str | None:
    """Why a tool's parameters are not a JSON Schema that can be checked in bounded time and space
    (see above), or None (checked once per schema)."""
    if deeper_than(parameters):
        problem: str | None = f"parameters are nested deeper than {MAX_DEPTH} levels"
    else:
        problem = _problem(json.dumps(parameters, sort_keys=True))
    return None if problem is None else f"tool {name!r}: {problem}"


@lru_cache(maxsize=4096)
def _problem(key: str) -> str | None:
    import jsonschema

    schema = json.loads(key)
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        return f"parameters are not a JSON Schema ({e.message[:160]})"
    except (RecursionError, OverflowError):  # from compiling a pattern (the schema is not that deep)
        return (
            "parameters hold a pattern Python cannot compile (groups nested too deeply, or a count too large)"
        )
    return _bounds_problem(schema)


def _subschemas(schema: dict[str, Any]) -> Iterator[tuple[str, Where, Any]]:
    """(kind, where below `schema`, subschema) for each schema in one of `schema`'s keywords; kind is
    "in place", "part" or "definition"."""
    for kind, keywords in (("in place", _IN_PLACE), ("part", _PARTS), ("definition", _DEFINITIONS)):
        for keyword, shape in keywords.items():
            held = schema.get(keyword)
            if shape == "one" and keyword in schema:
                yield kind, (keyword,), held
            elif shape == "list" and isinstance(held, list):
                yield from ((kind, (keyword, str(i)), sub) for i, sub in enumerate(held))
            elif shape == "map" and isinstance(held, dict):
                yield from ((kind, (keyword, name), sub) for name, sub in held.items())


def _pointer(path: Where) -> str:
    return "#" + "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in path)


def _target(ref: str) -> Where | None:
    """The path a reference names when it is a JSON pointer into its own schema, else None. Decoded as
    `referencing` decodes it (percent-escapes, then ~1 and ~0), so both find the same place."""
    if ref == "#":
        return ()
    if not ref.startswith("#/"):
        return None
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in unquote(ref[2:]).split("/"))


def _points_somewhere(schema: Any, path: Where) -> bool:
    node = schema
    for token in path:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def _bounds_problem(schema: dict[str, Any]) -> str | None:
    """Why a schema that is valid JSON Schema still cannot be checked in bounded time and space."""
    import jsonschema

    subschemas: set[Where] = set()
    in_place: dict[Where, list[tuple[Where, str]]] = {}  # what each applies to the same value, and how
    references: list[tuple[Where, str]] = []
    keywords: set[str] = set()
    stack: list[tuple[Where, Any]] = [((), schema)]
    while stack:
        path, node = stack.pop()
        subschemas.add(path)
        if not isinstance(node, dict):
            continue
        keywords.update(node)
        inner = [k for k in ("$id", "$schema") if k in node and path]
        if inner:
            return (
                f"parameters have {inner[0]} inside them (at {_pointer(path)}), where it would move "
                "references elsewhere or change the rules; keep it at the top, or leave it out"
            )
        for kind, below, sub in _subschemas(node):
            if below[0] == "definitions":  # not a 2020-12 keyword, so check_schema has not seen these
                try:
                    jsonschema.Draft202012Validator.check_schema(sub)
                except jsonschema.SchemaError as e:
                    return f"{_pointer(path + below)} is not a JSON Schema ({e.message[:160]})"
            if isinstance(sub, dict | bool):
                stack.append((path + below, sub))
                if kind == "in place":
                    in_place.setdefault(path, []).append((path + below, below[0]))
        references.extend((path, node[k]) for k in _REFERENCES if isinstance(node.get(k), str))
        patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        for pattern in [*patterns, *node.get("patternProperties", {})]:
            problem = _pattern_problem(pattern)
            if problem is not None:
                return problem
    if {"unevaluatedProperties", "patternProperties"} <= keywords:
        return (
            "parameters use unevaluatedProperties beside patternProperties, whose patterns could not be "
            "matched in bounded time there; use additionalProperties instead"
        )
    for path, ref in references:
        target = _target(ref)
        if target is None:
            return (
                f"parameters refer to {ref!r}: only references into the schema itself ('#', "
                "'#/$defs/name') are followed, and nothing is fetched or read"
            )
        if target not in subschemas:
            where = (
                "nothing" if not _points_somewhere(schema, target) else "something that is not a subschema"
            )
            return f"parameters refer to {ref!r}, which points at {where} in them"
        in_place.setdefault(path, []).append((target, ref))
    return _cycle_problem(in_place)


def _cycle_problem(in_place: dict[Where, list[tuple[Where, str]]]) -> str | None:
    """A chain of subschemas applied to the same value that comes back to its start (it would never
    end), found by depth-first search; None when there is none."""
    done: set[Where] = set()
    for start in sorted(in_place):
        if start in done:
            continue
        on_stack = {start}
        stack = [(start, iter(in_place.get(start, ())))]
        while stack:
            path, edges = stack[-1]
            step = next(edges, None)
            if step is None:
                stack.pop()
                on_stack.discard(path)
                done.add(path)
                continue
            target, how = step
            if target in on_stack:
                return (
                    f"parameters come back to {_pointer(target)} ({how!r} at {_pointer(path)}) without "
                    "descending into the value: checking it would never end"
                )
            if target not in done:
                on_stack.add(target)
                stack.append((target, iter(in_place.get(target, ()))))
    return None


def _pattern_problem(pattern: str) -> str | None:
    import regex

    if _written_out_size(pattern) > MAX_PATTERN_SIZE:
        return (
            f"pattern {pattern[:80]!r} is too large once its counted repetitions are written out (over "
            f"{MAX_PATTERN_SIZE:,}); use maxLength or minLength for lengths"
        )
    try:
        _compiled(pattern)
    except (regex.error, RecursionError, OverflowError) as e:
        return f"pattern {pattern[:80]!r} cannot be compiled ({str(e)[:80]})"
    return None


_COUNTED = re.compile(r"\{(\d*),?(\d*)\}")  # a counted repetition: {m}, {m,}, {,n}, {m,n}


def _written_out_size(pattern: str) -> int:
    """The size of a pattern with its counted repetitions written out, as `regex` compiles it: it copies
    `x{m,n}` n times, so `(a{1000}){1000}` takes a million (and a few hundred MB). Each character, class
    or escape counts one, times the bound of every counted repetition around it; an estimate from above."""
    levels = [0]  # the size read so far in each open group
    last = 0  # the size of the item a repetition would repeat
    i = 0
    while i < len(pattern):
        char = pattern[i]
        counted = _COUNTED.match(pattern, i) if char == "{" else None
        if counted is not None and any(counted.groups()):
            bound = max(int(n) for n in counted.groups() if n)
            levels[-1] += last * (bound - 1)
            last *= bound
            i = counted.end()
            continue
        if char == "(":
            levels.append(0)
        elif char == ")" and len(levels) > 1:
            last = levels.pop()
            levels[-1] += last
        elif char == "|":
            last = 0
        elif char not in "*+?":
            last = 1
            levels[-1] += 1
            i = _item_end(pattern, i) - 1
        i += 1
    return sum(levels)


def _item_end(pattern: str, i: int) -> int:
    """Where the character, escape or class starting at `i` ends."""
    if pattern[i] == "\\":
        if pattern[i + 1 : i + 3] in ("N{", "p{", "P{"):  # a name or property in braces
            return pattern.find("}", i) + 1 or len(pattern)
        return i + 2
    if pattern[i] != "[":
        return i + 1
    j = i + 1
    j += pattern.startswith("^", j)
    j += pattern.startswith("]", j)  # a ] first in a class is itself
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1


# --- bounded validation ------------------------------------------------------------------------------


class _CutShort(Exception):
    """A value check ran past one of its bounds (its message says which)."""


@dataclass
class _Allowance:
    """What one value check may still spend."""

    deadline: float  # time.monotonic() past which no pattern is matched
    references: int


_allowance: ContextVar[_Allowance | None] = ContextVar("slm_swap_schema_allowance", default=None)


@lru_cache(maxsize=64)  # a pattern near MAX_PATTERN_SIZE takes a few MB compiled
def _compiled(pattern: str) -> Any:
    import regex

    return regex.compile(pattern)


def _search(pattern: str, text: str) -> bool:
    """`re.search(pattern, text)` as jsonschema asks it, in bounded time; raises _CutShort past it."""
    allowance = _allowance.get()
    left = PATTERN_SECONDS if allowance is None else allowance.deadline - time.monotonic()
    try:
        if left <= 0:
            raise TimeoutError
        return _compiled(pattern).search(text, timeout=left) is not None
    except TimeoutError:
        shown = repr(text[:40]) + ("…" if len(text) > 40 else "")
        raise _CutShort(
            f"the pattern {pattern[:80]!r} did not finish on {shown} within {PATTERN_SECONDS} s: counted as "
            "not matching"
        ) from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[Any]:
    from jsonschema import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
    extras = [k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        listed = ", ".join(repr(extra) for extra in sorted(extras))
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            regexes = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{listed} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            yield ValidationError(f"Additional properties are not allowed ({listed} {verb} unexpected)")


def _counted(keyword: str) -> Any:
    """The jsonschema keyword `keyword` (a reference), counted against the check's allowance."""
    import jsonschema

    follow = jsonschema.Draft202012Validator.VALIDATORS[keyword]

    def counted(validator: Any, ref: str, instance: Any, schema: Any) -> Iterator[Any]:
        allowance = _allowance.get()
        if allowance is not None:
            allowance.references -= 1
            if allowance.references < 0:
                raise _CutShort(f"the schema's references were followed {MAX_REFERENCES} times: too costly")
        yield from follow(validator, ref, instance, schema) or ()

    return counted


@lru_cache(maxsize=1)
def _bounded() -> Any:
    """Draft 2020-12 with patterns matched in bounded time and references counted."""
    import jsonschema

    return jsonschema.validators.extend(
        jsonschema.Draft202012Validator,
        {
            "pattern": _pattern,
            "patternProperties": _pattern_properties,
            "additionalProperties": _additional_properties,
            "$ref": _counted("$ref"),
            "$dynamicRef": _counted("$dynamicRef"),
        },
    )


@lru_cache(maxsize=1)
def _nothing_retrieved() -> Any:
    """A registry that retrieves no resource: jsonschema's default fetches what a `$ref` names (http:,
    file:). `_problem` lets no such reference through; this holds if one ever slipped past it."""
    import referencing
    import referencing.exceptions

    def refuse(uri: str) -> Any:
        raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]  # an attrs class

    return referencing.Registry(retrieve=refuse)  # type: ignore[call-arg]


@lru_cache(maxsize=4096)
def _validator(key: str) -> Any:
    """The bounded validator of a schema `_problem` accepts. A `$schema` at the top is left out: jsonschema
    would switch to its own, unbounded validator of that dialect wherever a reference leads back to it."""
    schema = {k: v for k, v in json.loads(key).items() if k != "$schema"}
    return _bounded()(schema, registry=_nothing_retrieved())
