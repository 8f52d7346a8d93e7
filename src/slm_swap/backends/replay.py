"""Scores outputs produced elsewhere: no model runs.

`--predictions FILE` is either JSON Lines of `{"id": ..., "output": "..."}` (optional `latency_s`,
`usage` {prompt_tokens, completion_tokens}, `error`), or a run file written by `slm-swap eval`, whose
stored outputs are then scored again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.backends.base import Backend
from slm_swap.errors import InputError
from slm_swap.files import read_jsonl, schema_problem
from slm_swap.runs import read_run
from slm_swap.types import LATENCY_SCHEMA, USAGE_PROPERTIES, Completion, Example, Usage, file_format

PREDICTION_SCHEMA: dict[str, Any] = file_format(
    {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": ["string", "integer"]},
            "output": {"type": ["string", "null"]},
            "latency_s": {"anyOf": [LATENCY_SCHEMA, {"type": "null"}]},
            "usage": {"type": ["object", "null"], "properties": USAGE_PROPERTIES},
            "error": {"type": ["string", "null"]},
        },
    }
)


def _completion(row: dict[str, Any]) -> Completion:
    usage = row.get("usage") or {}
    return Completion(
        text=row.get("output") or "",
        latency_s=float(row.get("latency_s") or 0.0),
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        error=row.get("error"),
    )


def load_predictions(path: Path) -> dict[str, Completion]:
    """Reads a predictions file (JSON Lines of {id, output, ...}, or a run file) into completions by id."""
    if path.suffix == ".json":
        run = read_run(path)
        return {r.id: Completion(r.output, r.latency_s, r.usage, r.backend_error) for r in run.results}
    predictions: dict[str, Completion] = {}
    for lineno, row in read_jsonl(path, "JSON Lines of {id, output}"):
        problem = schema_problem(row, PREDICTION_SCHEMA)
        if problem is not None:
            raise InputError(
                path, str(lineno), f"not a prediction ({problem})", 'each line needs "id" and "output"'
            )
        key = str(row["id"])
        if key in predictions:
            raise InputError(path, str(lineno), f"id {key!r} appears twice", "keep one output per example")
        predictions[key] = _completion(row)
    return predictions


class ReplayBackend(Backend):
    kind = "replay"

    def __init__(self, path: Path):
        self.path = path
        self.model = f"replay:{path.name}"
        self.predictions = load_predictions(path)

    def identity(self) -> dict[str, object]:
        from slm_swap.identity import file_digest

        return {"predictions_sha256": file_digest(self.path)}

    def check_covers(self, examples: Sequence[Example]) -> None:
        """Refuses a predictions file that shares no id with the split (almost surely the wrong file)."""
        if not any(e.id in self.predictions for e in examples):
            raise InputError(
                self.path,
                None,
                f"has no output for any example of this split (first expected id: {examples[0].id!r})",
                f"check {settings.TRACK}/{settings.SPLIT} or the file",
            )

    def generate(self, examples: Sequence[Example]) -> list[Completion]:
        missing = Completion(text="", error=f"no prediction in {self.path.name}")
        return [self.predictions.get(e.id, missing) for e in examples]
