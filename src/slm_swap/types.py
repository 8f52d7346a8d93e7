"""The small types that cross every boundary: examples, tool calls, completions, results.

Backends turn provider data into `Completion`; scoring turns a `Completion` into an `ExampleResult`;
`compare` and `report` read `RunResult` files only. Nothing downstream sees a raw provider dict.

`Example` (a prepared split's row) and `ExampleResult` (a result in a run file or journal) are also those
files' formats: their annotations say what a file may hold, `fileformats.checked` reads a row as one and
`to_json` (`fileformats.FileForm`) writes one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from typing_extensions import TypedDict

from slm_swap.fileformats import (
    CLOSED,
    OPEN,
    Count,
    FileDefault,
    FileForm,
    Flag,
    IdText,
    Seconds,
    Shaped,
    Share,
    Tokens,
)

Track = Literal["structured", "toolcall"]
TRACKS: tuple[Track, ...] = ("structured", "toolcall")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True, slots=True)
class ToolSpec(FileForm):
    """A tool offered to the model; `parameters` is a JSON Schema object (OpenAI / BFCL form)."""

    name: str
    description: Annotated[str, FileDefault("")]
    parameters: dict[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ToolSpec:
        return cls(name=data["name"], description=data.get("description", ""), parameters=data["parameters"])


@dataclass(frozen=True, slots=True)
class ToolCall(FileForm):
    """One call of a tool with concrete arguments."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AcceptableCall(FileForm):
    """What a correct call may look like, in BFCL's possible-answer form.

    `arguments` maps each parameter to the list of acceptable values; `""` in a list means the
    parameter may be omitted. A parameter absent from the map must not be passed.
    """

    name: str
    arguments: dict[str, list[Any]]


class RenderedTurn(TypedDict):
    """A turn of a logged conversation after its first user message, as a split row holds it
    (`formats.render_turns`)."""

    role: Literal["user", "assistant"]
    content: str


class CallJson(TypedDict):
    """A call as a result holds it (`ToolCall.to_json`)."""

    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Example(FileForm):
    """One dataset row: everything needed to prompt a model and to score its answer offline. The fields
    are in the order a split's row holds them; `turns` and `labelled_by` only where they are not empty."""

    id: Annotated[str, IdText()]
    track: Track
    source: str
    prompt: str
    completion: str
    system: str
    query: str
    tools: tuple[ToolSpec, ...]
    gold: tuple[ToolCall, ...]
    acceptable: tuple[AcceptableCall, ...]
    # A logged conversation's turns after its first user message, rendered (`formats.render_turns`).
    turns: Annotated[tuple[dict[str, str], ...], Shaped(tuple[RenderedTurn, ...])] = ()
    # The hosted model whose answer is the gold (`slm-swap label`): scores on it measure agreement.
    labelled_by: str = ""

    left_out = ("turns", "labelled_by")

    def messages(self) -> list[dict[str, str]]:
        """The messages every backend receives, for evaluation, training and serving: `[system, user]`,
        then the conversation's later turns, if any."""
        first = [{"role": "system", "content": self.system}, {"role": "user", "content": self.prompt}]
        return first + [dict(t) for t in self.turns]


@dataclass(frozen=True, slots=True)
class Usage(FileForm):
    """Tokens used for one example. Further counts a provider gives (total_tokens) are not read.

    `known` is False when the endpoint gave no usable counts (none, or not whole numbers from 0 to
    `MAX_TOKENS`: NaN, 1e400, -7, 3.7, "12"): both counts are then 0 and stand for nothing, and token sums
    leave the example out. A file that does not say is of known counts (files written before it), and
    files say only when it is False.
    """

    prompt_tokens: Tokens = 0
    completion_tokens: Tokens = 0
    known: Flag = True

    __pydantic_config__: ClassVar[dict[str, str]] = OPEN
    left_out = ("known",)

    def traced(self) -> dict[str, int] | None:
        """The counts as a trace's generation takes them (`{"input": n, "output": m}`), or None when they
        are unknown: no trace shows a count the endpoint did not give."""
        return {"input": self.prompt_tokens, "output": self.completion_tokens} if self.known else None


@dataclass(frozen=True, slots=True)
class Completion:
    """What a backend returns for one example: text, or the error that stopped it. `replaced_surrogates`
    counts the lone UTF-16 surrogates of the endpoint's text that were replaced by U+FFFD (no file can
    hold one)."""

    text: str
    latency_s: float = 0.0
    usage: Usage = field(default_factory=Usage)
    error: str | None = None
    replaced_surrogates: int = 0


@dataclass(frozen=True, slots=True)
class ExampleResult(FileForm):
    """One scored example as stored in a run file and its journal."""

    id: str
    output: str
    calls: Annotated[list[dict[str, Any]] | None, Shaped(list[CallJson] | None)]
    metrics: dict[str, Share]
    error_category: str | None
    error_detail: str | None
    latency_s: Seconds
    usage: Usage
    backend_error: str | None = None
    # Lone surrogates of the model's text replaced by U+FFFD (`Completion`); written only when some were,
    # and a file that does not say: 0.
    replaced_surrogates: Count = 0

    __pydantic_config__: ClassVar[dict[str, str]] = CLOSED
    left_out = ("replaced_surrogates",)


@dataclass(frozen=True)
class AnswerTally:
    """What a run's answers came with that the model should not have sent, for one warning per run: rows
    whose token counts are unknown (`Usage.known`), and lone surrogates replaced in the text."""

    rows: int = 0
    unknown_usage: int = 0
    replaced_surrogates: int = 0
    rows_replaced: int = 0  # rows whose text had a surrogate replaced

    @classmethod
    def of(cls, results: Iterable[ExampleResult]) -> AnswerTally:
        rows = unknown = replaced = rows_replaced = 0
        for result in results:
            rows += 1
            unknown += not result.usage.known
            replaced += result.replaced_surrogates
            rows_replaced += result.replaced_surrogates > 0
        return cls(rows, unknown, replaced, rows_replaced)
