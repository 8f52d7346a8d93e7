"""What BFCL's possible answers say about optional parameters: the ones a gold answer leaves out, are they
defaults or values the request gives?

For each category, every optional parameter (not in its function's `required`) of every ground-truth
call is counted by what the possible answer lists for it:

- required: one or more values and no "" (the answer must pass it: the request gives its value);
- default: a value and "" (may be left out), the value being the declared default;
- other value: a value and "", the value not the declared default (or none declared);
- left out only: just "" (passing it is wrong);
- not listed: the answer does not name it.

`prepare --source bfcl` writes as the gold answer the shortest acceptable call: it passes the required
ones and leaves out the rest (`data/bfcl.py`).

    python bench/optional_arguments.py [--categories live_simple live_multiple simple_python multiple]
"""

from __future__ import annotations

import argparse
import os
from collections import Counter

from slm_swap.data.bfcl import OMITTED, fetch_wheel, iter_category
from slm_swap.jsonvalues import json_equal
from slm_swap.runtime import Runtime

KINDS = ("required", "default", "other value", "left out only", "not listed")


def kind_of(schema: dict[str, object], listed: list[object] | None) -> str:
    if listed is None:
        return "not listed"
    values = [v for v in listed if v != OMITTED]
    if not values:
        return "left out only"
    if OMITTED not in listed:
        return "required"
    has_default = "default" in schema
    return (
        "default" if has_default and any(json_equal(v, schema["default"]) for v in values) else "other value"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--categories", nargs="+", default=["live_simple", "live_multiple", "simple_python", "multiple"]
    )
    args = parser.parse_args()
    wheel = fetch_wheel(Runtime.from_env(os.environ).cache_dir)
    print("| category | " + " | ".join(KINDS) + " |")
    print("|---|" + "---|" * len(KINDS))
    for category in args.categories:
        counts: Counter[str] = Counter()
        for _, question, answer in iter_category(wheel, category):
            functions = {f["name"]: f for f in question.get("function", [])}
            for entry in (answer or {}).get("ground_truth", []):
                ((name, listed),) = entry.items()
                parameters = functions.get(name, {}).get("parameters", {})
                required = set(parameters.get("required", []))
                for parameter, schema in parameters.get("properties", {}).items():
                    if parameter not in required:
                        counts[kind_of(schema, listed.get(parameter))] += 1
        print(f"| {category} | " + " | ".join(str(counts[k]) for k in KINDS) + " |")


if __name__ == "__main__":
    main()
