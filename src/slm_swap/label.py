"""`slm-swap label`: the hosted model as teacher, for logged conversations that have no answer yet.

Each conversation of an OpenAI-format file (`data/openai_chat.py`) that ends before the assistant's answer
is sent to the hosted model in the evaluation prompt of the toolcall track — the same messages the
model is evaluated and the SLM trained with — at temperature 0. An answer is kept only if it parses as
tool calls, every call names one of the row's tools, and its arguments satisfy that tool's parameter
schema; the row is then written with that answer as its final assistant message (`tool_calls`, as the
API returns them) and its provenance in `metadata.slm_swap_label` (which model, which endpoint, when).
No call is an answer too: a reply in plain text with no `<tool_call` in it is kept as the final
assistant message's text (a no-call row for `prepare`); an attempt at a call that does not parse is
dropped, never read as no call. Rows that already end with an answer pass through unchanged.

The evaluation prompt, rather than the API's native tool calling, is the choice: it is what the hosted
model is measured with in `eval`, so the labels are the answers that `compare` holds the SLM to, and a
hosted run on a labelled split scores its own answers (agreement, by construction — every comparison on
such a split says so).

Like `eval`: requests run `--concurrency` at a time with the SDK's retries, or all in one batch of the
provider's Batch API (`--hosted-batch`, `backends/batch.py`); every answer is journaled as it arrives, so
an interrupted run resumes where it stopped (a batch under way is picked up again by its id); the output
is written atomically at the end and never over an existing file without `--force`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slm_swap import settings
from slm_swap.backends.base import Backend
from slm_swap.data import openai_chat
from slm_swap.data.rows import RowError
from slm_swap.errors import InputError, SlmSwapError
from slm_swap.evaluate import now_iso, run_meta
from slm_swap.files import atomic_writer, check_output, jsonl_text, one_writer, schema_problem
from slm_swap.runs import Journal
from slm_swap.scoring.parse import parse_toolcall
from slm_swap.tracing import Generation, Tracer
from slm_swap.types import AnswerTally, Example, ExampleResult, ToolCall

if TYPE_CHECKING:
    from slm_swap.cost import Estimate
    from slm_swap.report import Pricing

LABEL_SPLIT = "label"  # the journal's split name: these are answers to label with, not a split's run


@dataclass
class LabelOutcome:
    written: int = 0  # rows in the output
    kept: int = 0  # answers kept as labels
    no_call: int = 0  # of those, replies without a tool call
    passed: int = 0  # rows that already had an answer
    resumed: int = 0  # answers taken from the journal of an interrupted run
    dropped: Counter[str] = field(default_factory=Counter)  # why answers were not kept
    tally: AnswerTally = field(default_factory=AnswerTally)  # unknown token counts, replaced surrogates


@dataclass(frozen=True)
class _Row:
    data: dict[str, Any]
    example: Example | None  # None: already answered


def _read(path: Path) -> list[_Row]:
    rows: list[_Row] = []
    ids: dict[str, str] = {}
    for where, data in openai_chat.iter_lines(path):
        try:
            conversation = openai_chat.read_conversation(data, where)
        except RowError as e:
            raise InputError(path, where, e.problem, e.fix or "fix the row") from e
        if conversation.row_id in ids:
            raise InputError(
                path, where, f"id {conversation.row_id!r} also appears at {ids[conversation.row_id]}"
            )
        ids[conversation.row_id] = where
        if conversation.answered:
            rows.append(_Row(data, None))
        else:
            source_row = conversation.source_row((), conversation.turns)
            rows.append(_Row(data, source_row.to_example("toolcall")))
    return rows


def check_answer(text: str, example: Example) -> tuple[tuple[ToolCall, ...], str | None]:
    """The calls of a teacher's answer (none: the answer is no call), or why it cannot be a label."""
    if not text.strip():
        return (), "empty answer"
    parsed = parse_toolcall(text)
    if parsed.no_call:  # the toolcall track's no-call answer: a reply with no attempt at a call
        return (), None
    if not parsed.valid or not parsed.calls:
        return (), "not tool calls in the answer format"
    tools = {t.name: t for t in example.tools}
    for call in parsed.calls:
        tool = tools.get(call.name)
        if tool is None:
            return (), "calls a tool the row does not offer"
        if schema_problem(call.arguments, tool.parameters) is not None:
            return (), "arguments do not satisfy the tool's parameters"
    return tuple(parsed.calls), None


