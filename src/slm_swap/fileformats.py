"""How slm-swap's files are defined and checked.

Each file format is defined once, by the types that hold it in memory (`types.Example`,
`types.ExampleResult`, `runs.RunResult`, `compare.Decision`, `verdict.VerdictHeader`,
`train.card.AdapterCard`, `backends.replay.Prediction`): their fields' annotations say what a file may
hold, and `checked` reads a decoded JSON value as one of them, field by field, with pydantic. Pydantic
is imported when a file is first checked, never by importing the types, so `slm-swap --help` does not
pay for it.

Where a file holds a field otherwise than the code does, its annotation says how, with the metadata
here (pydantic's own protocol, `__get_pydantic_core_schema__`, so that nothing needs pydantic at import):

* `AsWritten`: a number or a flag takes its own JSON type only (no "1" for 1, no true for 1.0, no 2.0
  for a count), is finite, and lies within its bounds;
* `IdText`: an id is text or a whole number, read as text;
* `FileDefault`: a field that a file may leave out;
* `Shaped`: a field checked as a narrower type than the code gives it (a turn as exactly a role and a
  content), whose values are still the code's type.

A class's `__pydantic_config__` (`CLOSED`) refuses fields that its format does not name; other fields
are not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler, TypeAdapter
    from pydantic_core import CoreSchema, ValidationError

T = TypeVar("T")

# As a class's __pydantic_config__: a field that its format does not name is an error (CLOSED), or is not
# read (OPEN, the default; said where a class sits inside a CLOSED one, whose config pydantic passes down
# to the classes inside that say none).
CLOSED = {"extra": "forbid"}
OPEN = {"extra": "ignore"}


@dataclass(frozen=True)
class AsWritten:
    """A number or a flag as a file holds it: its own JSON type only, finite, and within `low` and `high`
    when they are given."""

    low: int | None = None
    high: int | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema: dict[str, Any] = {**handler(source), "strict": True}  # the schema of int, float or bool
        if schema["type"] == "float":
            schema["allow_inf_nan"] = False
        if self.low is not None:
            schema["ge"] = self.low
        if self.high is not None:
            schema["le"] = self.high
        return cast("CoreSchema", schema)


class IdText:
    """An id as a file may hold it: text, or a whole number (read as its text)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from pydantic_core import core_schema

        number = core_schema.no_info_after_validator_function(str, core_schema.int_schema(strict=True))
        return core_schema.union_schema(
            [core_schema.str_schema(), number],
            custom_error_type="id_type",
            custom_error_message="Input should be text or a whole number",
        )


@dataclass(frozen=True)
class FileDefault:
    """A field that a file may leave out, read as `value` then; code always gives it."""

    value: Any

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        from pydantic_core import core_schema

        return core_schema.with_default_schema(handler(source), default=self.value)


@dataclass(frozen=True)
class Shaped:
    """A field checked as `shape`, a narrower type whose values are also the field's type in code (a
    TypedDict for a dict[str, str])."""

    shape: Any

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return handler.generate_schema(self.shape)


Flag = Annotated[bool, AsWritten()]
Number = Annotated[float, AsWritten()]
Count = Annotated[int, AsWritten(0)]
Share = Annotated[float, AsWritten(0, 1)]  # every metric is a share
# A latency and a token count: not negative, and within what a run can take (a year of seconds; a billion
# tokens), so that sums and costs stay ordinary floats.
Seconds = Annotated[float, AsWritten(0, 31_536_000)]
MAX_TOKENS = 1_000_000_000
Tokens = Annotated[int, AsWritten(0, MAX_TOKENS)]


class FormatError(ValueError):
    """A value that is not of its file format; the message names the first field that is not (`at
    results/0/latency_s: ...`), for the caller to put beside the file and line."""


def checked(value: Any, kind: type[T]) -> T:
    """`value` (decoded JSON) read as `kind`, a file format, every field checked; FormatError if it is not
    one."""
    from pydantic_core import ValidationError

    try:
        return cast(T, _adapter(kind).validate_python(value))
    except ValidationError as e:
        raise FormatError(_first_problem(e)) from None


def _adapter(kind: type) -> TypeAdapter[Any]:
    """The validator of a format, built once (tens of milliseconds: pydantic reads the classes)."""
    from pydantic import TypeAdapter

    if kind not in _adapters:
        _adapters[kind] = TypeAdapter(kind)
    return _adapters[kind]


_adapters: dict[type, TypeAdapter[Any]] = {}


# Pydantic's words for JSON's containers and a class's fields, in JSON's.
_JSON_WORDS = {
    "dataclass_type": "input should be an object",
    "dict_type": "input should be an object",
    "list_type": "input should be an array",
    "tuple_type": "input should be an array",
    "unexpected_keyword_argument": "not a field of this format",
    "extra_forbidden": "not a field of this format",
}


def _first_problem(error: ValidationError) -> str:
    first = error.errors(include_url=False, include_context=False)[0]
    where = "/".join(str(step) for step in first["loc"]) or "the top level"
    message = _JSON_WORDS.get(first["type"]) or first["msg"][:1].lower() + first["msg"][1:200]
    value = first.get("input")
    if first["type"] != "missing" and not isinstance(value, dict | list):
        message += f" (got {repr(value)[:60]})"
    return f"at {where}: {message}"
