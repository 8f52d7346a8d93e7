"""A local checkpoint's own tool format: its chat template renders the tools (`apply_chat_template(...,
tools=...)`), and its answer's calls are read back in the format the template teaches.

The answer is read by the tokenizer's response template (`tokenizer.parse_response`, transformers 5.24 and
later) when the checkpoint ships one, else by the parser of the template's family, recognised by the
markers the template writes (which also choose the grammar of constrained decoding, response template or
not):

* phi4 (Phi-4-mini): `<|tool_call|>[{"name": ..., "arguments": {...}}, ...]<|/tool_call|>` (or
  `functools[...]`, as vLLM's template for it teaches);
* mistral (Mistral, Ministral, Devstral): `[TOOL_CALLS][{"name": ..., "arguments": {...}}]`, or the
  newer `[TOOL_CALLS]name[ARGS]{...}`;
* hermes (Qwen2.5, Qwen3, Hermes, SmolLM3): `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`,
  one block per call;
* llama3 (Llama 3.1 to 3.3): a bare `{"name": ..., "parameters": {...}}` (after `<|python_tag|>`, if
  any), calls apart by `;`.

An answer with no call is the no-call answer (its text). A call that cannot be read (its JSON broken, cut
off by the token limit, no name) is kept as a malformed call (`RawCall` with the text as written), so it
is scored as a failed call, never as an abstention.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slm_swap import settings
from slm_swap.errors import ConfigError
from slm_swap.files import loads
from slm_swap.protocol import RawCall

FAMILIES = ("phi4", "mistral", "hermes", "llama3")
# vLLM's tool parser for each family (`serve --engine vllm --protocol native`).
VLLM_PARSERS = {"phi4": "phi4_mini_json", "mistral": "mistral", "hermes": "hermes", "llama3": "llama3_json"}
# Markers that tell a template's family, in the order they are tried (Phi-4-mini's template also has
# `<|tool|>`; a Hermes-style template has `<tool_call>`; Llama 3's has ipython or `<|python_tag|>`).
_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("phi4", ("<|tool_call|>",)),
    ("mistral", ("[TOOL_CALLS]",)),
    ("hermes", ("<tool_call>",)),
    ("llama3", ("<|python_tag|>", "ipython")),
)


def template_text(tokenizer: Any) -> str:
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):  # named templates: the tool-use one, else the default
        template = template.get("tool_use") or template.get("default") or ""
    return str(template)


def family_of(tokenizer: Any, model: str) -> str:
    """The template's family, or a ConfigError (exit 2) saying why the native protocol cannot be used."""
    template = template_text(tokenizer)
    fix = (
        f"  fix: use {settings.PROTOCOL} prompt (slm-swap's own format, which any instruction model follows)"
    )
    if "tools" not in template:
        raise ConfigError(
            f"{settings.PROTOCOL} native: the chat template of {model} cannot render tools (it never reads "
            f"`tools`), so the model has no native tool format to be asked in\n{fix}"
        )
    for family, markers in _MARKERS:
        if any(m in template for m in markers):
            return family
    if getattr(tokenizer, "response_template", None):
        return "response_template"  # read by it; no grammar of slm-swap's for its format
    raise ConfigError(
        f"{settings.PROTOCOL} native: the chat template of {model} renders tools, but in a format slm-swap "
        f"cannot read answers of (it reads {', '.join(FAMILIES)}, and any tokenizer with a response "
        f"template)\n{fix}"
    )


