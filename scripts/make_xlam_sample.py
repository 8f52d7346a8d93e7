#!/usr/bin/env python3
"""Writes `src/slm_swap/data/sample/xlam_sample.json`: a synthetic dataset in the exact format of
Salesforce's xlam-function-calling-60k file, written by us (nothing is downloaded) from the data in
`scripts/xlam_sample/`, whose README describes it: the tools with their xLAM specs, the value pools, the
phrasings, and for each tool a recipe of draws that this script evaluates.

The file is a JSON array of rows `{"id", "query", "answers", "tools"}` where `answers` and `tools` are
JSON-encoded strings. `random.Random(seed)` drives everything, so two runs write byte-identical files.
Every row is checked before writing: it loads through `slm_swap.data.xlam.convert_row`, each gold call
fits its tool's parameters as JSON Schema, and the query states each value passed.

    python scripts/make_xlam_sample.py [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import operator
import random
import re
import string
import sys
from collections import ChainMap, Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from slm_swap.data.rows import RowError
from slm_swap.data.schema import ANY, json_type_of, parse_python_type
from slm_swap.data.xlam import convert_row
from slm_swap.errors import SlmSwapError
from slm_swap.files import atomic_writer, schema_problem

DATA = Path(__file__).resolve().parent / "xlam_sample"
OUT = Path(__file__).resolve().parents[1] / "src" / "slm_swap" / "data" / "sample" / "xlam_sample.json"
ISO_DATE_SHARE = 0.6  # how often a query says a date as YYYY-MM-DD rather than "May 3, 2024"
COVERAGE = 30  # rows that each of KINDS (see `row_kinds`) must reach
KINDS = (
    "several tools offered",
    "parallel calls",
    "parallel: same tool repeated",
    "parallel: different tools",
    "nested object",
    "list of scalars",
    "list of objects",
    "float",
    "bool",
    "optional provided",
    "optional omitted",
    "default-valued argument",
    "unicode",
    "tuple",
    "Any",
)
TOOL_NAME = re.compile(r"[a-z][a-z0-9_]*")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

Env = ChainMap[str, Any]
Slots = dict[str, list[str]]  # a text field of `say` -> the phrases of optional parameters that fill it


# --- The data -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    """A tool of the data: its xLAM spec, as rows offer it, and the recipe that draws its calls."""

    spec: dict[str, Any]
    domain: str
    recipe: dict[str, Any]
    where: str  # the family file, for messages

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        params: dict[str, dict[str, Any]] = self.spec["parameters"]
        return params


@dataclass(frozen=True)
class Plan:
    """Everything the data says: the tools in order, their pools and makers, and the rules."""

    seed: int
    rows: int
    tools: dict[str, Tool]
    pools: dict[str, Any]
    makers: dict[str, Any]
    odds: dict[str, dict[str, float | str]]  # "with_default" / "without_default" -> outcome -> odds
    phrasing: dict[str, list[str]]
    aliases: dict[str, list[str]]  # a value -> other ways a query may state it


def data_error(where: str, problem: str) -> SlmSwapError:
    return SlmSwapError(
        f"{where}: {problem}\n  fix: correct the data in scripts/xlam_sample/ (its README says how)"
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise data_error(str(path), f"cannot be read as JSON ({e})") from e


def merge_names(into: dict[str, Any], new: dict[str, Any], where: str) -> None:
    """Adds pools or makers, which share one namespace across files."""
    for name, value in new.items():
        if name in into:
            raise data_error(where, f"{name!r} is defined twice")
        into[name] = value


def check_tool(tool: Tool) -> None:
    """A tool's spec is a well-formed xLAM tool whose types `slm_swap.data.schema` knows and whose
    defaults have their parameter's type."""
    where = f"{tool.where}: tool {tool.name!r}"
    if set(tool.spec) != {"name", "description", "parameters"} or not TOOL_NAME.fullmatch(tool.name):
        raise data_error(where, "a spec is {name (snake_case), description, parameters}")
    for param, spec in tool.parameters.items():
        if not set(spec) <= {"description", "type", "default"} or "type" not in spec:
            raise data_error(where, f"parameter {param!r} is {{description, type[, default]}}")
        parsed = parse_python_type(spec["type"])
        if parsed.unknown:
            raise data_error(where, f"parameter {param!r} has an unknown type {spec['type']!r}")
        if spec.get("default") not in (None, ""):
            problem = schema_problem(spec["default"], parsed.schema)
            if problem:
                raise data_error(where, f"the default of {param!r} is not a {spec['type']} ({problem})")
    if not set(tool.recipe) <= {"draw", "args", "say", "slots", "parallel"} or "say" not in tool.recipe:
        raise data_error(where, "a recipe is draw, args, say[, slots][, parallel]")


