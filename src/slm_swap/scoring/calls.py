"""BFCL-compatible checking of tool calls against acceptable answers.

The rules follow BFCL's AST checker (`bfcl_eval/eval_checker/ast_eval/ast_checker.py`):

* the function name must match; every required parameter must be present; a parameter that the tool does
  not declare, or that the possible answer does not list, is unexpected;
* types are strict, except that an integer is accepted where a number (BFCL "float") is expected; a value
  whose type equals that of the listed answers is accepted too (BFCL's "variable" rule);
* strings compare after BFCL's normalisation (spaces and `,./-_*^` removed, lower case, `'` → `"`), also
  inside lists and as dictionary values; dictionaries and lists of dictionaries compare key by key;
* a listed parameter that is left out must have `""` among its acceptable values.

Where we knowingly differ from BFCL:

* parallel calls are matched order-free by a maximum bipartite matching; BFCL matches greedily (each
  expected call takes the first output call that fits), which can reject an output that has a valid
  assignment;
* the int→number allowance also applies to the items of an array (BFCL rejects `[1, 2]` for an array
  of floats);
* `true` never equals `1`: values compare as JSON values, not with Python's `==`;
* a parameter without a JSON type (BFCL "any", or a union) is not type-checked (BFCL treats "any" as str).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slm_swap.data.rows import OMITTED
from slm_swap.data.schema import json_type_of
from slm_swap.jsonvalues import json_equal
from slm_swap.types import AcceptableCall, ToolCall, ToolSpec

WRONG_TOOL = "wrong_tool"
MISSING_ARGUMENT = "missing_argument"
UNEXPECTED_ARGUMENT = "unexpected_argument"
WRONG_TYPE = "wrong_type"
WRONG_VALUE = "wrong_value"

_STRIP = re.compile(r"[ ,./\-_*^]")


def standardize(text: str) -> str:
    """BFCL's string normalisation, so `April 1, 2024` equals `april 1 2024`."""
    return _STRIP.sub("", text).lower().replace("'", '"')


@dataclass(frozen=True)
class CallCheck:
    ok: bool
    category: str | None = None
    detail: str | None = None


OK = CallCheck(True)


def _has_type(value: Any, json_type: str) -> bool:
    if json_type == "string":
        return isinstance(value, str)
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if json_type == "boolean":
        return isinstance(value, bool)
    if json_type == "array":
        return isinstance(value, list)
    if json_type == "object":
        return isinstance(value, dict)
    if json_type == "null":
        return value is None
    return True


def _type_ok(value: Any, schema: dict[str, Any]) -> bool:
    json_type = json_type_of(schema)
    if json_type is None:
        return True
    if not _has_type(value, json_type):
        return False
    items = schema.get("items")
    if json_type == "array" and isinstance(items, dict) and json_type_of(items):
        return all(_has_type(v, json_type_of(items) or "") for v in value)
    return True


def _norm(value: Any) -> Any:
    return standardize(value) if isinstance(value, str) else value


def _in(value: Any, options: Sequence[Any]) -> bool:
    return any(json_equal(value, o) for o in options)


def _dict_ok(value: dict[str, Any], option: Any) -> bool:
    if not isinstance(option, dict):
        return False
    for key, item in value.items():
        accepted = option.get(key)
        if accepted is None:
            return False
        accepted = accepted if isinstance(accepted, list) else [accepted]
        if not _in(_norm(item), [_norm(a) for a in accepted]):
            return False
    return all(key in value or (isinstance(a, list) and OMITTED in a) for key, a in option.items())


def _value_ok(value: Any, schema: dict[str, Any], options: list[Any]) -> bool:
    options = [o for o in options if not (isinstance(o, str) and o == OMITTED)] or options
    json_type = json_type_of(schema)
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    if json_type == "object" and isinstance(value, dict):
        return any(_dict_ok(value, o) for o in options)
    if json_type == "array" and json_type_of(items or {}) == "object" and isinstance(value, list):
        return any(
            isinstance(o, list) and len(o) == len(value) and all(map(_dict_ok, value, o)) for o in options
        )
    if isinstance(value, str):
        return _in(standardize(value), [standardize(o) for o in options if isinstance(o, str)])
    if isinstance(value, list):
        return _in([_norm(v) for v in value], [[_norm(x) for x in o] for o in options if isinstance(o, list)])
    return _in(value, options)


def _variable_type(options: list[Any]) -> type | None:
    """BFCL's "variable" rule: the type of the listed answers, when they have one."""
    for option in options:
        if not (isinstance(option, str) and option == OMITTED):
            return type(option)
    return None


