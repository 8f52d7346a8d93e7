"""Per-example metrics and their run-level means.

Every metric is a number in [0, 1] per example, so a run's value is the mean and two runs on the same
examples can be compared pairwise.

| metric          | per example                                                                       |
|-----------------|-----------------------------------------------------------------------------------|
| json_valid      | structured: the output (less one code fence) is JSON                               |
| format_valid    | toolcall: the output is only `<tool_call name="..">{json object}</tool_call>` blocks |
| schema_valid    | every call names an offered tool with arguments valid for its JSON Schema            |
|                 | (structured: the whole answer validates against `answer_schema`)                   |
| name_accuracy   | the multiset of called tool names equals the gold one                              |
| exact_match     | the calls equal the gold calls exactly (order-free; JSON equality)                 |
| arg_precision   | acceptable arguments / arguments given, over the best pairing of calls              |
| arg_recall      | acceptable arguments / gold arguments, over the same pairing                       |
| arg_f1          | harmonic mean of the two                                                           |
| call_f1         | F1 of calls that are acceptable answers under BFCL's rules (bipartite matching)    |
| ast_match       | BFCL AST match: as many calls as expected and each matched to an acceptable answer |

When a side has no arguments at all, argument precision/recall is 1 if the other side has none either
and the call names agree, else 0.

A row whose right answer is no call (`gold == ()`: small talk, a request no offered tool can serve) is
scored on other metrics, so that those above keep their meaning on call rows, and a run's mean of each
metric is over the rows that have it:

| metric        | rows      | per example                                                          |
|---------------|-----------|----------------------------------------------------------------------|
| abstention    | no-call   | the answer is the no-call answer (`{"calls": []}`; plain text)       |
| unwanted_call | no-call   | the answer makes one or more readable calls (lower is better)        |

A malformed answer is never an abstention: on a no-call row it scores 0 on both (`invalid_format`). On a
call row the no-call answer scores as any answer without the right calls, in its own error category
(`missed_call`); a run's `missed_call` rate is the share of its call rows in that category.

Scoring time is bounded on any text: parsing is one pass; an answer whose call count differs from the
gold's cannot match exactly, so it gets no search for that; pairings run over the calls with at most as
many copies of each distinct call as there are gold calls (more copies cannot be paired); each pair of an
output call and an expected call is checked once; and the assignment is rectangular, O(k² · n) for k gold
and n output calls. A 1 MB runaway answer scores in 0.1–0.9 s (`bench/scoring_bound.py`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slm_swap.data.formats import answer_schema, strict_parameters
from slm_swap.fileformats import Count, FileForm, Share
from slm_swap.jsonvalues import json_equal
from slm_swap.schemas import Mismatch, mismatch
from slm_swap.scoring import calls as check
from slm_swap.scoring.parse import Parsed, parse
from slm_swap.types import Completion, Example, ExampleResult, ToolCall, ToolSpec, Track

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

NO_OUTPUT = "no_output"
INVALID_FORMAT = "invalid_format"
WRONG_COUNT = "wrong_count"
UNWANTED_CALL = "unwanted_call"  # a call where the right answer is no call
MISSED_CALL = "missed_call"  # no call where one was due
ERROR_CATEGORIES = (
    NO_OUTPUT,
    INVALID_FORMAT,
    UNWANTED_CALL,
    MISSED_CALL,
    WRONG_COUNT,
    check.WRONG_TOOL,
    check.MISSING_ARGUMENT,
    check.UNEXPECTED_ARGUMENT,
    check.WRONG_TYPE,
    check.WRONG_VALUE,
)

CALL_METRICS = (
    "schema_valid",
    "name_accuracy",
    "exact_match",
    "arg_precision",
    "arg_recall",
    "arg_f1",
    "call_f1",
    "ast_match",
)
METRICS: dict[str, tuple[str, ...]] = {
    "structured": ("json_valid", *CALL_METRICS),
    "toolcall": ("format_valid", *CALL_METRICS),
}
# The metrics the fine-tune decision looks at (the spec's "core metrics").
CORE_METRICS: dict[str, tuple[str, ...]] = {
    "structured": ("json_valid", "schema_valid", "name_accuracy", "exact_match", "arg_f1"),
    "toolcall": ("format_valid", "name_accuracy", "call_f1", "ast_match"),
}
VALIDITY_METRIC = {"structured": "json_valid", "toolcall": "format_valid"}
# Rows whose right answer is no call: scored on these instead (see the table above).
NO_CALL_METRICS = ("abstention", "unwanted_call")
# A core metric of both tracks whenever a split has no-call rows (`core_metrics`).
ABSTENTION = "abstention"


def core_metrics(track: Track, metrics: Sequence[str]) -> tuple[str, ...]:
    """The core metrics of a run that has `metrics`: the track's, and abstention when it has no-call
    rows. Those of its track that it lacks (a split of no-call rows only) are left out."""
    core = tuple(m for m in CORE_METRICS[track] if m in metrics)
    return (*core, ABSTENTION) if ABSTENTION in metrics else core


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _schema_mismatch(track: Track, parsed: Parsed, tools: Sequence[ToolSpec]) -> Mismatch | None:
    """Why a readable answer's calls do not satisfy the tools' schemas (structured: the whole answer
    `answer_schema`), or None. Each call's arguments are checked against its own tool's schema, never
    inside a larger one, so that a tool's references into itself (`#/$defs/...`) keep their meaning."""
    if track == "structured":
        document = parsed.document
        if isinstance(document, dict) and isinstance(document.get("calls"), list):
            # The answer schema checks each entry on its own (and that there is one): repeats add nothing.
            entries = {json.dumps(e, sort_keys=True): e for e in document["calls"]}
            document = {**document, "calls": list(entries.values())}
        # The shape of the answer, with any arguments: {name, arguments} entries naming offered tools.
        shape = answer_schema([ToolSpec(t.name, t.description, {}) for t in tools], min_calls=1)
        found = mismatch(document, shape)
        if found is not None:
            return found
        calls = [ToolCall(e["name"], e["arguments"]) for e in document["calls"]]
    elif not parsed.calls:
        return Mismatch("no call")
    else:
        calls = list({_key(c): c for c in parsed.calls}.values())
    by_name = {t.name: t for t in tools}
    for call in calls:
        if call.name not in by_name:
            return Mismatch(f"{call.name!r} is not an offered tool")
        found = mismatch(call.arguments, strict_parameters(by_name[call.name]))
        if found is not None:
            return found
    return None