def load_plan(folder: Path = DATA) -> Plan:
    """Reads the data: the manifest, the shared pools and each family in the manifest's order."""
    manifest = read_json(folder / "sample.json")
    shared = read_json(folder / "pools.json")
    pools: dict[str, Any] = {}
    makers: dict[str, Any] = {}
    merge_names(pools, shared["pools"], "pools.json")
    merge_names(makers, shared.get("makers", {}), "pools.json")
    tools: dict[str, Tool] = {}
    for family in manifest["families"]:
        path = folder / "families" / f"{family}.json"
        data = read_json(path)
        merge_names(pools, data.get("pools", {}), path.name)
        merge_names(makers, data.get("makers", {}), path.name)
        for record in data["tools"]:
            recipe = {k: v for k, v in record.items() if k not in ("spec", "domain")}
            tool = Tool(record["spec"], record.get("domain", data["domain"]), recipe, path.name)
            check_tool(tool)
            if tool.name in tools:
                raise data_error(path.name, f"tool {tool.name!r} is defined twice")
            tools[tool.name] = tool
    aliases: dict[str, list[str]] = {}
    for pool in manifest["aliases"]:
        for code, name in pools[pool]:
            aliases.setdefault(code, []).append(name)
    return Plan(
        seed=manifest["seed"],
        rows=manifest["rows"],
        tools=tools,
        pools=pools,
        makers=makers,
        odds=manifest["optional_odds"],
        phrasing=manifest["phrasing"],
        aliases=aliases,
    )


# --- Texts --------------------------------------------------------------------------------------------------


