"""The stop rule of constrained decoding: an answer ends when it repeats a call it has already made.

Under a grammar that allows any number of calls, a small model keeps adding calls — most often the one
it just made — until the token limit, and the answer then scores as the wrong number of calls or as cut
off. Of BFCL's 2,501 single-turn AST rows, one gold answer repeats a call, so a repeat is almost never
part of a right answer, while several *different* calls are (parallel calls stay possible).

The rule is exact, not a guess at a count: once a call (same name, same arguments as JSON values) is
completed a second time, that row stops and its answer is cut back to the calls before the repeat, still
in the track's format (`<tool_call>` blocks, or the structured `{"calls": [...]}` closed after the last
kept call). Decoding stays greedy and deterministic; the rule is recorded in a run's decoding settings.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slm_swap.scoring.parse import TOOL_CALL_BLOCK

RULE = "stops at a repeated call"
_STRUCTURED_START = '{"calls": ['


def _key(name: Any, arguments: Any) -> str:
    return json.dumps([name, arguments], sort_keys=True)


def cut_at_repeat(text: str) -> str | None:
    """The answer cut before its first repeated call, or None when no call repeats."""
    stripped = text.lstrip()
    if stripped.startswith(_STRUCTURED_START):
        return _cut_structured(stripped)
    seen: set[str] = set()
    for match in TOOL_CALL_BLOCK.finditer(text):
        try:
            arguments = json.loads(match.group(2))
        except ValueError:
            continue
        key = _key(match.group(1), arguments)
        if key in seen:
            return text[: match.start()].rstrip()
        seen.add(key)
    return None


def _cut_structured(text: str) -> str | None:
    decoder = json.JSONDecoder()
    seen: set[str] = set()
    position = len(_STRUCTURED_START)
    last_end = position  # where the kept calls end
    while True:
        while position < len(text) and text[position] in " \n\t":
            position += 1
        try:
            entry, end = decoder.raw_decode(text, position)
        except ValueError:
            return None  # the call being written is not complete yet
        key = (
            _key(entry.get("name"), entry.get("arguments")) if isinstance(entry, dict) else json.dumps(entry)
        )
        if key in seen:
            return text[:last_end] + "]}"
        seen.add(key)
        last_end = end
        rest = text[end:].lstrip()
        if not rest.startswith(","):
            return None  # the list is closed (or still open after this call): nothing repeats
        position = end + text[end:].index(",") + 1


class RepeatedCallStop:
    """A transformers stopping criterion over one batch: row i stops once its answer repeats a call, when
    `rows[i]` asks for the rule. `prompt_length` is the padded prompt's length (new tokens follow it)."""

    def __init__(self, tokenizer: Any, prompt_length: int, rows: Sequence[bool]):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.rows = list(rows)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for i, asked in enumerate(self.rows):
            # A call can only have been completed by a token that closes one (`</tool_call>` or `}`):
            # the whole answer is decoded and searched only then, not at every step.
            if asked and any(c in self.tokenizer.decode(input_ids[i, -1:]) for c in ">}"):
                text = self.tokenizer.decode(input_ids[i, self.prompt_length :], skip_special_tokens=True)
                done[i] = cut_at_repeat(text) is not None
        return done
