"""The stop rules of constrained decoding: when an answer made of calls is complete.

Under a grammar that allows any number of calls, a small model keeps adding calls until the token limit,
and the answer then scores as the wrong number of calls or as cut off. Two rules end it, without being
told how many calls are wanted; decoding stays greedy and deterministic, and the rules are recorded in a
run's decoding settings (`RULE`).

1. **Stop or continue, on the likelihood of each.** Where the answer could end (after a call, where the
   grammar allows either the end or one more call), greedy decoding compares only the next token: the end
   against a newline (toolcall) or a comma (structured). That newline carries all the model's wish to go
   on — most often to write prose, which the grammar then turns into another call. So the rule compares
   the two ways on as text: the end (EOS; `]}` and EOS) against the whole opening of one more call
   (`\n<tool_call name="`; `, {"name": "`), each scored by the model itself (one extra forward pass over
   the few tokens of each), and takes the likelier. On BFCL's `multiple` (one call wanted among several
   offered tools) the newline beat the end after all 40 gold calls; the whole opening lost in 36.
2. **A repeated call ends the answer.** Once a call (same name, same arguments as JSON values) is
   completed a second time, the row stops and its answer is cut back to the calls before the repeat,
   still in the track's format. Of BFCL's 2,501 single-turn AST rows, one gold answer repeats a call, so
   a repeat is almost never part of a right answer, while several *different* calls are.
0. **No call, or a first call, on the first token of each.** Where the grammar also allows the no-call
   answer (an evaluation's answer, `tool_choice: auto` under `serve`), the answer's start is chosen on
   that step's own scores (no forward pass of its own): the first token of the no-call answer as
   training teaches it (structured: `]}` after `{"calls": [`; toolcall: `None`, of `NO_CALL_REPLY`)
   against that of a first call's opening (`{"`; `<`). The reply, once chosen, is the model's own (any
   text without `<`). On the untrained embedded model (BFCL irrelevance, 240 rows; `bench/abstain_rule.py`)
   whole texts scored as in rule 1 never abstained, on either track; first tokens abstain on 23 of 240
   toolcall rows at the cost of 2 of 80 AST rows. Comparing the whole mass of the tokens that begin a
   reply with that of `<` took the model to a reply on all 40 BFCL simple_python rows (0/40 from 19/40).
3. **A looping answer stops.** Inside a value the grammar cannot end a string or a list for the model;
   a small model then loops (`"Bacon", "Bacon", ...`, `000...`, `1.1.1.`) until the token limit. Once a
   constrained answer's last `LOOP_WINDOW` tokens are one unit of at most `LOOP_UNIT` tokens repeated,
   the row stops: the answer was going to be cut off anyway, and is now cut off early. Of BFCL's 2,501
   single-turn AST gold answers, written in the toolcall format, the longest such stretch is 25 tokens.
"""

from __future__ import annotations

import functools
import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slm_swap.data.formats import NO_CALL_REPLY
from slm_swap.local.callformats import CallFormat, call_format
from slm_swap.scoring.parse import TOOL_CALL_BLOCK
from slm_swap.types import Track

RULE = (
    "answers no call where its first token is likelier than a call's; stops where ending is likelier "
    "than one more call, at a repeated call, and when it loops"
)
LOOP_WINDOW = 64
LOOP_UNIT = 16
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


def loop_length(ids: Sequence[int], max_unit: int = LOOP_UNIT) -> int:
    """The length of the longest stretch of `ids` that repeats one unit of at most `max_unit` tokens
    (a unit of p tokens repeated k times, the last time perhaps in part, is a stretch of p * k tokens)."""
    best = 0
    for p in range(1, max_unit + 1):
        run = 0
        for j in range(p, len(ids)):
            run = run + 1 if ids[j] == ids[j - p] else 0
            if run:
                best = max(best, run + p)
    return best