def num(x: Any) -> str:
    """A number as the query states it (what JSON would print, without a trailing .0)."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def and_list(items: list[Any]) -> str:
    texts = [str(i) for i in items]
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def show(value: Any) -> str:
    """How a query spells a value of any JSON type."""
    return f"'{value}'" if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def natural_date(iso: str, months: list[str]) -> str:
    y, m, d = (int(x) for x in iso.split("-"))
    return f"{months[m - 1]} {d}, {y}"


class _Texts(string.Formatter):
    """`str.format` with the specs num, and, json and show."""

    SPECS: ClassVar[dict[str, Callable[[Any], str]]] = {
        "num": num,
        "and": and_list,
        "json": lambda v: json.dumps(v, ensure_ascii=False),
        "show": show,
    }

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec in self.SPECS:
            return self.SPECS[format_spec](value)
        return str(super().format_field(value, format_spec))


TEXTS = _Texts()


def fill(template: str, env: Env) -> str:
    return TEXTS.vformat(template, (), env)


# --- Drawing calls ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    kind: str  # "do": an imperative ("get the weather in Paris"); "ask": a question without its mark
    text: str


@dataclass(frozen=True)
class Drawn:
    """Calls of one tool drawn together, and the clauses a query may use to ask for them."""

    arguments: list[dict[str, Any]]
    clauses: list[Clause]


def lookup(env: Env, path: str) -> Any:
    name, *keys = path.split(".")
    if name not in env:
        raise SlmSwapError(f"${name} is not bound here\n  fix: bind it in a draw step or as a pool")
    value = env[name]
    for key in keys:
        value = value[int(key)] if isinstance(value, list | str) else value[key]
    return value


class Drawer:
    """Evaluates the data's expressions and recipes with one random source."""

    def __init__(self, r: random.Random, plan: Plan):
        self.r = r
        self.plan = plan
        self.base: Env = ChainMap(plan.pools)

    def ev(self, expr: Any, env: Env) -> Any:
        if isinstance(expr, str):
            return lookup(env, expr[1:]) if expr.startswith("$") else expr
        if isinstance(expr, list):
            return [self.ev(e, env) for e in expr]
        if isinstance(expr, dict):
            ops = [k for k in expr if k in OPS]
            if len(ops) != 1:
                raise SlmSwapError(f"not one operation: {json.dumps(expr, ensure_ascii=False)[:160]}")
            return OPS[ops[0]](self, expr, env)
        return expr

    def bind(self, step: dict[str, Any], env: Env) -> None:
        for names, expr in step.items():
            value = self.ev(expr, env)
            targets = [n.strip() for n in names.split(",")]
            if len(targets) == 1:
                env[targets[0]] = value
            else:
                env.update(zip(targets, value, strict=True))

    def outcome(self, odds: dict[str, float | str]) -> str:
        """The optional-parameter rule's draw: the first outcome whose share the draw falls in."""
        x, edge = self.r.random(), 0.0
        for outcome, share in odds.items():
            if share == "rest":
                return outcome
            edge += float(share)
            if x < edge:
                return outcome
        raise SlmSwapError(f"odds {odds} do not end with a 'rest' outcome")

    def optional(self, tool: Tool, step: dict[str, Any], env: Env, args: dict[str, Any], slots: Slots) -> str:
        """Applies the optional-parameter rule to one parameter; returns what it chose."""
        param = step["optional"]
        spec = tool.parameters[param]
        if "when" in step and not self.ev(step["when"], env):
            chosen = "omit"
        else:
            usual = self.plan.odds["with_default" if "default" in spec else "without_default"]
            chosen = self.outcome(step.get("odds", usual))
        branch = step.get(chosen, {})
        self.bind(branch.get("let", {}), env)
        if chosen == "value":
            args[param] = self.ev(branch["set"], env)
        elif chosen == "default":
            args[param] = spec["default"]
        if param in args or "default" in spec:
            env[param] = args.get(param, spec.get("default"))
        phrases = slots[step.get("into", "extras")]
        if "say" in branch:
            said = self.ev(branch["say"], env)
            phrases.append(fill(self.r.choice(said) if isinstance(said, list) else said, env))
        if "say_each" in branch:  # a dict value: a phrase for each key it has
            value = args[param]
            phrases.extend(fill(branch["say_each"][k], env.new_child(value)) for k in value)
        return chosen

    def clauses(self, say: list[dict[str, str]], env: Env) -> list[Clause]:
        return [Clause(kind, fill(text, env)) for clause in say for kind, text in clause.items()]

    def call(self, tool: Tool) -> Drawn:
        """One call of `tool` and the clauses that ask for it."""
        recipe = tool.recipe
        env = self.base.new_child()
        joins: dict[str, dict[str, str]] = recipe.get("slots", {})
        slots: Slots = {name: [] for name in ("extras", *joins)}
        args: dict[str, Any] = {}
        chosen: dict[str, str] = {}
        for step in recipe.get("draw", []):
            if "optional" in step:
                chosen[step["optional"]] = self.optional(tool, step, env, args, slots)
            else:
                self.bind(step, env)
        args.update({param: self.ev(expr, env) for param, expr in recipe.get("args", {}).items()})
        for name, phrases in slots.items():
            join = joins.get(name, {})
            said = join.get("sep", ", ").join(phrases)
            env[name] = join.get("open", " ") + said + join.get("close", "") if phrases else ""
        say = recipe["say"]
        if isinstance(say, dict):
            outcome = chosen[say["case"]]
            say = say[outcome if outcome in say or outcome == "omit" else "given"]
        return Drawn([in_order(tool, args)], self.clauses(say, env))

    def calls(self, tool: Tool, count: int) -> Drawn:
        """`count` calls of `tool` drawn together (its `parallel` recipe) and the clauses asking for them."""
        recipe = tool.recipe["parallel"]
        env = self.base.new_child({"count": count})
        for step in recipe.get("draw", []):
            self.bind(step, env)
        args = [in_order(tool, a) for a in self.ev(recipe["calls"], env)]
        say = [self.r.choice(recipe["say_one_of"])] if "say_one_of" in recipe else recipe["say"]
        return Drawn(args, self.clauses(say, env))


