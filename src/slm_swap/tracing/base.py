"""What a tracer is: `Tracer` makes one `RunTrace` per command run, which records `Generation`s (model
calls, each then a `GenerationTrace` to score), scores and events; `flush()` says whether it all arrived
(`DeliveryReport`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slm_swap.tracing.delivery import DeliveryReport


@dataclass(frozen=True)
class Generation:
    """One finished model call, as a run records it (`RunTrace.generation`).

    `usage` is `{"input": n, "output": m}` tokens. `start_time`/`end_time` are the call's real times
    (naive datetimes are taken as UTC); when only `end_time` is given the generation is recorded as
    instantaneous, when neither is given it is recorded as now. `error` marks the generation with level
    ERROR and the error as status message. Nothing secret belongs in any field: all of it is sent.
    """

    name: str
    model: str
    input: Any
    output: str | None
    metadata: Mapping[str, Any] | None = None
    usage: Mapping[str, int] | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    error: str | None = None


@dataclass(frozen=True)
class ItemOutcome:
    """A model's answer to one dataset item and its metric scores."""

    output: str
    scores: Mapping[str, float]


class GenerationTrace(ABC):
    """One model call inside a run; `observation_id` is None when tracing is off."""

    observation_id: str | None = None

    @abstractmethod
    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        """Attach a numeric score to this generation (observation)."""


class RunTrace(ABC):
    """One command run: a Langfuse trace whose root span holds generations, scores and events."""

    trace_id: str | None = None

    @abstractmethod
    def generation(self, generation: Generation) -> GenerationTrace:
        """Record a finished model call under the run."""

    @abstractmethod
    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        """Attach a numeric score to the whole trace."""

    @abstractmethod
    def event(self, name: str, metadata: Mapping[str, Any]) -> None:
        """Record a point-in-time event under the run."""

    @abstractmethod
    def update(self, *, output: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        """Set the run's output and add metadata; only inside the `run()` block."""


class Tracer(ABC):
    """Makes run traces; `flush()` reports whether they arrived. Use one per command."""

    enabled: bool

    @abstractmethod
    def run(
        self,
        name: str,
        *,
        input: Any = None,
        metadata: Mapping[str, Any],
        tags: Sequence[str] = (),
        session_id: str | None = None,
    ) -> AbstractContextManager[RunTrace]:
        """Open a trace for one run. The trace carries `metadata`, `tags` and `session_id`.

        An exception leaving the block marks the run ERROR and propagates unchanged.
        """

    @abstractmethod
    def flush(self) -> DeliveryReport:
        """Block until everything sent so far is delivered or has failed; never raises."""

    def dataset_run(  # noqa: B027 - a no-op default is the point
        self,
        dataset: str,
        run: str,
        items: Mapping[str, ItemOutcome],
        *,
        description: str,
        metadata: Mapping[str, Any],
    ) -> None:
        """Records answers to items of a Langfuse dataset (by item id) as one dataset run (experiment)
        named `run`, each item linked to its trace with its scores; never raises."""

    def close(self) -> None:  # noqa: B027 - a no-op default is the point
        """Flush and release threads and connections; idempotent, never raises.

        Call `flush()` first for the report: what `close()` flushes is not reported.
        """