class LoopStop:
    """A transformers stopping criterion over one batch: row i stops once its last `window` new tokens
    repeat one unit of at most `max_unit` tokens, when `rows[i]` asks for the rule."""

    def __init__(
        self, prompt_length: int, rows: Sequence[bool], window: int = LOOP_WINDOW, max_unit: int = LOOP_UNIT
    ):
        self.prompt_length = prompt_length
        self.rows = list(rows)
        self.window = window
        self.max_unit = max_unit

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        if input_ids.shape[1] - self.prompt_length < self.window:
            return done
        tail = input_ids[:, -self.window :]
        looping = torch.zeros_like(done)
        for p in range(1, self.max_unit + 1):
            looping |= (tail[:, p:] == tail[:, :-p]).all(dim=1)
        asked = torch.tensor(self.rows, dtype=torch.bool, device=input_ids.device)
        return looping & asked


# --- stop or continue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ways:
    """The two ways on from a point where an answer of calls could end, as text: `end` ("" is the
    end-of-sequence token alone) and `more` (the opening of one more call); at the answer's start, where
    no call could be the answer, `no_call` (then the end) and `first` (the opening of the first call);
    `close` is the character that completes a call."""

    end: str
    more: str
    no_call: str
    first: str
    close: str


WAYS: dict[Track, Ways] = {
    "toolcall": Ways(
        end="", more='\n<tool_call name="', no_call=NO_CALL_REPLY, first='<tool_call name="', close=">"
    ),
    "structured": Ways(end="]}", more=', {"name": "', no_call="]}", first='{"name": "', close="}"),
}


def ways_of(answer_format: str) -> Ways:
    """The ways on of an answer in `answer_format`: a track's own (`WAYS`), or a native one's
    (`callformats`): its end is its list's closing, one more call is the separator and the next call's
    opening, and no call is the reply training teaches."""
    native = call_format(answer_format)
    if native is None:
        return WAYS[answer_format]  # type: ignore[index]
    return Ways(
        end=native.suffix,
        more=native.sep + native.head,
        no_call=NO_CALL_REPLY,
        first=native.first,
        close=native.close[-1],
    )


def _native_body(native: CallFormat, text: str) -> str | None:
    """An answer of calls in a native format after its list's opening (where a completed call leaves the
    JSON depth at 0), or None when `text` is not such an answer."""
    if not text or not text.startswith(native.prefix):
        return None
    return text[len(native.prefix) :]


def _depth(text: str) -> int | None:
    """The JSON nesting depth at the end of `text`, or None inside a string."""
    depth, in_string, escaped = 0, False, False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
    return None if in_string else depth


def could_end(track: str, text: str) -> bool:
    """Whether an answer of calls in `track`'s format (or a native one) could end right after `text`: a
    call was just completed."""
    native = call_format(track)
    if native is not None:
        if len(native.close) > 1:  # a closing tag
            return text.endswith(native.close)
        body = _native_body(native, text)
        return body is not None and text.endswith(native.close) and _depth(body) == 0
    if track == "toolcall":
        return text.endswith("</tool_call>")
    return text.lstrip().startswith(_STRUCTURED_START) and text.endswith("}") and _depth(text) == 2


def at_start(track: str, text: str) -> bool:
    """Whether `text` is where the answer's first call would begin (structured: right after
    `{"calls": [`; toolcall and native formats: before anything)."""
    return text.lstrip() == _STRUCTURED_START if track == "structured" else text == ""


def start_rest(track: str, text: str) -> str | None:
    """Structured: what is left of `{"calls": [` after `text`, while `text` is a proper part of it (a
    token that ran past it would skip the choice of rule 0), else None."""
    if track == "structured" and _STRUCTURED_START.startswith(text) and text != _STRUCTURED_START:
        return _STRUCTURED_START[len(text) :]
    return None


def closes_next(track: str, text: str) -> bool:
    """Whether the next character after `text` completes a call (`Ways.close`)."""
    native = call_format(track)
    if native is not None:
        if len(native.close) > 1:
            return text.endswith(native.close[:-1])
        # Inside a call (one deeper than where calls end), a `}` can only have closed its arguments.
        body = _native_body(native, text)
        return body is not None and text.endswith("}") and _depth(body) == 1
    if track == "toolcall":
        return text.endswith("</tool_call")
    # Inside an entry (depth 3), a `}` can only have closed its arguments, after which the entry closes.
    return text.lstrip().startswith(_STRUCTURED_START) and text.endswith("}") and _depth(text) == 3