def in_order(tool: Tool, args: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments in the order its tool declares them."""
    undeclared = set(args) - set(tool.parameters)
    if undeclared:
        raise data_error(tool.where, f"tool {tool.name!r} has no parameter {sorted(undeclared)}")
    return {p: args[p] for p in tool.parameters if p in args}


# --- Operations ---------------------------------------------------------------------------------------------

Op = Callable[[Drawer, dict[str, Any], Env], Any]


def _list(d: Drawer, e: dict[str, Any], env: Env) -> list[Any]:
    count, distinct = d.ev(e["list"], env), e.get("distinct")
    items: list[Any] = []
    while len(items) < count:
        item = d.ev(e["of"], env)
        if distinct is None or not any(_same(item, i, distinct) for i in items):
            items.append(item)
    return items


def _same(a: Any, b: Any, distinct: bool | str) -> bool:
    return bool(a[distinct] == b[distinct]) if isinstance(distinct, str) else bool(a == b)


def _grow(d: Drawer, e: dict[str, Any], env: Env) -> list[Any]:
    items: list[Any] = []
    skip = d.ev(e.get("not_in", []), env)
    while len(items) < d.ev(e["while_shorter_than"], env):
        item = d.ev(e["grow"], env)
        if item not in items and item not in skip:
            items.append(item)
    return items


def _some_of(d: Drawer, e: dict[str, Any], env: Env) -> dict[str, Any]:
    fields: dict[str, Any] = e["some_of"]
    keys = d.r.sample(list(fields), d.ev(e["k"], env))
    if e.get("order", "listed") == "listed":
        keys = [k for k in fields if k in keys]
    return {k: d.ev(fields[k], env) for k in keys}


def _let(d: Drawer, e: dict[str, Any], env: Env) -> Any:
    inner = env.new_child()
    d.bind(e["let"], inner)
    return d.ev(e["in"], inner)


def _date(d: Drawer, e: dict[str, Any], env: Env) -> str:
    y0, y1 = d.ev(e["date"], env)
    return f"{d.r.randint(y0, y1)}-{d.r.randint(1, 12):02d}-{d.r.randint(1, 28):02d}"


def _shift_date(d: Drawer, e: dict[str, Any], env: Env) -> str:
    """A date some days later, in the 28-day months that `date` draws from."""
    iso, days = d.ev(e["shift_date"], env)
    y, m, day = (int(x) for x in iso.split("-"))
    day += days
    while day > 28:
        day -= 28
        m += 1
        if m > 12:
            m, y = 1, y + 1
    return f"{y}-{m:02d}-{day:02d}"


def _say_date(d: Drawer, e: dict[str, Any], env: Env) -> str:
    iso = d.ev(e["say_date"], env)
    return str(iso) if d.r.random() < ISO_DATE_SHARE else natural_date(iso, d.plan.pools["MONTHS"])


def _get(d: Drawer, e: dict[str, Any], env: Env) -> Any:
    container, key = d.ev(e["get"], env)
    if "else" in e and key not in container:
        return d.ev(e["else"], env)
    return container[key]


def _texts(d: Drawer, e: dict[str, Any], env: Env, op: str) -> list[str]:
    return [TEXTS.format(e.get("item", "{}"), x) for x in d.ev(e[op], env)]


OPS: dict[str, Op] = {
    # draws
    "choice": lambda d, e, env: d.r.choice(d.ev(e["choice"], env)),
    "sample": lambda d, e, env: d.r.sample(d.ev(e["sample"], env), d.ev(e["k"], env)),
    "randint": lambda d, e, env: d.r.randint(*d.ev(e["randint"], env)),
    "randrange": lambda d, e, env: d.r.randrange(d.ev(e["randrange"], env)),
    "uniform": lambda d, e, env: d.r.uniform(*d.ev(e["uniform"], env)),
    "chance": lambda d, e, env: d.r.random() < d.ev(e["chance"], env),
    "date": _date,
    "say_date": _say_date,
    "one_of": lambda d, e, env: d.ev(e["one_of"][d.r.randrange(len(e["one_of"]))], env),
    "make": lambda d, e, env: d.ev(d.plan.makers[e["make"]], d.base),
    # structure
    "list": _list,
    "grow": _grow,
    "each": lambda d, e, env: [d.ev(e["do"], env.new_child({e["as"]: x})) for x in d.ev(e["each"], env)],
    "object": lambda d, e, env: {
        k: v for k, v in ((k, d.ev(x, env)) for k, x in e["object"].items()) if v is not None
    },
    "some_of": _some_of,
    "keyed": lambda d, e, env: {k: d.ev(e["value"], env) for k in d.ev(e["keyed"], env)},
    "let": _let,
    "if": lambda d, e, env: d.ev(e["then"] if d.ev(e["if"], env) else e.get("else"), env),
    # texts
    "fmt": lambda d, e, env: fill(
        e["fmt"], env.new_child({k: d.ev(x, env) for k, x in e.get("with", {}).items()})
    ),
    "and": lambda d, e, env: and_list(_texts(d, e, env, "and")),
    "join": lambda d, e, env: e.get("sep", ", ").join(_texts(d, e, env, "join")),
    "get": _get,
    "where": lambda d, e, env: [
        x for x in d.ev(e["where"], env) if d.ev(e["keep"], env.new_child({e["as"]: x}))
    ],
    "shift_date": _shift_date,
}
# Operations on one value, and on the values of their argument list.
ON_VALUE: dict[str, Callable[[Any], Any]] = {
    "keys": list,
    "sorted": sorted,
    "len": len,
    "float": float,
    "not": operator.not_,
}
ON_VALUES: dict[str, Callable[..., Any]] = {
    "without": lambda pool, drop: [v for v in pool if v != drop],
    "concat": lambda *parts: [x for part in parts for x in part],
    "slice": lambda seq, start, stop: seq[start:stop],
    "range": lambda start, stop: list(range(start, stop)),
    "add": operator.add,
    "mul": operator.mul,
    "round": round,
    "eq": operator.eq,
    "member": lambda x, container: x in container,
}


def _on_value(op: str, f: Callable[[Any], Any]) -> Op:
    return lambda d, e, env: f(d.ev(e[op], env))


def _on_values(op: str, f: Callable[..., Any]) -> Op:
    return lambda d, e, env: f(*d.ev(e[op], env))


OPS.update({op: _on_value(op, f) for op, f in ON_VALUE.items()})
OPS.update({op: _on_values(op, f) for op, f in ON_VALUES.items()})


# --- Rows ---------------------------------------------------------------------------------------------------


def render_one(r: random.Random, clause: Clause, phrasing: dict[str, list[str]]) -> str:
    if clause.kind == "ask":
        return cap(clause.text) + "?"
    return r.choice(phrasing["do"]).replace("{C}", cap(clause.text)).replace("{c}", clause.text)


def render(r: random.Random, clauses: list[Clause], phrasing: dict[str, list[str]]) -> str:
    """Joins the clauses of a row's calls into one query, as a person might ask."""
    if len(clauses) == 1:
        return render_one(r, clauses[0], phrasing)
    texts = [c.text for c in clauses]
    if all(c.kind == "do" for c in clauses) and r.random() < 0.6:
        together = phrasing["together"]
        template = together[r.randrange(len(together))]
        fields = {
            "all": and_list(texts),
            "listed": "; ".join(texts[:-1]) + "; and " + texts[-1],
            "first": texts[0],
        }
        if "{then}" in template:  # drawn only where used
            fields["then"] = " ".join(f"{cap(r.choice(phrasing['then']))} {t}." for t in texts[1:])
        return template.format(**fields)
    out = [render_one(r, clauses[0], phrasing)]
    for clause in clauses[1:]:
        if clause.kind == "ask":
            out.append(r.choice(phrasing["ask_after"]).replace("{q}", clause.text))
        else:
            out.append(r.choice(phrasing["do_after"]).replace("{c}", clause.text))
    return " ".join(out)


def key(args: dict[str, Any]) -> str:
    return json.dumps(args, sort_keys=True, ensure_ascii=False)


def one_call(d: Drawer, tool: Tool, avoid: set[str]) -> Drawn:
    """A call of `tool` whose arguments are none of `avoid`, with the one clause that asks for it."""
    for _ in range(50):
        drawn = d.call(tool)
        if key(drawn.arguments[0]) not in avoid:
            return Drawn(drawn.arguments, [d.r.choice(drawn.clauses)])
    raise data_error(tool.where, f"tool {tool.name!r}: 50 draws gave no new arguments; widen its pools")


@dataclass(frozen=True)
class Row:
    query: str
    answers: list[dict[str, Any]]
    tools: list[dict[str, Any]]


def build_row(d: Drawer, primary: str) -> Row:
    """One row around the tool `primary`: one call, the same tool several times, or several tools."""
    r, tools = d.r, d.plan.tools
    names = list(tools)
    calls: list[tuple[str, dict[str, Any]]] = []
    clauses: list[Clause] = []

    def add(name: str, drawn: Drawn) -> None:
        calls.extend((name, a) for a in drawn.arguments)
        clauses.extend(drawn.clauses)

    x = r.random()
    if x < 0.5:  # one call
        add(primary, one_call(d, tools[primary], set()))
    elif x < 0.72:  # the same tool several times (maybe plus one other tool)
        n = r.choices([2, 3, 4], [6, 3, 1])[0]
        if "parallel" in tools[primary].recipe and r.random() < 0.7:
            drawn = d.calls(tools[primary], n)
            if len({key(a) for a in drawn.arguments}) != len(drawn.arguments):
                raise data_error(tools[primary].where, f"{primary}: parallel calls are not all different")
            add(primary, Drawn(drawn.arguments, [r.choice(drawn.clauses)]))
        else:
            seen: set[str] = set()
            for _ in range(n):
                drawn = one_call(d, tools[primary], seen)
                seen.add(key(drawn.arguments[0]))
                add(primary, drawn)
        if len(calls) < 4 and r.random() < 0.25:
            other = r.choice([t for t in names if t != primary])
            add(other, one_call(d, tools[other], set()))
    else:  # different tools
        n = r.choices([2, 3, 4], [6, 3, 1])[0]
        chosen = [primary]
        same = [t for t in names if tools[t].domain == tools[primary].domain and t != primary]
        while len(chosen) < n:
            c = r.choice(same if (same and r.random() < 0.4) else names)
            if c not in chosen:
                chosen.append(c)
        for c in chosen:
            add(c, one_call(d, tools[c], set()))
    query = render(r, clauses, d.plan.phrasing)

    used = list(dict.fromkeys(name for name, _ in calls))
    if len(used) == 1:
        total = r.choices([1, 2, 3, 4, 5], [30, 25, 22, 14, 9])[0]
    else:
        total = r.randint(len(used), min(5, len(used) + 2))
    offered = list(used)
    same = [t for t in names if tools[t].domain == tools[primary].domain and t not in offered]
    while len(offered) < total:
        c = r.choice(same if (same and r.random() < 0.5) else names)
        if c not in offered:
            offered.append(c)
            if c in same:
                same.remove(c)
    r.shuffle(offered)
    answers = [{"name": name, "arguments": a} for name, a in calls]
    return Row(query, answers, [tools[t].spec for t in offered])


def build(plan: Plan) -> list[dict[str, Any]]:
    """The sample's rows: each tool leads rows in turn (a shuffled block of all tools at a time)."""
    d = Drawer(random.Random(plan.seed), plan)
    names = list(plan.tools)
    schedule: list[str] = []
    while len(schedule) < plan.rows:
        block = list(names)
        d.r.shuffle(block)
        schedule.extend(block)
    rows = []
    for i in range(plan.rows):
        row = build_row(d, schedule[i])
        rows.append(
            {
                "id": i,
                "query": row.query,
                "answers": json.dumps(row.answers, ensure_ascii=False),
                "tools": json.dumps(row.tools, ensure_ascii=False),
            }
        )
    return rows


# --- Checks -------------------------------------------------------------------------------------------------


def scalars(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in scalars(v)]
    if isinstance(value, list):
        return [s for v in value for s in scalars(v)]
    return [value]


def stated(query: str, value: Any, plan: Plan) -> bool:
    """Whether the query states a scalar value (booleans are conveyed by wording, not checked here)."""
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int | float):
        return num(value) in query
    forms = [value, *plan.aliases.get(value, [])]
    if DATE.match(value):
        forms.append(natural_date(value, plan.pools["MONTHS"]))
    return any(f.lower() in query.lower() for f in forms)


