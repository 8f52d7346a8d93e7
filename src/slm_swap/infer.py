"""`infer`: one question to one model — a dataset row (scored against its gold) or a free prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.backends.config import ModelConfig
from slm_swap.backends.factory import make_backend
from slm_swap.errors import SlmSwapError
from slm_swap.files import read_examples
from slm_swap.protocol import Request
from slm_swap.scoring.metrics import score
from slm_swap.tracing import Generation, Tracer
from slm_swap.types import Completion, Example, ExampleResult, Track


@dataclass(frozen=True)
class Answer:
    model: str
    messages: list[dict[str, Any]]  # as asked (`protocol.Request`)
    completion: Completion
    example: Example | None  # the row asked, when it was one
    result: ExampleResult | None  # its score


def ask(
    config: ModelConfig,
    track: Track,
    tracer: Tracer,
    *,
    split_file: Path,
    example_id: str | None = None,
    prompt: str | None = None,
) -> Answer:
    """Asks `prompt` (with the track's system prompt), or else the row `example_id` of `split_file` (its
    first row by default), and traces the exchange; a row's answer is scored."""
    if prompt is not None:
        if config.kind == "replay":
            raise SlmSwapError(f"{settings.PROMPT} needs a model (slm, azure or openai)")
        if getattr(config, "constrained", False) and track == "toolcall":
            raise SlmSwapError(
                f"{settings.CONSTRAINED} with {settings.PROMPT}: a free prompt offers no tools to build "
                f"the toolcall grammar from\n  fix: ask a dataset row ({settings.EXAMPLE_ID}), or use "
                f"{settings.TRACK} structured (any JSON)"
            )
    backend = make_backend(config)
    try:
        example = None
        if prompt is not None:
            request = Request.free(prompt, track, config.protocol)
        else:
            matches = [e for e in read_examples(split_file) if example_id in (None, e.id)]
            if not matches:
                raise SlmSwapError(f"no row with id {example_id!r} in {split_file}")
            example = matches[0]
            request = Request.of(example, config.protocol)
        messages = list(request.messages)
        with tracer.run(
            f"infer {track} {config.kind}",
            input=messages,
            metadata={"track": track, "model_kind": config.kind, "model": backend.model},
        ) as trace:
            (completion,) = backend.generate([request])
            trace.generation(
                Generation(
                    name=f"{track}/infer",
                    model=backend.model,
                    input=messages,
                    output=completion.text,
                    error=completion.error,
                    usage=completion.usage.traced(),
                )
            )
        model = backend.model
    finally:
        backend.close()
    result = None if example is None else score(example, completion)
    return Answer(model, messages, completion, example, result)