def _key(call: ToolCall) -> str:
    return json.dumps([call.name, call.arguments], sort_keys=True)


def _capped(predicted: Sequence[ToolCall], gold_count: int) -> list[ToolCall]:
    """The predicted calls with at most `gold_count` copies of each distinct call, in order.

    No pairing of calls with the gold can use more copies of one call than there are gold calls, so
    matchings and assignments over this list are those over all the calls; a runaway answer that
    repeats a call thousands of times is then paired in a handful of steps.
    """
    seen: Counter[str] = Counter()
    kept = []
    for call in predicted:
        key = _key(call)
        if seen[key] < max(gold_count, 1):
            seen[key] += 1
            kept.append(call)
    return kept


def _arg_scores(
    predicted: Sequence[ToolCall], table: list[list[check.PairScore]], example: Example
) -> tuple[float, float]:
    """Argument precision and recall over the best pairing of the capped calls with the gold."""
    weights = [[float(pair.hits) for pair in row] for row in table]
    pairs = check.max_weight_assignment(weights) if weights and example.acceptable else []
    hits = sum(weights[a][b] for a, b in pairs)
    # Recall counts the gold call's own arguments only: an optional argument the model adds with an
    # acceptable value is right (precision) but recovers no gold argument (BFCL's answers accept some the
    # gold leaves out, and counting them let recall pass 1).
    gold = [g.arguments.keys() for g in example.gold]  # the acceptable answers follow the gold's order
    recovered = sum(len(table[a][b].good & gold[b]) for a, b in pairs if b < len(gold))
    n_pred = sum(len(p.arguments) for p in predicted)
    n_gold = sum(len(g.arguments) for g in example.gold)
    names_agree = sorted(c.name for c in predicted) == sorted(c.name for c in example.gold)
    precision = hits / n_pred if n_pred else float(n_gold == 0 and names_agree)
    recall = recovered / n_gold if n_gold else float(n_pred == 0 and names_agree)
    return precision, recall