def check_row(row: dict[str, Any], plan: Plan) -> None:
    """The row loads as xLAM (`slm_swap.data.xlam`), each gold call fits its tool's JSON Schema, and the
    query states every value the calls pass."""
    where = f"row {row['id']}"
    try:
        source = convert_row(row)
    except RowError as e:
        raise data_error(where, e.problem) from e
    tools = {t.name: t for t in source.tools}
    for call in source.gold:
        problem = schema_problem(call.arguments, tools[call.name].parameters)
        if problem:
            raise data_error(where, f"{call.name}: {problem}")
        for value in scalars(call.arguments):
            if not stated(source.query, value, plan):
                raise data_error(where, f"the query does not state {value!r}: {source.query}")


def row_kinds(rows: list[dict[str, Any]]) -> Counter[str]:
    """How many rows show each kind of case a model must handle (parallel calls, nested objects...)."""
    counts: Counter[str] = Counter()
    for row in rows:
        tools = {t["name"]: t for t in json.loads(row["tools"])}
        answers = json.loads(row["answers"])
        names = [a["name"] for a in answers]
        kinds = set()
        if len(tools) > 1:
            kinds.add("several tools offered")
        if len(tools) > len(set(names)):
            kinds.add("answer uses a subset of the tools")
        if len(answers) > 1:
            kinds.add("parallel calls")
            if len(set(names)) < len(names):
                kinds.add("parallel: same tool repeated")
            if len(set(names)) > 1:
                kinds.add("parallel: different tools")
        if not row["query"].isascii():
            kinds.add("unicode")
        for answer in answers:
            params = tools[answer["name"]]["parameters"]
            for param, spec in params.items():
                if parse_python_type(spec["type"]).optional or "default" in spec:
                    kinds.add("optional provided" if param in answer["arguments"] else "optional omitted")
                default, value = spec.get("default"), answer["arguments"].get(param, ...)
                same = value == default and isinstance(value, bool) == isinstance(default, bool)
                if default not in (None, "") and same:
                    kinds.add("default-valued argument")
            for param, value in answer["arguments"].items():
                kinds |= value_kinds(params[param]["type"], value)
        counts.update(kinds)
    return counts


