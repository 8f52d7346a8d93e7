"""Where `prepare` reads rows from: one entry per `--source` kind in `SOURCES`, each opening its kind
from the settings that name it (`SourceNames`).

A `Source` is a re-iterable stream of rows, each converted only when asked, so a file can be read twice
(once to validate every row, once to convert the few chosen) with flat memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from importlib.resources import files
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.data import bfcl, openai_chat, xlam
from slm_swap.data.rows import SourceRow
from slm_swap.errors import InputError
from slm_swap.files import require_file
from slm_swap.identity import file_digest
from slm_swap.tracing.config import LangfuseConfig


def sample_path() -> Path:
    """The xLAM-format sample shipped with the package (written by us; the real file is gated)."""
    return Path(str(files("slm_swap.data").joinpath("sample/xlam_sample.json")))


@dataclass(frozen=True)
class Source:
    """Where rows come from: a re-iterable stream of (where, converter) pairs, and what identifies its
    content (for the identity rule: the same content under another path is the same source)."""

    label: str
    rows: Callable[[], Iterator[tuple[str, Callable[[], SourceRow]]]]
    identity: Callable[[], dict[str, Any]]
    file: Path | None = None  # the file it reads, where it is one: no output may be written over it


def xlam_source(path: Path) -> Source:
    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        for raw in xlam.iter_raw_rows(path):
            yield raw.where, partial(xlam.convert_row, raw.data)

    def identity() -> dict[str, Any]:
        require_file(path, f"pass the xLAM JSON file with {settings.DATASET_PATH}")
        return {"kind": "xlam", "sha256": file_digest(path)}

    return Source(str(path), rows, identity, path)


def bfcl_source(location: Path, category: str) -> Source:
    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        for where, question, answer in bfcl.iter_category(location, category):
            yield where, partial(bfcl.convert_row, question, answer)

    def identity() -> dict[str, Any]:
        return {"kind": "bfcl", "category": category, "sha256": bfcl.content_digest(location, category)}

    return Source(f"{location} [{category}]", rows, identity)


def openai_source(path: Path) -> Source:
    """A team's own conversations in OpenAI's chat format (`openai_chat.py`)."""

    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        for where, data in openai_chat.iter_lines(path):
            yield where, partial(openai_chat.convert_row, data, where)

    def identity() -> dict[str, Any]:
        require_file(path, f"pass the JSON Lines file with {settings.DATASET_PATH}")
        return {"kind": "openai", "sha256": file_digest(path)}

    return Source(str(path), rows, identity, path)


def langfuse_source(name: str, langfuse: LangfuseConfig) -> Source:
    """The items of a Langfuse dataset (`langfuse_datasets.py`) in the project `langfuse` names, fetched
    once, at the first read (where a missing key is refused)."""
    from slm_swap.data import langfuse_datasets

    fetched: list[Any] = []

    def items() -> list[Any]:
        if not fetched:
            fetched.append(langfuse_datasets.fetch_items(name, langfuse_datasets.client(langfuse)))
        return list(fetched[0])

    def rows() -> Iterator[tuple[str, Callable[[], SourceRow]]]:
        yield from langfuse_datasets.rows(name, items())

    def identity() -> dict[str, Any]:
        return {"kind": "langfuse", "dataset": name, "sha256": langfuse_datasets.content_digest(items())}

    return Source(f"langfuse dataset {name!r}", rows, identity)


@dataclass(frozen=True)
class SourceNames:
    """What a command's settings say of its source besides the kind: the dataset path (None: not given),
    the BFCL category, the Langfuse dataset, the Langfuse configuration to read that with, and the cache
    folder the BFCL wheel is fetched into."""

    path: Path | None
    bfcl_category: str
    langfuse_dataset: str | None
    langfuse: LangfuseConfig
    cache: Path


def _open_xlam(names: SourceNames) -> Source:
    return xlam_source(names.path or sample_path())


def _open_bfcl(names: SourceNames) -> Source:
    return bfcl_source(names.path or bfcl.fetch_wheel(names.cache), names.bfcl_category)


def _open_openai(names: SourceNames) -> Source:
    if names.path is None:
        raise InputError(
            f"{settings.SOURCE} openai",
            None,
            "needs a file",
            f"pass the JSON Lines file with {settings.DATASET_PATH}",
        )
    return openai_source(names.path)


def _open_langfuse(names: SourceNames) -> Source:
    if not names.langfuse_dataset:
        raise InputError(
            f"{settings.SOURCE} langfuse",
            None,
            "needs a dataset",
            f"pass {settings.LANGFUSE_DATASET} NAME",
        )
    return langfuse_source(names.langfuse_dataset, names.langfuse)


# One entry per kind of settings.SOURCES: how that kind is opened from the settings that name it.
SOURCES: dict[str, Callable[[SourceNames], Source]] = {
    "xlam": _open_xlam,
    "bfcl": _open_bfcl,
    "openai": _open_openai,
    "langfuse": _open_langfuse,
}


def source_for(
    kind: str,
    path: Path | None,
    bfcl_category: str,
    langfuse_dataset: str | None = None,
    langfuse: LangfuseConfig | None = None,
    *,
    cache: Path,
) -> Source:
    """The source a command's source, dataset path, BFCL category and Langfuse dataset settings
    name. xLAM defaults to the shipped sample, BFCL to the bfcl-eval wheel (fetched once, into `cache`);
    an OpenAI-format file and a Langfuse dataset must be named. A Langfuse dataset is read with the
    configuration `langfuse` (None: nothing configured)."""
    names = SourceNames(path, bfcl_category, langfuse_dataset, langfuse or LangfuseConfig(), cache)
    return SOURCES[kind](names)