def _failure(predicted: Sequence[ToolCall], example: Example, matched: dict[int, int]) -> tuple[str, str]:
    """The error category of an output whose calls are readable but not an AST match."""
    if len(predicted) != len(example.acceptable):
        return WRONG_COUNT, f"{len(predicted)} call(s), expected {len(example.acceptable)}"
    tools = {t.name: t for t in example.tools}
    used = set(matched)
    for i, expected in enumerate(example.acceptable):
        if i in matched.values():
            continue
        same_name = [j for j, p in enumerate(predicted) if j not in used and p.name == expected.name]
        if not same_name:
            names = ", ".join(sorted(p.name for j, p in enumerate(predicted) if j not in used))
            return check.WRONG_TOOL, f"expected a call of {expected.name!r}, got {names}"
        result = check.check_call(predicted[same_name[0]], expected, tools.get(expected.name))
        return result.category or check.WRONG_VALUE, result.detail or ""
    return check.WRONG_VALUE, "no acceptable pairing of calls"


def score(example: Example, completion: Completion) -> ExampleResult:
    """Scores one completion against its example. Never raises on any output text."""
    track = example.track
    names = METRICS[track]
    zero = dict.fromkeys(names, 0.0)

    def result(
        metrics: dict[str, float], calls: Sequence[ToolCall] | None, category: str | None, detail: str | None
    ) -> ExampleResult:
        return ExampleResult(
            id=example.id,
            output=completion.text,
            calls=[c.to_json() for c in calls] if calls is not None else None,
            metrics=metrics,
            error_category=category,
            error_detail=detail,
            latency_s=completion.latency_s,
            usage=completion.usage,
            backend_error=completion.error,
            replaced_surrogates=completion.replaced_surrogates,
        )

    if not example.acceptable:
        return _score_no_call_row(example, completion, result)
    if completion.error is not None or not completion.text.strip():
        return result(zero, None, NO_OUTPUT, completion.error or "empty output")
    parsed = parse(track, completion.text)
    metrics = dict(zero)
    if parsed.no_call:
        # Plain text was never the toolcall format on a call row; `{"calls": []}` is valid JSON.
        metrics[VALIDITY_METRIC[track]] = float(track == "structured")
        return result(metrics, (), MISSED_CALL, "no call, where one was due")
    metrics[VALIDITY_METRIC[track]] = float(parsed.valid)
    if not parsed.valid or parsed.calls is None:
        return result(metrics, parsed.calls, INVALID_FORMAT, parsed.problem)
    predicted = parsed.calls
    # Pairings are computed over `paired`; scores that count calls or arguments use all of `predicted`.
    paired = _capped(predicted, len(example.acceptable))
    tools = {t.name: t for t in example.tools}
    schema_mismatch = _schema_mismatch(track, parsed, example.tools)
    metrics["schema_valid"] = float(schema_mismatch is None)
    # A check cut short by a bound (a pattern that would backtrack for ages) fails, and says so.
    cut_short = schema_mismatch.message if schema_mismatch is not None and schema_mismatch.cut_short else None
    metrics["name_accuracy"] = float(
        Counter(c.name for c in predicted) == Counter(c.name for c in example.gold)
    )
    # Counts that differ cannot match exactly, whatever the pairing: no search is needed for that.
    exact = {}
    if len(predicted) == len(example.gold):
        exact = check.max_matching(
            len(paired),
            len(example.gold),
            lambda a, b: (
                paired[a].name == example.gold[b].name
                and json_equal(paired[a].arguments, example.gold[b].arguments)
            ),
        )
    metrics["exact_match"] = float(len(predicted) == len(example.gold) == len(exact))
    # Each (capped call, expected call) pair is checked once; matching and argument scores share it.
    table = [[check.score_pair(p, e, tools.get(e.name)) for e in example.acceptable] for p in paired]
    precision, recall = _arg_scores(predicted, table, example)
    metrics["arg_precision"], metrics["arg_recall"], metrics["arg_f1"] = (
        precision,
        recall,
        _f1(precision, recall),
    )
    matched = check.max_matching(len(paired), len(example.acceptable), lambda a, b: table[a][b].ok)
    call_p = len(matched) / len(predicted) if predicted else 0.0
    metrics["call_f1"] = _f1(call_p, len(matched) / len(example.acceptable))
    metrics["ast_match"] = float(len(predicted) == len(example.acceptable) == len(matched))
    if metrics["ast_match"]:
        return result(metrics, predicted, None, cut_short)
    category, detail = _failure(predicted, example, matched)
    return result(metrics, predicted, category, "; ".join(filter(None, (detail, cut_short))))


