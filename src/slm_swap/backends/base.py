"""The one interface every model backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from slm_swap.protocol import Request
from slm_swap.types import Completion, Example

if TYPE_CHECKING:
    from slm_swap.backends.config import ModelConfig
    from slm_swap.cost import Estimate
    from slm_swap.report import Pricing


class Backend(ABC):
    """Completes requests (`protocol.Request`: a conversation, its tools, the answer's form, the protocol).

    `generate` takes one batch (at most `batch_size` requests) and returns one `Completion` per request,
    in input order. A failure of one request is returned as that completion's `error`, never raised, so a
    run always ends with every example scored or recorded. Dataset rows become requests in one place
    (`ask`, `complete`), under the protocol of the backend's configuration.
    """

    kind: str
    model: str
    batch_size: int = 1
    constrained: bool = False  # answers decoded under the answer form's grammar (local model only)
    config: ModelConfig  # the model choice it was built from: what it runs, and how it is asked

    @abstractmethod
    def generate(self, requests: Sequence[Request]) -> list[Completion]: ...

    def schedule(self, requests: Sequence[Request]) -> list[list[Request]]:
        """How `stream` groups requests into `generate` calls: in order, `batch_size` at a time."""
        size = max(1, self.batch_size)
        return [list(requests[i : i + size]) for i in range(0, len(requests), size)]

    def stream(self, requests: Sequence[Request]) -> Iterator[tuple[Request, Completion]]:
        """Yields each request with its completion as soon as it is done, in whatever order they finish."""
        for batch in self.schedule(requests):
            yield from zip(batch, self.generate(batch), strict=True)

    def ask(self, examples: Sequence[Example]) -> Iterator[tuple[Example, Completion]]:
        """Each dataset row asked under this backend's protocol, with its completion as soon as it is
        done (in whatever order they finish)."""
        requests = [Request.of(e, self.config.protocol) for e in examples]
        row = {id(r): i for i, r in enumerate(requests)}
        for request, completion in self.stream(requests):
            yield examples[row[id(request)]], completion

    def complete(self, examples: Sequence[Example]) -> list[Completion]:
        """The completions of dataset rows, in input order."""
        done = {id(e): c for e, c in self.ask(examples)}
        return [done[id(e)] for e in examples]

    def estimate(self, examples: Sequence[Example], pricing: Pricing) -> Estimate | None:
        """What asking `examples` will cost at `pricing`, worked out before the first request (`cost.py`);
        None for a model that is not paid by the token."""
        return None

    @abstractmethod
    def identity(self) -> dict[str, object]:
        """What changes this backend's outputs (the identity rule, `identity.py`): content digests and
        decoding settings, never names, paths, concurrency, timeouts or retries."""

    def describe(self) -> dict[str, object]:
        """What a run file records about this backend (identity and everything else worth showing)."""
        return {"model_kind": self.kind, "model": self.model, "batch_size": self.batch_size}

    def resume_at(self, out: Path, *, fresh: bool = False) -> None:  # noqa: B027 - most keep nothing
        """Where the output `out` is written (`evaluate`, `label`): a backend whose work goes on beyond this
        process (the Batch API route, `batch.py`) keeps beside it what a rerun needs to pick that work up
        again, unless `fresh`. Other backends keep nothing."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Releases what the backend holds (models, connections)."""