class StopOrContinue:
    """A transformers logits processor for one batch: at each point where row i's answer (in the format
    `tracks[i]`, None: not an answer of calls) could end, it scores the end and the opening of one more
    call with the model and forbids the first character of the less likely one; where `abstain[i]`, the
    answer's start is chosen between no call and a first call on the first token of each (rule 0). Runs
    before the grammar's mask, which keeps everything else the grammar forbids forbidden.

    So that every such point falls between two tokens, the token that completes a call is only its
    closing character (`>`, `}`): a token such as `},` would complete the call and begin the next in one
    step, past the point where the choice is made; likewise no token runs past `{"calls": [`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        prompt_mask: Any,
        tracks: Sequence[str | None],
        abstain: Sequence[bool] = (),
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prompt_mask = prompt_mask  # the padded prompts' attention mask
        self.tracks = list(tracks)
        self.abstain = list(abstain) or [False] * len(self.tracks)
        self.eos = tokenizer.eos_token_id
        self._prompt_cache: list[tuple[Any, Any]] | None = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        prompt_length = self.prompt_mask.shape[1]
        # (row, the way that ends the answer, the opening of the call that may follow, the tokens to
        # forbid if the call is likelier, those to forbid if the end is)
        at: list[tuple[int, str, str, list[int], list[int]]] = []
        for i, track in enumerate(self.tracks):
            if track is None:
                continue
            new = input_ids[i, prompt_length:]
            if bool((new == self.eos).any()):
                continue  # this row has ended; the rest is padding
            # A native format's markers may be special tokens (Phi-4-mini's `<|tool_call|>`): kept.
            text = self.tokenizer.decode(new, skip_special_tokens=call_format(track) is None)
            rest = start_rest(track, text) if self.abstain[i] else None
            if rest is not None:
                scores[i, _tokens_starting_with(self.tokenizer, rest, longer=True)] = -torch.inf
            elif self.abstain[i] and at_start(track, text):
                # Rule 0, on this step's own scores: the first token of the no-call answer against that
                # of a call's opening (no forward pass of its own).
                ways = ways_of(track)
                no_call, call = self._ids(ways.no_call)[0], self._ids(ways.first)[0]
                if track != "structured":  # a reply is any text without the character a call begins with
                    if_call = _tokens_not_starting_with(self.tokenizer, ways.first[0])
                else:
                    if_call = self._starting_with(ways.no_call)
                if_no_call = self._starting_with(ways.first)
                scores[i, if_call if scores[i, call] > scores[i, no_call] else if_no_call] = -torch.inf
            elif closes_next(track, text):
                close = ways_of(track).close
                scores[i, _tokens_starting_with(self.tokenizer, close, longer=True)] = -torch.inf
            elif could_end(track, text):
                ways = ways_of(track)
                at.append(
                    (i, ways.end, ways.more, self._starting_with(ways.end), self._starting_with(ways.more))
                )
        if not at:
            return scores
        rows = [i for i, *_ in at for _ in range(2)]
        sequences = [w for _, end, more, _, _ in at for w in ([*self._ids(end), self.eos], self._ids(more))]
        likelihoods = self._score(input_ids, rows, sequences)
        for n, (i, _, _, if_more, if_end) in enumerate(at):
            end, more = likelihoods[2 * n], likelihoods[2 * n + 1]
            scores[i, if_more if more > end else if_end] = -torch.inf
        return scores

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def _prompts(self, input_ids: Any) -> list[tuple[Any, Any]]:
        """The prompts' keys and values, per layer, computed once per batch (at its first choice)."""
        if self._prompt_cache is None:
            import torch

            ids = input_ids[:, : self.prompt_mask.shape[1]]
            with torch.inference_mode():
                output = self.model(
                    input_ids=ids,
                    attention_mask=self.prompt_mask,
                    position_ids=(self.prompt_mask.cumsum(-1) - 1).clamp(min=0),
                    use_cache=True,
                    logits_to_keep=1,
                )
            cache = output[_cache_name()]
            self._prompt_cache = [(layer.keys, layer.values) for layer in cache.layers]
        return self._prompt_cache

    def _score(self, input_ids: Any, rows: Sequence[int], ways: Sequence[list[int]]) -> list[float]:
        """The model's log-likelihood of each way on after its row's prompt and answer so far: one forward
        pass over the answers and ways (left-padded between prompt and answer), on the prompts' cache."""
        import torch
        from transformers import DynamicCache

        prompts = self._prompts(input_ids)
        answers = input_ids[list(rows), self.prompt_mask.shape[1] :].tolist()
        index = torch.tensor(list(rows), device=self.prompt_mask.device)
        cache = DynamicCache(ddp_cache_data=rows_of(prompts, rows))
        sequences = [a + w for a, w in zip(answers, ways, strict=True)]
        width = max(map(len, sequences))
        pad = self.tokenizer.pad_token_id
        device = self.prompt_mask.device
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in sequences], device=device)
        new_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences], device=device)
        mask = torch.cat([self.prompt_mask[index], new_mask], dim=1)
        keep = max(map(len, ways)) + 1
        with torch.inference_mode():
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, -width:],
                use_cache=True,
                logits_to_keep=keep,
                **{_cache_name(): cache},
            ).logits
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        totals = []
        for row, way in enumerate(ways):
            # Way token j sits at position width - len(way) + j and is predicted one position before it;
            # the kept logits start at position width - keep.
            totals.append(sum(float(log_probs[row, keep - len(way) + j - 1, t]) for j, t in enumerate(way)))
        return totals

    def _starting_with(self, text: str) -> list[int]:
        """The tokens that would begin `text` ("" : the end-of-sequence token)."""
        if not text:
            return [self.eos]
        return _tokens_starting_with(self.tokenizer, text[0])