def _score_no_call_row(example: Example, completion: Completion, result: Any) -> ExampleResult:
    """A row whose right answer is no call: did the model abstain, call anyway, or answer malformed?"""
    metrics = dict.fromkeys(NO_CALL_METRICS, 0.0)
    if completion.error is not None or not completion.text.strip():
        return result(metrics, None, NO_OUTPUT, completion.error or "empty output")
    parsed = parse(example.track, completion.text)
    if parsed.no_call:
        metrics["abstention"] = 1.0
        return result(metrics, (), None, None)
    if parsed.calls:  # readable calls, even amid a malformed answer: the mistake is the call
        metrics["unwanted_call"] = 1.0
        names = ", ".join(sorted({c.name for c in parsed.calls}))
        return result(metrics, parsed.calls, UNWANTED_CALL, f"called {names} where no call was due")
    return result(metrics, parsed.calls, INVALID_FORMAT, parsed.problem or "not the no-call answer")


@dataclass(frozen=True)
class Summary(FileForm):
    """A run at a glance: each metric's mean over its examples, and counts. Run files and the verdict
    hold it as one object, the means then the counts (`{"ast_match": 0.5, ..., "examples": 8, "errors":
    0}`), read and written as such (`__get_pydantic_core_schema__`)."""

    # Every metric of the track, in METRICS order; with no-call rows, the abstention metrics and the
    # missed-call rate after them. Each is the mean over the rows that have it.
    metrics: dict[str, float]
    examples: int
    errors: int  # examples the backend gave no answer for (its error is recorded)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from pydantic_core import core_schema

        def of(flat: dict[str, Any]) -> Summary:
            counts = {name: flat.pop(name, None) for name in _COUNTS}
            if not all(isinstance(n, int) for n in counts.values()):
                raise ValueError("a summary's examples and errors are whole numbers")
            if not all(isinstance(v, float) for v in flat.values()):
                raise ValueError("a summary's metrics are numbers from 0 to 1")
            return cls(flat, **counts)

        def flat(summary: Summary) -> dict[str, Any]:
            return {**summary.metrics, "examples": summary.examples, "errors": summary.errors}

        value = core_schema.union_schema(
            [handler.generate_schema(Count), handler.generate_schema(Share)],
            custom_error_type="summary_value",
            custom_error_message="Input should be a count or a number from 0 to 1",
        )
        return core_schema.no_info_after_validator_function(
            of,
            core_schema.dict_schema(core_schema.str_schema(), value),
            serialization=core_schema.plain_serializer_function_ser_schema(flat),
        )


_COUNTS = ("examples", "errors")  # the members of a summary's object that are not metrics


def summarize(track: Track, results: Sequence[ExampleResult]) -> Summary:
    """Run-level means of every metric over the rows that have it, plus counts. A run with no-call rows
    also gets their metrics and the rate of call rows answered with no call (`missed_call`); a run of
    call rows only is summarised as before no-call rows existed."""
    n = len(results)
    no_call = [r for r in results if NO_CALL_METRICS[0] in r.metrics]
    calls = [r for r in results if NO_CALL_METRICS[0] not in r.metrics]

    def mean(name: str, rows: Sequence[ExampleResult]) -> float:
        return sum(r.metrics.get(name, 0.0) for r in rows) / len(rows) if rows else 0.0

    metrics = {name: mean(name, calls) for name in METRICS[track]} if calls or not no_call else {}
    if no_call:
        metrics |= {name: mean(name, no_call) for name in NO_CALL_METRICS}
        if calls:
            metrics["missed_call"] = sum(r.error_category == MISSED_CALL for r in calls) / len(calls)
    return Summary(metrics=metrics, examples=n, errors=sum(1 for r in results if r.backend_error is not None))


def error_counts(results: Sequence[ExampleResult]) -> dict[str, int]:
    counts = Counter(r.error_category for r in results if r.error_category)
    return {c: counts[c] for c in ERROR_CATEGORIES if counts[c]}