def _labelled(
    data: dict[str, Any], calls: tuple[ToolCall, ...], reply: str, provenance: dict[str, Any]
) -> dict[str, Any]:
    """The row with the teacher's answer as its final assistant message: its calls, else its reply."""
    metadata: dict[str, Any] = data["metadata"] if isinstance(data.get("metadata"), dict) else {}
    answer = openai_chat.assistant_message(calls) if calls else {"role": "assistant", "content": reply}
    return {
        **data,
        "messages": [*data["messages"], answer],
        "metadata": {**metadata, openai_chat.LABEL_KEY: provenance},
    }


def label(
    input_path: Path,
    out: Path,
    backend: Backend,
    tracer: Tracer,
    *,
    force: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_answer: Callable[[object], None] | None = None,
    pricing: Pricing | None = None,
    on_estimate: Callable[[Estimate], None] | None = None,
) -> LabelOutcome:
    """Labels the unanswered conversations of `input_path` with `backend` and writes `out` (see above).
    `on_total` hears how many need a label, once the file is read; `on_answer` hears each answer; with
    `pricing`, `on_estimate` hears the cost of the requests still to send before the first (`cost.py`).
    One process writes `out` at a time: a second stops, naming the first."""
    check_output(out, inputs={"the input file": input_path})
    with one_writer(out):
        if out.exists() and not force:
            raise SlmSwapError(
                f"{out} already exists\n  fix: pass {settings.FORCE} to replace it, or choose another "
                f"{settings.OUT}"
            )
        rows = _read(input_path)
        examples = [r.example for r in rows if r.example is not None]
        if on_total:
            on_total(len(examples))
        meta = run_meta("toolcall", LABEL_SPLIT, input_path, backend)
        journal = Journal(out, meta)
        done = journal.resume((e.id for e in examples), fresh=force)
        backend.resume_at(out, fresh=force)
        outcome = LabelOutcome(resumed=len(done))
        todo = [e for e in examples if e.id not in done]
        if on_estimate and pricing is not None and todo and (cost := backend.estimate(todo, pricing)):
            on_estimate(cost)
        with (
            closing(journal),  # on disk however the run ends
            tracer.run(
                f"label {backend.kind}",
                input={"file": str(input_path)},
                metadata={**meta.identity(), "out": str(out)},
            ) as trace,
        ):
            for _ in done.values():
                if on_answer:
                    on_answer(None)
            for example, completion in backend.ask(todo):
                calls, problem = (
                    check_answer(completion.text, example) if completion.error is None else ((), None)
                )
                why = f"request failed: {completion.error}" if completion.error is not None else problem
                result = ExampleResult(
                    id=example.id,
                    output=completion.text,
                    calls=[c.to_json() for c in calls] or None,
                    metrics={},
                    error_category=None if why is None else why.split(":")[0],
                    error_detail=why,
                    latency_s=completion.latency_s,
                    usage=completion.usage,
                    backend_error=completion.error,
                    replaced_surrogates=completion.replaced_surrogates,
                )
                journal.append(result)
                done[example.id] = result
                finished = datetime.now(UTC)
                trace.generation(
                    Generation(
                        name=f"label/{example.id}",
                        model=backend.model,
                        input=example.messages(),
                        output=completion.text,
                        metadata={"kept": why is None, "why_not": why},
                        usage=completion.usage.traced(),
                        start_time=finished - timedelta(seconds=completion.latency_s),
                        end_time=finished,
                        error=completion.error,
                    )
                )
                if on_answer:
                    on_answer(None)
            provenance = {
                "model": backend.model,
                "model_kind": backend.kind,
                "endpoint": backend.describe().get("endpoint"),
                "prompt": "slm-swap toolcall evaluation prompt",
                "labelled_at": now_iso(),
            }
            lines: list[dict[str, Any]] = []
            for row in rows:
                if row.example is None:
                    lines.append(row.data)
                    outcome.passed += 1
                    continue
                result = done[row.example.id]
                if result.error_detail is not None:
                    reason = "request failed" if result.backend_error else result.error_detail
                    outcome.dropped[reason] += 1
                    continue
                calls = tuple(ToolCall(c["name"], c["arguments"]) for c in result.calls or ())
                lines.append(_labelled(row.data, calls, result.output.strip(), provenance))
                outcome.kept += 1
                outcome.no_call += 0 if calls else 1
            with atomic_writer(out) as f:
                f.write(jsonl_text(lines))
            journal.remove()
            outcome.written = len(lines)
            outcome.tally = AnswerTally.of(done[e.id] for e in examples)
            trace.update(
                output={
                    "kept": outcome.kept,
                    "no_call": outcome.no_call,
                    "dropped": dict(outcome.dropped),
                    "passed": outcome.passed,
                }
            )
        return outcome