def render(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    *,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt the template writes for `messages` with `tools`, the assistant turn opened (without
    `add_generation_prompt`: the whole conversation). Calls in earlier turns go to the template with their
    arguments as objects, as templates expect."""
    shown = [_with_object_arguments(m) for m in messages]
    text = tokenizer.apply_chat_template(
        shown, tools=tools or None, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    return str(text)


def tokens(
    tokenizer: Any,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    *,
    add_generation_prompt: bool,
) -> list[int]:
    """The token ids of `render`'s text, as evaluation tokenizes a rendered prompt: no special tokens
    added beyond those the template writes."""
    text = render(tokenizer, messages, tools, add_generation_prompt=add_generation_prompt)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _with_object_arguments(message: dict[str, Any]) -> dict[str, Any]:
    if not message.get("tool_calls"):
        return message
    calls = []
    for call in message["tool_calls"]:
        function = dict(call["function"])
        with contextlib.suppress(TypeError, ValueError):
            function["arguments"] = loads(function["arguments"])
        calls.append({**call, "function": function})
    return {**message, "tool_calls": calls}


@dataclass(frozen=True)
class Reading:
    """An answer read in its family's format: the calls (malformed ones kept as written) and the text."""

    calls: tuple[RawCall, ...]
    content: str


def read(
    family: str, text: str, tokenizer: Any = None, prompt: str = "", tools: Sequence[Any] = ()
) -> Reading:
    """The calls and text of a generated answer: by the tokenizer's response template when it has one
    (`family` then only names the grammar the answer was decoded under), else in `family`'s format. An
    answer the response template cannot parse (a call's JSON broken or cut off) is one malformed call."""
    if getattr(tokenizer, "response_template", None):
        try:
            message = tokenizer.parse_response(text, prefix=prompt, tools=list(tools) or None)
        except ValueError:
            return Reading((RawCall("", text.strip()),), "")
        calls = tuple(_response_call(c) for c in message.get("tool_calls") or ())
        return Reading(calls, str(message.get("content") or "").strip())
    return _READERS[family](text.strip())


def _response_call(call: Any) -> RawCall:
    """A call as a response template writes it (`{"type": "function", "function": {"name", "arguments"}}`
    or just the function); anything else is malformed, kept as written."""
    function = call.get("function", call) if isinstance(call, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return RawCall(function["name"], _arguments_text(function.get("arguments", {})))
    return RawCall("", json.dumps(call, ensure_ascii=False, default=str))


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _entry(value: Any, raw: str, arguments_key: str = "arguments") -> RawCall:
    """A call from a decoded `{"name", "arguments"}` object; anything else is malformed, kept as written."""
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        arguments = value.get(arguments_key, value.get("arguments", value.get("parameters")))
        if isinstance(arguments, dict):
            return RawCall(value["name"], json.dumps(arguments, ensure_ascii=False))
        if isinstance(arguments, str):  # some models write the arguments as a JSON string
            return RawCall(value["name"], arguments)
    return RawCall("", raw)


def _json_list(body: str) -> list[RawCall]:
    """Calls written as a JSON list of objects (or one object); malformed: one call as written."""
    try:
        value = loads(body)
    except ValueError:
        return [RawCall("", body)]
    entries = value if isinstance(value, list) else [value]
    return [_entry(e, json.dumps(e, ensure_ascii=False)) for e in entries] or [RawCall("", body)]


_PHI4 = re.compile(r"<\|tool_call\|>(.*?)(?:<\|/tool_call\|>|$)", re.S)
_HERMES = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)


def _read_phi4(text: str) -> Reading:
    if text.startswith("functools["):  # the form vLLM's Phi-4-mini template teaches
        return Reading(tuple(_json_list(text.removeprefix("functools"))), "")
    calls = [c for m in _PHI4.finditer(text) for c in _json_list(m.group(1).strip())]
    return Reading(tuple(calls), _PHI4.sub("", text).strip())


def _read_hermes(text: str) -> Reading:
    calls = []
    for m in _HERMES.finditer(text):
        body = m.group(1).strip()
        try:
            calls.append(_entry(loads(body), body))
        except ValueError:
            calls.append(RawCall("", body))
    return Reading(tuple(calls), _HERMES.sub("", text).strip())


_MISTRAL_NAMED = re.compile(r"([\w.-]+)\[ARGS\]")


def _read_mistral(text: str) -> Reading:
    content, marker, rest = text.partition("[TOOL_CALLS]")
    if not marker:
        return Reading((), text)
    calls: list[RawCall] = []
    for part in rest.split("[TOOL_CALLS]"):
        part = part.strip()
        named = _MISTRAL_NAMED.match(part)
        if named:  # the newer form: name[ARGS]{arguments}
            calls.append(RawCall(named.group(1), part[named.end() :].strip()))
        else:
            calls.extend(_json_list(part))
    return Reading(tuple(calls), content.strip())


def _read_llama3(text: str) -> Reading:
    body = text.removeprefix("<|python_tag|>").strip()
    if not body.startswith("{"):
        return Reading((), text)
    decoder = json.JSONDecoder()
    calls: list[RawCall] = []
    position = 0
    while position < len(body):
        try:
            value, end = decoder.raw_decode(body, position)
        except ValueError:
            calls.append(RawCall("", body[position:]))
            break
        try:  # strictly: a number beyond a float's range is not JSON here either (`files.loads`)
            loads(body[position:end])
        except ValueError:
            calls.append(RawCall("", body[position:end]))
        else:
            calls.append(_entry(value, body[position:end], "parameters"))
        position = end
        while position < len(body) and body[position] in " \t\n;":
            position += 1
    return Reading(tuple(calls), "")


_READERS: dict[str, Callable[[str], Reading]] = {
    "phi4": _read_phi4,
    "mistral": _read_mistral,
    "hermes": _read_hermes,
    "llama3": _read_llama3,
}
