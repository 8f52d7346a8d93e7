"""The tracer for LANGFUSE_DISABLED=1 (and for library callers that trace nothing): every call is a
no-op and everything counts as delivered, so a command never asks whether it is tracing."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from slm_swap.tracing.base import Generation, GenerationTrace, RunTrace, Tracer
from slm_swap.tracing.delivery import DeliveryReport


class NullGeneration(GenerationTrace):
    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        pass


class _NullRun(RunTrace):
    def generation(self, generation: Generation) -> GenerationTrace:
        return NullGeneration()

    def score(self, name: str, value: float, *, comment: str | None = None) -> None:
        pass

    def event(self, name: str, metadata: Mapping[str, Any]) -> None:
        pass

    def update(self, *, output: Any = None, metadata: Mapping[str, Any] | None = None) -> None:
        pass


class NullTracer(Tracer):
    """Everything is a no-op and counts as delivered."""

    enabled = False

    @contextmanager
    def run(
        self,
        name: str,
        *,
        input: Any = None,
        metadata: Mapping[str, Any],
        tags: Sequence[str] = (),
        session_id: str | None = None,
    ) -> Iterator[RunTrace]:
        yield _NullRun()

    def flush(self) -> DeliveryReport:
        return DeliveryReport(delivered=True, sent=0, failed=0)
