"""Scoring time on runaway answers: outputs of up to 1 MB, whatever they hold, against a one-call and a
four-call gold answer, for both tracks. Prints seconds per output (goal: well under a second each)."""

from __future__ import annotations

import json
import time

from slm_swap.data.formats import dumps
from slm_swap.scoring.metrics import score
from slm_swap.types import AcceptableCall, Completion, Example, ToolCall, ToolSpec

MB = 1 << 20
TOOL = ToolSpec(
    "weather",
    "Weather for a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)


def example(track: str, gold_calls: int) -> Example:
    gold = tuple(ToolCall("weather", {"city": f"C{i}", "days": i}) for i in range(gold_calls))
    return Example(
        id="x",
        track=track,  # type: ignore[arg-type]
        source="bench",
        query="q",
        tools=(TOOL,),
        gold=gold,
        acceptable=tuple(AcceptableCall(c.name, {k: [v] for k, v in c.arguments.items()}) for c in gold),
        system="",
        prompt="",
        completion="",
    )


def block(call: dict[str, object]) -> str:
    return f'<tool_call name="{call["name"]}">{dumps(call["arguments"])}</tool_call>'


def outputs(track: str) -> dict[str, str]:
    same = {"name": "weather", "arguments": {"city": "C0", "days": 0}}
    calls_same = [same] * (MB // 70)
    calls_distinct = [{"name": "weather", "arguments": {"city": f"C{i}", "days": i}} for i in range(MB // 80)]
    if track == "structured":
        return {
            "1 call repeated": json.dumps({"calls": calls_same}),
            "distinct calls": json.dumps({"calls": calls_distinct}),
            "unclosed JSON": '{"calls": [' * (MB // 11),
            "1 MB of letters": "a" * MB,
        }
    return {
        "1 call repeated": "\n".join(map(block, calls_same)),
        "distinct calls": "\n".join(map(block, calls_distinct)),
        "unclosed blocks": '<tool_call name="weather">{"city": ' * (MB // 36),
        "1 MB of letters": "a" * MB,
    }


def main() -> None:
    print(f"{'track':<11} {'output (1 MB)':<17} {'gold calls':>10} {'seconds':>8}")
    for track in ("toolcall", "structured"):
        for label, text in outputs(track).items():
            for gold_calls in (1, 4):
                ex = example(track, gold_calls)
                start = time.perf_counter()
                result = score(ex, Completion(text[:MB]))
                took = time.perf_counter() - start
                calls = len(result.calls or ())
                print(f"{track:<11} {label:<17} {gold_calls:>10} {took:>8.3f}  ({calls} calls read)")


if __name__ == "__main__":
    main()
