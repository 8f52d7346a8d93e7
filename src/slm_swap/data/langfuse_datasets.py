"""Langfuse datasets: a team's kept examples as a source (`prepare --source langfuse`), and prepared
rows back as a dataset (`prepare --to-langfuse`), through the official SDK's public REST client.

An item's `input` is the chat shape of a logged request, `{"messages": [...], "tools": [...]}`, and its
`expected_output` the answer: `{"tool_calls": [...]}` (or an assistant message with `tool_calls`, or the
list of calls itself), each call `{"type": "function", "function": {"name", "arguments"}}` as the API
returns it. No call is an answer too: `{"tool_calls": [], "content": "<the reply>"}` (or an assistant
message with text and no `tool_calls`). An item is then read exactly as a line of an `--source openai`
file (`openai_chat.py`), with the same rules and messages; an item without an expected output is left
out and counted, as is an archived one. Items are read page by page, however many there are.

The connection is the project of LANGFUSE_HOST, LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY, checked by
the one reader of those variables (`slm_swap.tracing.config`); it is needed even where tracing is off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

from slm_swap.data import openai_chat
from slm_swap.data.rows import RowError, RowLeftOut, SourceRow
from slm_swap.errors import ConfigError, InputError
from slm_swap.tracing.config import ENV_DISABLED, LangfuseConfig

PAGE_SIZE = 50
ARCHIVED = "archived in Langfuse"


def client(langfuse: LangfuseConfig) -> Any:
    """The SDK's REST client for the project `langfuse` names, whatever LANGFUSE_DISABLED says.
    Raises ConfigError as `LangfuseConfig.project()` does."""
    project = langfuse.project(
        "reading or writing a Langfuse dataset needs the project's host and keys",
        f" (a dataset needs them even with {ENV_DISABLED}=1)",
    )
    from langfuse.api import LangfuseAPI

    return LangfuseAPI(
        base_url=project.host,
        username=project.public_key,
        password=project.secret_key,
        x_langfuse_sdk_name="python",
        timeout=30,
    )


def _refused(error: Exception, name: str) -> Exception:
    from langfuse.api.core.api_error import ApiError

    if isinstance(error, ApiError) and error.status_code in (401, 403):
        return ConfigError(
            f"Langfuse refused the keys (HTTP {error.status_code})\n"
            "  fix: check LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY for LANGFUSE_HOST's project"
        )
    if isinstance(error, ApiError) and error.status_code == 404:
        return InputError(
            f"langfuse dataset {name!r}",
            None,
            "no such dataset",
            "check the dataset's name (names are exact)",
        )
    if isinstance(error, ApiError):
        return ConfigError(f"Langfuse answered HTTP {error.status_code} for dataset {name!r}: {error.body}")
    return ConfigError(f"cannot reach Langfuse for dataset {name!r}: {type(error).__name__}: {error}")


def fetch_items(name: str, api: Any) -> list[Any]:
    """Every item of the dataset, page by page. Raises ConfigError / InputError."""
    try:
        api.datasets.get(dataset_name=quote(name, safe=""))
        items: list[Any] = []
        page = 1
        while True:
            found = api.dataset_items.list(dataset_name=name, page=page, limit=PAGE_SIZE)
            items.extend(found.data)
            if found.meta.total_pages <= page:
                return items
            page += 1
    except (ConfigError, InputError):
        raise
    except Exception as e:  # the SDK's ApiError, or httpx's connection errors
        raise _refused(e, name) from e


def _answer(expected: Any) -> dict[str, Any] | None:
    """The final assistant message an item's expected output stands for, or None (no answer)."""
    if expected is None or expected == {} or expected == []:
        return None
    if isinstance(expected, list):
        return {"role": "assistant", "content": None, "tool_calls": expected}
    if isinstance(expected, dict) and "tool_calls" in expected:
        return {"role": "assistant", "content": expected.get("content"), "tool_calls": expected["tool_calls"]}
    if isinstance(expected, dict) and expected.get("role") == "assistant":
        return dict(expected)
    raise RowError(
        "expectedOutput is not tool calls",
        'give it as {"tool_calls": [{"type": "function", "function": {"name", "arguments"}}]} (no call: '
        '{"tool_calls": [], "content": "<the reply>"})',
    )


def item_row(item: Any) -> dict[str, Any]:
    """An item as the line of an OpenAI-format file it stands for."""
    if not isinstance(item.input, dict) or "messages" not in item.input:
        raise RowError('input must be {"messages": [...], "tools": [...]}', openai_chat.WHAT)
    if str(getattr(item, "status", "ACTIVE")).upper().endswith("ARCHIVED"):
        raise RowLeftOut(ARCHIVED)
    answer = _answer(item.expected_output)
    messages = item.input["messages"]
    if not isinstance(messages, list):
        raise RowError('"messages" must be a non-empty list', openai_chat.WHAT)
    row: dict[str, Any] = {"id": item.id, "messages": [*messages, answer] if answer else messages}
    if "tools" in item.input:
        row["tools"] = item.input["tools"]
    if isinstance(item.metadata, dict):
        row["metadata"] = item.metadata
    return row


def content_digest(items: Sequence[Any]) -> str:
    """What the items say (the identity rule: the same content is the same source)."""
    digest = hashlib.sha256()
    for item in items:
        entry = [item.id, str(getattr(item, "status", "")), item.input, item.expected_output, item.metadata]
        digest.update(json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n")
    return digest.hexdigest()


def rows(name: str, items: Sequence[Any]) -> Iterator[tuple[str, Callable[[], SourceRow]]]:
    for item in items:
        where = f"item {item.id}"

        def convert(item: Any = item, where: str = where) -> SourceRow:
            return openai_chat.convert_row(item_row(item), where, source="langfuse")

        yield where, convert


# --- upload ----------------------------------------------------------------------------------------------


def upload(name: str, rows: Sequence[SourceRow], api: Any, *, description: str) -> int:
    """Writes `rows` as the items of dataset `name` (created if absent; an item of the same id is
    replaced), in the chat shape `prepare --source langfuse` reads back. Returns how many."""
    try:
        api.datasets.create(name=name, description=description, metadata={"written_by": "slm-swap prepare"})
        for row in rows:
            messages, answer = openai_chat.conversation_messages(row)
            api.dataset_items.create(
                dataset_name=name,
                id=row.id,
                input={"messages": messages, "tools": [openai_chat.openai_tool(t) for t in row.tools]},
                # A no-call row's answer is its reply, with no calls.
                expected_output={
                    "tool_calls": answer["tool_calls"],
                    **({"content": answer["content"]} if answer["content"] else {}),
                },
                metadata={
                    "source": row.source,
                    "slm_swap_id": row.id,
                    # Who wrote the answer travels with it: gold from the hosted model stays agreement.
                    **({openai_chat.LABEL_KEY: {"model": row.labelled_by}} if row.labelled_by else {}),
                },
            )
    except Exception as e:
        raise _refused(e, name) from e
    return len(rows)
