"""Equality of JSON values as JSON means it: `1 == 1.0`, but `true != 1` and `"1" != 1`."""

from __future__ import annotations

from typing import Any


def json_equal(a: Any, b: Any) -> bool:
    """True when two decoded JSON values are the same JSON value.

    Python's `==` says `True == 1` and `[True] == [1.0]`; a model that answers `1` for a boolean has not
    given the right answer, so booleans only equal booleans. Integers and floats compare numerically,
    because JSON has one number type.
    """
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b
