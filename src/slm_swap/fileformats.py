"""How slm-swap's files are defined, checked and written.

Each file format is defined once, by the types that hold it in memory (`types.Example`,
`types.ExampleResult`, `runs.RunResult`, `compare.Decision`, `verdict.Verdict`, `train.card.AdapterCard`,
`backends.replay.Prediction`): their fields' annotations say what a file may hold, `checked` reads a
decoded JSON value as one of them, field by field, with pydantic, and `dumped` writes one through the
same adapter, so that what is written is what is read. A type that a file holds says how beside its
fields by being a `FileForm` (its format tag, the values worked out from its fields that the file holds
for people and other tools, the fields left out at their default). Pydantic is imported when a file is
first checked or written, never by importing the types, so `slm-swap --help` does not pay for it.

Where a file holds a field otherwise than the code does, its annotation says how, with the metadata
here (pydantic's own protocol, `__get_pydantic_core_schema__`, so that nothing needs pydantic at import):

* `AsWritten`: a number or a flag takes its own JSON type only (no "1" for 1, no true for 1.0, no 2.0
  for a count), is finite, and lies within its bounds;
* `IdText`: an id is text or a whole number, read as text;
* `FileDefault`: a field that a format lets a file leave out where the code gives it no default (a
  tool's description, which OpenAI's tools make optional, comes before its parameters);
* `Shaped`: a field checked as a narrower type than the code gives it (a turn as exactly a role and a
  content), whose values are still the code's type.

A class's `__pydantic_config__` (`CLOSED`) refuses fields that its format does not name; other fields
are not read.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, TypeVar, cast

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


def dumped(value: Any) -> Any:
    """`value`, of a file format, as its file holds it, for `json.dump`: written through the same adapter
    that reads it (`checked`), with what its `FileForm` adds. A tuple stays a tuple (JSON's array), and a
    number that is not finite stays as it is, so that writing it fails (`allow_nan=False`); pydantic's
    JSON mode would make it null."""
    return _adapter(type(value)).dump_python(value)


class FileForm:
    """A type that a file holds, written as it is read (`dumped`, `to_json`). Beside its fields, the file
    holds:

    * `"format": file_format` first, where the type is a whole file;
    * then `written` (the file's key of each, and the property that gives it): values worked out from
      the fields, for people and other tools; a reader does not read them back, it works them out again;
    * then the fields, in order, but those of `left_out` that hold their default: a field that most
      files leave at its default is written only where it says something, so that those files are as
      they were before it.
    """

    __slots__ = ()
    file_format: ClassVar[str | None] = None
    written: ClassVar[dict[str, str]] = {}
    left_out: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        """As its file holds it (`dumped`)."""
        return cast("dict[str, Any]", dumped(self))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        if cls.file_format is None and not cls.written and not cls.left_out:
            return schema
        from pydantic_core import core_schema

        dataclass_schema = cast("dict[str, Any]", handler.resolve_ref_schema(schema))
        dataclass_schema["schema"]["computed_fields"] = [
            core_schema.computed_field(name, handler.generate_schema(_returned(cls, name)))
            for name in cls.written.values()
        ]
        head = {"format": cls.file_format} if cls.file_format else {}
        defaults = {f.name: f.default for f in dataclasses.fields(cast(Any, cls)) if f.name in cls.left_out}

        def dump(value: Any, serialize: core_schema.SerializerFunctionWrapHandler) -> dict[str, Any]:
            data = serialize(value)
            for name, default in defaults.items():
                if getattr(value, name) == default:
                    del data[name]
            if not head and not cls.written:
                return cast("dict[str, Any]", data)
            return head | {key: data.pop(name) for key, name in cls.written.items()} | data

        dataclass_schema["serialization"] = core_schema.wrap_serializer_function_ser_schema(dump)
        return schema


def _returned(cls: type, name: str) -> Any:
    """The type that the property `name` of `cls` returns, as its annotation says."""
    attribute = inspect.getattr_static(cls, name)
    function = attribute.fget if isinstance(attribute, property) else attribute.func  # or a cached_property
    return typing.get_type_hints(function)["return"]


def _adapter(kind: type) -> TypeAdapter[Any]:
    """The validator and serializer of a format, built once (tens of milliseconds: pydantic reads the
    classes)."""
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
