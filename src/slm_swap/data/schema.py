"""One tool format inside: JSON Schema.

xLAM describes parameters with Python-style type strings (`str`, `List[int]`, `str, optional`) and BFCL
with its own JSON-Schema dialect (`dict`, `float`, `tuple`, `any`). Both convert here, at load time, to
plain JSON Schema, which is what prompts show, what scoring checks and what grammars are built from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ANY: dict[str, Any] = {}

_SCALARS = {
    "str": "string",
    "string": "string",
    "text": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "double": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_ARRAYS = {"list", "tuple", "set", "sequence", "array", "iterable"}
_OBJECTS = {"dict", "mapping", "object"}


@dataclass(frozen=True)
class PyType:
    """A Python-style type string turned into JSON Schema."""

    schema: dict[str, Any]
    optional: bool
    unknown: tuple[str, ...]  # type names we could not map; they became "any"


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


# Deeper types are refused rather than converted: their schema would exceed the depth a tool schema may have
# (schemas.MAX_DEPTH), and converting them recurses once a bracket.
MAX_TYPE_DEPTH = 32
_GENERIC = re.compile(r"^([A-Za-z_][\w.]*)\s*(?:\[(.*)\])?$", re.S)


def _convert(text: str, unknown: list[str], depth: int = 1) -> tuple[dict[str, Any], bool]:
    """Returns (schema, optional) for one type expression, `depth` brackets deep."""
    if depth > MAX_TYPE_DEPTH:
        raise ValueError(f"the type is nested deeper than {MAX_TYPE_DEPTH} brackets")
    m = _GENERIC.match(text.strip())
    if not m:
        unknown.append(text.strip())
        return dict(ANY), False
    head, inner = m.group(1).split(".")[-1].lower(), m.group(2)
    args = _split_top(inner) if inner else []
    if head == "optional" and args:
        schema, _ = _convert(args[0], unknown, depth + 1)
        return schema, True
    if head == "union" and args:
        members = [_convert(a, unknown, depth + 1)[0] for a in args if a.lower() not in ("none", "nonetype")]
        optional = len(members) < len(args)
        if len(members) == 1:
            return members[0], optional
        return {"anyOf": members}, optional
    if head in _SCALARS:
        return {"type": _SCALARS[head]}, False
    if head in _ARRAYS:
        array: dict[str, Any] = {"type": "array"}
        item_args = [a for a in args if a != "..."]
        if item_args:
            items = [_convert(a, unknown, depth + 1)[0] for a in item_args]
            if all(i == items[0] for i in items):
                array["items"] = items[0]
        return array, False
    if head in _OBJECTS:
        return {"type": "object"}, False
    if head == "any":
        return dict(ANY), False
    unknown.append(m.group(1))
    return dict(ANY), False


@lru_cache(maxsize=4096)
def parse_python_type(text: str) -> PyType:
    """Converts an xLAM type string such as `List[int]` or `str, optional` to JSON Schema.

    An unknown type becomes the empty schema (any value) and is listed in `unknown`; the only error is a
    ValueError for a type nested deeper than MAX_TYPE_DEPTH brackets (no tool takes such a value).
    Cached, since a large file repeats a few hundred type strings; callers copy before changing.
    """
    unknown: list[str] = []
    parts = _split_top(text or "")
    optional = False
    if parts and parts[-1].lower() == "optional":
        optional = True
        parts = parts[:-1]
    expr = ", ".join(parts)
    if not expr:
        return PyType(dict(ANY), optional, ("<empty>",) if not optional else ())
    schema, inner_optional = _convert(expr, unknown)
    return PyType(schema, optional or inner_optional, tuple(unknown))


_BFCL_TYPES = {
    "dict": "object",
    "float": "number",
    "tuple": "array",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
    "array": "array",
    "number": "number",
    "object": "object",
}


def bfcl_to_json_schema(node: Any) -> Any:
    """Converts BFCL's parameter dialect (`dict`, `float`, `tuple`, `any`) to JSON Schema, recursively."""
    if isinstance(node, list):
        return [bfcl_to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "type" and isinstance(value, str):
            if value in _BFCL_TYPES:
                out["type"] = _BFCL_TYPES[value]
            # "any" and types of other languages carry no JSON type constraint.
        elif key in ("properties",) and isinstance(value, dict):
            out[key] = {name: bfcl_to_json_schema(spec) for name, spec in value.items()}
        elif key in ("items", "additionalProperties", "anyOf", "oneOf"):
            out[key] = bfcl_to_json_schema(value)
        else:
            out[key] = value
    return out


def json_type_of(schema: dict[str, Any]) -> str | None:
    """The single JSON type a schema demands, or None when it accepts several or any."""
    t = schema.get("type")
    return t if isinstance(t, str) else None
