"""The one interface every model backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

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
    constrained: bool = False  # answers decoded under the track's grammar (local model only)
    protocol: str = "prompt"  # how the model is asked (`protocol.py`)

    @abstractmethod
    def generate(self, examples: Sequence[Example]) -> list[Completion]: ...

    def schedule(self, examples: Sequence[Example]) -> list[list[Example]]:
        """How `stream` groups examples into `generate` calls: in order, `batch_size` at a time."""
        size = max(1, self.batch_size)
        return [list(examples[i : i + size]) for i in range(0, len(examples), size)]

    def stream(self, examples: Sequence[Example]) -> Iterator[tuple[Example, Completion]]:
        """Yields each example with its completion as soon as it is done, in whatever order they finish."""
        for batch in self.schedule(examples):
            yield from zip(batch, self.generate(batch), strict=True)

    @abstractmethod
    def identity(self) -> dict[str, object]:
        """What changes this backend's outputs (the identity rule, `identity.py`): content digests and
        decoding settings, never names, paths, concurrency, timeouts or retries."""

    def describe(self) -> dict[str, object]:
        """What a run file records about this backend (identity and everything else worth showing)."""
        return {"model_kind": self.kind, "model": self.model, "batch_size": self.batch_size}

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Releases what the backend holds (models, connections)."""
