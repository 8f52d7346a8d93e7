"""What a hosted run will cost, worked out before its first request (cost is a first-class figure).

The prompt side is counted locally from the requests as they will be sent: each request's messages, and
under the native protocol the tools or the answer's schema sent beside them, as the JSON text the client
sends, in characters divided by four (`CHARS_PER_TOKEN`: OpenAI's rule of thumb for English). It is an
estimate, not the provider's count: no tokenizer of the hosted model is at hand offline (tiktoken fetches
its encodings from the internet at first use), and the hosted model may be any model. The JSON's quotes,
keys and escapes stand in for the few tokens per message a chat format adds: on the shipped sample the
estimate is within 3% of a BPE count (SmolLM2's 49k vocabulary, plus 4 tokens per message and 3 for the
reply); a hosted model's larger vocabulary usually counts fewer, so it leans high.

The answer side is bounded rather than guessed: every request may use its whole answer limit
(`--max-new-tokens`), and rows waiting for a label have no gold answer to measure. So `usd_upper` is the
prompt side's estimate plus the most the answers can cost, and `usd_prompt` is the prompt side alone.
Models that are not paid by the token (local, replay) give no estimate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slm_swap.fileformats import FileForm

if TYPE_CHECKING:
    from slm_swap.report import Pricing

CHARS_PER_TOKEN = 4
COUNTED_AS = f"characters/{CHARS_PER_TOKEN}"


@dataclass(frozen=True)
class Estimate(FileForm):
    """The cost of sending `rows` requests, before any is sent (see the module's docstring); a run file
    records it among its settings (`to_json`)."""

    rows: int
    prompt_tokens: int  # estimated, as `counted_as` says
    completion_tokens_upper: int  # rows × the answer's limit
    usd_prompt: float
    usd_upper: float
    price_per_1k_input: float
    price_per_1k_output: float
    counted_as: str = COUNTED_AS

    def line(self) -> str:
        """The estimate in one line, as the commands print it before the first request."""
        return (
            f"cost estimate: {self.rows:,} request{'s' * (self.rows != 1)}, about "
            f"{self.prompt_tokens:,} prompt tokens ({self.counted_as}) and at most "
            f"{self.completion_tokens_upper:,} completion tokens: about "
            f"${self.usd_prompt:,.4f} of prompts, at most ${self.usd_upper:,.4f} in all "
            f"(at ${self.price_per_1k_input}/${self.price_per_1k_output} per 1k tokens)"
        )


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """The estimated prompt tokens of one request: its messages and what goes beside them (tools, a
    response format), as JSON, in characters / CHARS_PER_TOKEN, rounded up."""
    return math.ceil(len(json.dumps(request, ensure_ascii=False)) / CHARS_PER_TOKEN)


def estimate(requests: Iterable[Mapping[str, Any]], max_tokens: int, pricing: Pricing) -> Estimate:
    """The cost of `requests` (what each sends besides the decoding settings), each answer at most
    `max_tokens` long, at `pricing`."""
    rows = prompt = 0
    for request in requests:
        rows += 1
        prompt += prompt_tokens(request)
    completion = rows * max_tokens
    usd_prompt = prompt / 1000 * pricing.input_per_1k
    usd_upper = usd_prompt + completion / 1000 * pricing.output_per_1k
    return Estimate(
        rows,
        prompt,
        completion,
        round(usd_prompt, 6),
        round(usd_upper, 6),
        pricing.input_per_1k,
        pricing.output_per_1k,
    )
