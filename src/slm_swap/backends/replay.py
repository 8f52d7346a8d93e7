"""Scores outputs produced elsewhere: no model runs.

`--predictions FILE` is either JSON Lines of `{"id": ..., "output": "..."}` (optional `latency_s`,
`usage` {prompt_tokens, completion_tokens}, `error`), or a run file written by `slm-swap eval`, whose
stored outputs are then scored again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from slm_swap import settings
from slm_swap.backends.base import Backend
from slm_swap.backends.config import ReplayConfig
from slm_swap.errors import ConfigError, InputError
from slm_swap.fileformats import FormatError, IdText, Seconds, checked
from slm_swap.files import read_jsonl
from slm_swap.protocol import Request
from slm_swap.runs import read_run
from slm_swap.types import Completion, Example, Usage


@dataclass(frozen=True)
class Prediction:
    """One line of a predictions file: a model's output for an example, or the error it gave."""

    id: Annotated[str, IdText()]
    output: str | None = None
    latency_s: Seconds | None = None
    usage: Usage | None = None
    error: str | None = None

    def completion(self) -> Completion:
        return Completion(self.output or "", self.latency_s or 0.0, self.usage or Usage(), self.error)


def load_predictions(path: Path) -> dict[str, Completion]:
    """Reads a predictions file (JSON Lines of {id, output, ...}, or a run file) into completions by id."""
    if path.suffix == ".json":
        run = read_run(path)
        return {
            r.id: Completion(r.output, r.latency_s, r.usage, r.backend_error, r.replaced_surrogates)
            for r in run.results
        }
    predictions: dict[str, Completion] = {}
    for lineno, row in read_jsonl(path, "JSON Lines of {id, output}"):
        try:
            prediction = checked(row, Prediction)
        except FormatError as e:
            raise InputError(
                path, str(lineno), f"not a prediction ({e})", 'each line needs "id" and "output"'
            ) from e
        if prediction.id in predictions:
            raise InputError(
                path, str(lineno), f"id {prediction.id!r} appears twice", "keep one output per example"
            )
        predictions[prediction.id] = prediction.completion()
    return predictions


class ReplayBackend(Backend):
    kind = "replay"

    def __init__(self, config: ReplayConfig):
        path = config.predictions
        if path is None:
            raise ConfigError(f"{settings.MODEL_KIND} replay needs {settings.PREDICTIONS} FILE")
        self.config = config
        self.path = path
        self.model = f"replay:{path.name}"
        self.predictions = load_predictions(path)

    def identity(self) -> dict[str, object]:
        from slm_swap.identity import file_digest

        return {"predictions_sha256": file_digest(self.path)}

    def check_covers(self, examples: Sequence[Example]) -> str | None:
        """Refuses a predictions file that shares no id with the split (almost surely the wrong file); for
        one that covers only part of the split, or holds ids the split has not, says so in a line."""
        ids = {e.id for e in examples}
        answered = sum(1 for i in ids if i in self.predictions)
        if not answered:
            raise InputError(
                self.path,
                None,
                f"has no output for any example of this split (first expected id: {examples[0].id!r})",
                f"check {settings.TRACK}/{settings.SPLIT} or the file",
            )
        unknown = sum(1 for i in self.predictions if i not in ids)
        if answered == len(ids) and not unknown:
            return None
        said = f"{self.path} answers {answered} of the split's {len(ids)} examples"
        if answered < len(ids):
            said += f"; the other {len(ids) - answered} are scored as failures (no_output)"
        if unknown:
            said += f"; {unknown} of its ids are not in the split (left out)"
        return said

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        missing = Completion(text="", error=f"no prediction in {self.path.name}")
        return [self.predictions.get(r.id, missing) for r in requests]