def check_argument(name: str, value: Any, schema: dict[str, Any], options: list[Any]) -> CallCheck:
    """Type, then value, of one argument against its acceptable values."""
    declared_ok = _type_ok(value, schema)
    variable = _variable_type(options)
    if not declared_ok:
        if variable is not None and type(value) is variable:
            return OK if _in(value, options) else CallCheck(False, WRONG_VALUE, f"{name}={value!r}")
        return CallCheck(False, WRONG_TYPE, f"{name}={value!r} is not {json_type_of(schema)}")
    if not _value_ok(value, schema, options):
        shown = [o for o in options if o != OMITTED]
        return CallCheck(False, WRONG_VALUE, f"{name}={value!r}, expected one of {shown!r}")
    return OK


def check_call(call: ToolCall, expected: AcceptableCall, tool: ToolSpec | None) -> CallCheck:
    """Whether one output call is an acceptable answer for one expected call (BFCL's simple checker)."""
    if call.name != expected.name:
        return CallCheck(False, WRONG_TOOL, f"called {call.name!r}, expected {expected.name!r}")
    params = tool.parameters if tool else {}
    properties: dict[str, Any] = params.get("properties", {})
    for required in params.get("required", []):
        if required not in call.arguments:
            return CallCheck(False, MISSING_ARGUMENT, f"{call.name}: required {required!r} missing")
    for name, value in call.arguments.items():
        if name not in properties or name not in expected.arguments:
            return CallCheck(False, UNEXPECTED_ARGUMENT, f"{call.name}: unexpected {name!r}")
        result = check_argument(name, value, properties[name], expected.arguments[name])
        if not result.ok:
            return CallCheck(False, result.category, f"{call.name}: {result.detail}")
    for name, options in expected.arguments.items():
        if name not in call.arguments and OMITTED not in options:
            return CallCheck(False, MISSING_ARGUMENT, f"{call.name}: {name!r} missing")
    return OK


@dataclass(frozen=True)
class PairScore:
    """One output call against one expected call: whether it is an acceptable answer (`check_call`'s
    verdict) and how many of its arguments are acceptable, from one pass over the arguments."""

    ok: bool
    hits: int
    good: frozenset[str] = frozenset()  # the names of the acceptable arguments (`hits` of them)


NO_PAIR = PairScore(False, 0)


def score_pair(call: ToolCall, expected: AcceptableCall, tool: ToolSpec | None) -> PairScore:
    if call.name != expected.name:
        return NO_PAIR
    params = tool.parameters if tool else {}
    properties: dict[str, Any] = params.get("properties", {})
    good: set[str] = set()
    ok = all(required in call.arguments for required in params.get("required", []))
    for name, value in call.arguments.items():
        if name in properties and name in expected.arguments:
            acceptable = check_argument(name, value, properties[name], expected.arguments[name]).ok
            if acceptable:
                good.add(name)
            ok = ok and acceptable
        else:
            ok = False
    ok = ok and all(name in call.arguments or OMITTED in o for name, o in expected.arguments.items())
    return PairScore(ok, len(good), frozenset(good))


def max_matching(n_left: int, n_right: int, fits: Callable[[int, int], bool]) -> dict[int, int]:
    """Maximum bipartite matching (Kuhn's augmenting paths): left index → right index."""
    match_right: dict[int, int] = {}

    def augment(left: int, seen: set[int]) -> bool:
        for right in range(n_right):
            if right in seen or not fits(left, right):
                continue
            seen.add(right)
            if right not in match_right or augment(match_right[right], seen):
                match_right[right] = left
                return True
        return False

    for left in range(n_left):
        augment(left, set())
    return {left: right for right, left in match_right.items()}


def max_weight_assignment(weights: list[list[float]]) -> list[tuple[int, int]]:
    """Pairs rows with columns to maximise the total weight (Hungarian algorithm).

    Rectangular without padding: the smaller side is assigned into the larger one in
    O(small² · large) steps, so an answer of thousands of calls against a gold answer of a few costs
    thousands of steps, not billions.
    """
    n_rows = len(weights)
    n_cols = len(weights[0]) if weights else 0
    if n_rows == 0 or n_cols == 0:
        return []
    if n_rows > n_cols:
        transposed = [[weights[i][j] for i in range(n_rows)] for j in range(n_cols)]
        return sorted((i, j) for j, i in max_weight_assignment(transposed))
    top = max(w for row in weights for w in row)
    cost = [[top - w for w in row] for row in weights]  # minimise cost = maximise weight
    n, m = n_rows, n_cols
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    p, way = [0] * (m + 1), [0] * (m + 1)  # p[j]: the row assigned to column j (1-based, 0 = none)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            row = cost[i0 - 1]
            for j in range(1, m + 1):
                if not used[j]:
                    cur = row[j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    return sorted((p[j] - 1, j - 1) for j in range(1, m + 1) if p[j])
