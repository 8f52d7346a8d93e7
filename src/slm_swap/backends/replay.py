"""Scores outputs produced elsewhere: no model runs.

`--predictions FILE` is either JSON Lines of `{"id": ..., "output": "..."}` (optional `latency_s`,
`usage` {prompt_tokens, completion_tokens}, `error`), or a run file written by `slm-swap eval`, whose
stored outputs are then scored again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slm_swap.backends.base import Backend
from slm_swap.errors import InputError
from slm_swap.files import read_json, read_jsonl
from slm_swap.types import Completion, Example, Usage


def _completion(row: dict[str, Any]) -> Completion:
    usage = row.get("usage") or {}
    return Completion(
        text=str(row.get("output") or ""),
        latency_s=float(row.get("latency_s") or 0.0),
        usage=Usage(int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))),
        error=row.get("error") or row.get("backend_error"),
    )


def load_predictions(path: Path) -> dict[str, Completion]:
    """Reads a predictions file into completions by example id."""
    if path.suffix == ".json":
        run = read_json(path, "a run file written by `slm-swap eval`")
        if not isinstance(run, dict) or not isinstance(run.get("results"), list):
            raise InputError(
                path,
                None,
                'not a run file (no "results" list)',
                "pass JSON Lines of {id, output} or a run file from `slm-swap eval`",
            )
        rows = run["results"]
    else:
        rows = []
        for lineno, row in read_jsonl(path, "JSON Lines of {id, output}"):
            if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("output", ""), str):
                raise InputError(path, str(lineno), 'a prediction needs "id" and a string "output"')
            rows.append(row)
    predictions: dict[str, Completion] = {}
    for row in rows:
        key = str(row["id"])
        if key in predictions:
            raise InputError(path, None, f"id {key!r} appears twice", "keep one output per example")
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
                "check --track/--split or the file",
            )

    def generate(self, examples: Sequence[Example]) -> list[Completion]:
        missing = Completion(text="", error=f"no prediction in {self.path.name}")
        return [self.predictions.get(e.id, missing) for e in examples]