def rows_of(layers: Sequence[tuple[Any, Any]], rows: Sequence[int]) -> list[tuple[Any, Any]]:
    """The cached keys and values of `rows`, layer by layer. Each layer's index lives on that layer's
    device: with `device_map="auto"` the layers, and so their caches, are spread over several GPUs."""
    import torch

    picked = []
    for keys, values in layers:
        index = torch.tensor(list(rows), device=keys.device)
        picked.append((keys[index], values[index.to(values.device)]))
    return picked


@functools.cache
def _cache_name() -> str:
    """The name transformers gives the key-value cache in a model's inputs and outputs: `cache` from 5.24
    on, `past_key_values` before (the version Unsloth pins)."""
    from importlib.metadata import version

    major, minor = (int(x) for x in version("transformers").split(".")[:2])
    return "cache" if (major, minor) >= (5, 24) else "past_key_values"


# Per tokenizer (held weakly: an id() could be reused by another tokenizer once this one is freed).
# Per tokenizer (held weakly: an id() could be reused by another tokenizer once this one is freed): each
# token's text, decoded once, and the token lists asked of it.
_TEXTS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
_STARTS: weakref.WeakKeyDictionary[Any, dict[tuple[str, bool, bool], list[int]]] = weakref.WeakKeyDictionary()


def _tokens_not_starting_with(tokenizer: Any, text: str) -> list[int]:
    """The tokens whose text does not begin with `text`, found once per tokenizer."""
    return _tokens(tokenizer, text, longer=False, starting=False)


def _tokens_starting_with(tokenizer: Any, character: str, *, longer: bool = False) -> list[int]:
    """The tokens whose text begins with `character` (with `longer`: and goes on past it), found once
    per tokenizer."""
    return _tokens(tokenizer, character, longer=longer, starting=True)


def _tokens(tokenizer: Any, text: str, *, longer: bool, starting: bool) -> list[int]:
    found = _STARTS.setdefault(tokenizer, {})
    if (text, longer, starting) not in found:
        if tokenizer not in _TEXTS:
            _TEXTS[tokenizer] = [tokenizer.decode([i]) for i in range(len(tokenizer))]
        found[text, longer, starting] = [
            i
            for i, t in enumerate(_TEXTS[tokenizer])
            if (t.startswith(text) and (not longer or t != text)) == starting
        ]
    return found[text, longer, starting]
