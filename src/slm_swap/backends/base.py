"""The one interface every model backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from slm_swap.types import Completion, Example


class Backend(ABC):
    """Generates answers for examples.

    `generate` takes one batch (at most `batch_size` examples) and returns one `Completion` per example,
    in input order. A failure of one example is returned as that completion's `error`, never raised, so a
    run always ends with every example scored or recorded.
    """

    kind: str
    model: str
    batch_size: int = 1

    @abstractmethod
    def generate(self, examples: Sequence[Example]) -> list[Completion]: ...

    def describe(self) -> dict[str, object]:
        """What a run file records about this backend."""
        return {"model_kind": self.kind, "model": self.model, "batch_size": self.batch_size}

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Releases what the backend holds (models, connections)."""