def value_kinds(type_: str, value: Any) -> set[str]:
    """The kinds of value an argument of an xLAM type shows (tuple, Any, nested object, list of...)."""
    schema = parse_python_type(type_).schema
    items = schema.get("items", {})
    kinds = {"tuple"} if type_.startswith("Tuple[") else set()
    if schema == ANY:
        kinds.add("Any")
    if isinstance(value, dict):
        kinds.add("nested object")
    if isinstance(value, list) and "items" in schema and not type_.startswith("Tuple["):
        if value and all(isinstance(v, dict) for v in value):
            kinds.add("list of objects")
        elif json_type_of(items) in ("string", "integer", "number"):
            kinds.add("list of scalars")
    for s in scalars(value):
        if isinstance(s, bool):
            kinds.add("bool")
        elif isinstance(s, float):
            kinds.add("float")
    return kinds


def check_sample(plan: Plan, rows: list[dict[str, Any]]) -> Counter[str]:
    """Checks every row, and that the sample is broad: many tools and domains, and at least COVERAGE rows
    of each of KINDS. Returns how many rows show each kind."""
    for row in rows:
        check_row(row, plan)
    domains = {t.domain for t in plan.tools.values()}
    if len(plan.tools) < 40 or len(domains) < 12:
        raise data_error(
            "families", f"only {len(plan.tools)} tools in {len(domains)} domains (40 in 12 at least)"
        )
    counts = row_kinds(rows)
    thin = {kind: counts[kind] for kind in KINDS if counts[kind] < COVERAGE}
    if thin:
        raise data_error("families", f"fewer than {COVERAGE} rows of some kinds: {thin}")
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT)
    out: Path = ap.parse_args(argv).out
    try:
        plan = load_plan()
        rows = build(plan)
        counts = check_sample(plan, rows)
    except SlmSwapError as e:
        print(e, file=sys.stderr)
        return 2
    text = json.dumps(rows, ensure_ascii=False, indent=1) + "\n"
    assert json.loads(text) == rows  # what we write is what we checked
    with atomic_writer(out) as f:
        f.write(text)
    data = text.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()[:16]
    used = {a["name"] for row in rows for a in json.loads(row["answers"])}
    domains = {t.domain for t in plan.tools.values()}
    print(f"wrote {out} ({len(rows)} rows, {len(data)} bytes, sha256 {digest})")
    print(f"{len(plan.tools)} tools in {len(domains)} domains; {len(used)} tools used in answers")
    for kind, n in sorted(counts.items()):
        print(f"  {kind:<36} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
