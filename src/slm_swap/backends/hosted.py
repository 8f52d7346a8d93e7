"""The hosted LLM through the official `openai` SDK: Azure OpenAI, or any OpenAI-compatible endpoint.

Every request has temperature 0 and seed 42. Under the prompt protocol it carries the same `[system,
user]` messages as the local model gets and the answer is read as text, so both sides are compared like
for like; under the native protocol (`protocol.py`) the tools go through the API's `tools` and the calls
come back as `tool_calls` (toolcall track), or the answer's schema goes as `response_format`
(structured track). Requests run `concurrency` at a time; the SDK retries 429/5xx/timeouts with backoff and
honours Retry-After. A request that still fails (content filter, a 400, retries exhausted, a body that
is not a chat completion) becomes that example's error and is scored as a failure. Only errors that
would fail every request — a refused key, an unknown deployment or model — stop the run, with a message
saying what to check.

Nothing the endpoint sends is trusted (`_Reader`): the text it gives (content, tool names and
arguments, error messages) must be text, and a lone UTF-16 surrogate in it, which no file can hold, is
replaced by U+FFFD and counted; a token count that is not a whole number from 0 to `MAX_TOKENS` makes the
example's usage unknown. A response without a choice or a message is that example's error.

A base URL may carry credentials: its user-info goes to the client, which sends it as HTTP Basic
authentication, and its query parameters are sent as query parameters with every request (the client
appends paths to its base URL, which must then hold no query). Messages and run files show the URL
through `urls.shown`, without either.

Azure accepts four endpoint forms in AZURE_ENDPOINT:

* the v1 API, `https://<resource>.openai.azure.com/openai/v1/`: the OpenAI client as it is, the deployment
  as the request's `model`, no api-version (the form newer models need);
* the resource root, `https://<resource>.openai.azure.com`;
* the deployment URL, `https://<resource>.openai.azure.com/openai/deployments/<name>`;
* the preview model-inference form, `https://<resource>.services.ai.azure.com/models/chat/completions`
  (or just `.../models`), where the deployment is named in the request body.

Every form is signed with AZURE_API_KEY (the `api-key` header) or, without one, keyless: a Microsoft
Entra ID bearer token from azure-identity's DefaultAzureCredential (`slm-swap[azure]`), fetched again as
it nears its end. Retries honour Azure's `retry-after-ms` as well as Retry-After: the SDK reads both.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from slm_swap import protocol, settings
from slm_swap.backends.base import Backend
from slm_swap.backends.config import HostedConfig
from slm_swap.cost import Estimate, estimate
from slm_swap.errors import ConfigError
from slm_swap.fileformats import MAX_TOKENS
from slm_swap.protocol import PROMPT, Request
from slm_swap.settings import AZURE_V1_URL, AzureSettings
from slm_swap.types import Completion, Example, Usage
from slm_swap.urls import shown

if TYPE_CHECKING:
    from openai import OpenAI

    from slm_swap.report import Pricing

_DEPLOYMENT_URL = re.compile(r"^(?P<root>https?://[^/]+)/openai/deployments/(?P<name>[^/?]+)")
_MODELS_URL = re.compile(r"^(?P<base>https?://[^/]+(?:/[^?]*)?/models)(?:/chat/completions)?/?(?:\?.*)?$")
_SURROGATE = re.compile("[\ud800-\udfff]")
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"  # what an Azure OpenAI token is for


@dataclass(frozen=True)
class Endpoint:
    """A ready client and the model (or deployment) name to send."""

    client: OpenAI
    model: str
    url: str  # for messages and run files (`urls.shown`): never holds a key, a password or a query value
    form: str
    keyless: bool = False  # signed with a Microsoft Entra ID token instead of a key


def azure_credential() -> Any:
    """The Microsoft Entra ID credential keyless Azure is asked with: azure-identity's
    DefaultAzureCredential (environment, workload or managed identity, Azure CLI, ...). Tests put a
    stand-in credential in its place."""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def entra_token_provider() -> Callable[[], str]:
    """A bearer token for Azure OpenAI from `azure_credential`, at each request (azure-identity keeps it
    until it nears its end). A credential that gives none stops the run: every request would fail."""
    try:
        from azure.core.exceptions import AzureError
        from azure.identity import get_bearer_token_provider
    except ImportError as e:
        raise ConfigError(
            "AZURE_API_KEY is not set, so Azure is asked keyless (Microsoft Entra ID), which needs "
            "azure-identity\n  fix: pip install 'slm-swap[azure]', or export AZURE_API_KEY"
        ) from e
    provider = get_bearer_token_provider(azure_credential(), ENTRA_SCOPE)

    def token() -> str:
        try:
            return provider()
        except AzureError as e:
            said = str(e).strip().splitlines()
            raise ConfigError(
                f"no Microsoft Entra ID token for Azure: {said[0] if said else type(e).__name__}\n"
                "  fix: sign in (az login) or run with a managed or workload identity, or export "
                "AZURE_API_KEY"
            ) from e

    return token


def azure_endpoint(settings: AzureSettings, *, timeout: float, max_retries: int) -> Endpoint:
    """Builds the client for whichever of the four Azure endpoint forms AZURE_ENDPOINT uses, signed with
    AZURE_API_KEY or, without one, an Entra ID token (`entra_token_provider`)."""
    from openai import AzureOpenAI, OpenAI

    token = None if settings.api_key else entra_token_provider()
    v1 = AZURE_V1_URL.match(settings.endpoint)
    url = settings.endpoint.rstrip("/")
    deployment = _DEPLOYMENT_URL.match(url)
    if deployment:
        named = deployment.group("name")
        if named != settings.deployment:
            raise ConfigError(
                f"AZURE_ENDPOINT names deployment {named!r} but AZURE_DEPLOYMENT is "
                f"{settings.deployment!r}\n  fix: make them agree (or give the resource root)"
            )
        url = deployment.group("root")
    models = v1 or _MODELS_URL.match(url)
    if models:
        # The OpenAI client as it is: a key goes as `api-key` (and as the bearer the client sends any key
        # as), a token as the bearer alone; the v1 API takes no api-version.
        base = models.group("base")
        client: OpenAI = OpenAI(
            base_url=base,
            api_key=settings.api_key or token,
            timeout=timeout,
            max_retries=max_retries,
            default_headers={"api-key": settings.api_key} if settings.api_key else None,
            default_query=None if v1 else {"api-version": str(settings.api_version)},
        )
        form = "azure-v1" if v1 else "azure-models"
        return Endpoint(client, settings.deployment, shown(base), form, keyless=token is not None)
    client = AzureOpenAI(
        azure_endpoint=url,
        azure_deployment=settings.deployment,
        api_key=settings.api_key,
        azure_ad_token_provider=token,
        api_version=settings.api_version,
        timeout=timeout,
        max_retries=max_retries,
    )
    deployment_url = shown(f"{url}/openai/deployments/{settings.deployment}")
    return Endpoint(client, settings.deployment, deployment_url, "azure", keyless=token is not None)


def openai_endpoint(
    base_url: str | None, api_key: str | None, model: str, *, timeout: float, max_retries: int
) -> Endpoint:
    """Any OpenAI-compatible server: OpenAI itself, vLLM, Ollama, llama.cpp, `slm-swap serve`. A query in
    `base_url` is sent with every request; its user-info, as HTTP Basic authentication (httpx's reading of
    a URL's user-info, which then takes the place of the key's Bearer header)."""
    from openai import OpenAI

    base, _, query = (base_url or "").partition("#")[0].partition("?")
    if base_url is not None:
        _check_url(base_url)
    parameters = dict(parse_qsl(query, keep_blank_values=True))
    # Local servers (vLLM, llama.cpp, Ollama) accept any key; the SDK insists on one.
    client = OpenAI(
        base_url=base or None,
        api_key=api_key or "EMPTY",
        timeout=timeout,
        max_retries=max_retries,
        default_query=parameters or None,
    )
    url = str(client.base_url).rstrip("/") + (f"?{query}" if parameters else "")
    return Endpoint(client, model, shown(url), "openai")


def _check_url(url: str) -> None:
    """Refuses a base URL that is not an http(s) URL with a host and a valid port, naming it as
    `urls.shown` does: the client's own error would quote it, credentials and all."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a ValueError for a port that is not a number from 0 to 65535
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        usable = False
    if not usable:
        raise ConfigError(
            f"{settings.BASE_URL} {shown(url)!r} is not a usable http(s) URL\n"
            "  fix: give one such as http://127.0.0.1:8000/v1 (with a password: quote its special "
            "characters, e.g. %2F for /)"
        )


def endpoint_of(config: HostedConfig) -> Endpoint:
    """The endpoint a hosted configuration names: Azure's (from its four settings) or an OpenAI-compatible
    one."""
    if config.kind == "azure":
        if config.azure is None:
            raise ConfigError(f"{settings.MODEL_KIND} azure needs its settings (AZURE_ENDPOINT, ...)")
        return azure_endpoint(config.azure, timeout=config.timeout, max_retries=config.max_retries)
    if not config.model:
        raise ConfigError(f"{settings.MODEL_KIND} openai needs {settings.MODEL}: the model name to request")
    return openai_endpoint(
        config.base_url,
        config.api_key,
        config.model,
        timeout=config.timeout,
        max_retries=config.max_retries,
    )


def _fatal(error: Exception, endpoint: Endpoint) -> ConfigError | None:
    """The errors that would fail every request, turned into a message that says what to check."""
    import openai

    if isinstance(error, ConfigError):  # raised on the way out (a keyless endpoint's token)
        return error
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError) and endpoint.keyless:
        return ConfigError(
            f"{endpoint.url} refused the Microsoft Entra ID token (HTTP {error.status_code})\n"
            "  fix: give the signed-in identity the Cognitive Services OpenAI User role on the resource, "
            "or export AZURE_API_KEY"
        )
    if isinstance(error, openai.AuthenticationError | openai.PermissionDeniedError):
        return ConfigError(
            f"{endpoint.url} refused the API key (HTTP {error.status_code})\n"
            f"  fix: check AZURE_API_KEY (azure) or OPENAI_API_KEY / {settings.API_KEY} (openai)"
        )
    if isinstance(error, openai.NotFoundError):
        code = getattr(error, "code", None) or ""
        if code == "DeploymentNotFound" or "DeploymentNotFound" in str(error):
            return ConfigError(
                f"Azure says deployment {endpoint.model!r} does not exist at {endpoint.url} "
                "(DeploymentNotFound)\n  fix: check that AZURE_DEPLOYMENT is the deployment's name (not the "
                "model's) on this resource and that AZURE_ENDPOINT is that resource; for the preview "
                ".../models/chat/completions form, check that path exists on your resource"
            )
        return ConfigError(
            f"{endpoint.url} has no model {endpoint.model!r} (HTTP 404)\n"
            f"  fix: check {settings.MODEL} (or AZURE_DEPLOYMENT) and {settings.BASE_URL}"
        )
    return None


class _Malformed(ValueError):
    """A response that is not a chat completion as the API defines it: that example's error."""


class _Reader:
    """Reads one response's fields, each checked where it enters (see the module's docstring), and counts
    the lone surrogates it replaces."""

    def __init__(self) -> None:
        self.replaced_surrogates = 0

    def text(self, value: object, what: str) -> str:
        """`value` as text ("" for none), each lone UTF-16 surrogate replaced by U+FFFD."""
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _Malformed(f"{what} is not text")
        text, replaced = _SURROGATE.subn("\ufffd", value)
        self.replaced_surrogates += replaced
        return text

    def choice(self, response: object) -> Any:
        """The response's first choice, which holds a message."""
        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices or getattr(choices[0], "message", None) is None:
            raise _Malformed("the response holds no choice with a message")
        return choices[0]

    def calls(self, message: object) -> list[protocol.RawCall]:
        """The message's tool calls (those with a function), their names and arguments read as text."""
        calls = getattr(message, "tool_calls", None) or []
        if not isinstance(calls, list):
            raise _Malformed("the message's tool_calls are not a list")
        functions = [getattr(call, "function", None) for call in calls]
        return [
            protocol.RawCall(
                self.text(getattr(f, "name", None), "a tool call's name"),
                self.text(getattr(f, "arguments", None), "a tool call's arguments"),
            )
            for f in functions
            if f is not None
        ]

    @staticmethod
    def usage(response: object) -> Usage:
        """The response's token counts, or unknown usage when either is missing or unusable."""
        usage = getattr(response, "usage", None)
        prompt = _count(getattr(usage, "prompt_tokens", None))
        completion = _count(getattr(usage, "completion_tokens", None))
        if prompt is None or completion is None:
            return Usage(known=False)
        return Usage(prompt, completion)


def _count(value: object) -> int | None:
    """A token count as the API defines it, a whole number from 0 to MAX_TOKENS (12.0 is 12), or None."""
    if isinstance(value, float) and value.is_integer():  # False for NaN and infinities
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


def _describe_error(error: Exception) -> str:
    import openai

    if isinstance(error, _Malformed):
        return f"malformed response: {error}"
    if isinstance(error, openai.APIStatusError):
        code = getattr(error, "code", None)
        label = f"HTTP {error.status_code}" + (f" {code}" if code else "")
        return f"{label}: {str(error)[:300]}"
    if isinstance(error, openai.APITimeoutError):
        return "timeout: no answer in time (after retries)"
    if isinstance(error, openai.APIConnectionError):
        return f"connection error: {str(error)[:300]}"
    return f"{type(error).__name__}: {str(error)[:300]}"


class HostedBackend(Backend):
    """One OpenAI-compatible endpoint, asked `concurrency` requests at a time."""

    def __init__(self, config: HostedConfig):
        """`config.served` says what answers at the endpoint when that is known (the local stand-in: its
        checkpoint and decoding); it then stands for the endpoint in the run's identity, so a stand-in
        moved to another port is the same model."""
        self.config = config
        self.endpoint = endpoint_of(config)
        self.served = config.served
        self.kind = config.kind
        self.model = self.endpoint.model
        self.concurrency = config.concurrency
        self.batch_size = config.concurrency
        self.max_tokens = config.max_new_tokens

    def estimate(self, examples: Sequence[Example], pricing: Pricing) -> Estimate:
        """The cost of asking `examples`: the requests as they will be sent (`request`), each answer at
        most `max_tokens` long (`cost.py`)."""
        requests = (self.request(Request.of(e, self.config.protocol)) for e in examples)
        return estimate(requests, self.max_tokens, pricing)

    def identity(self) -> dict[str, object]:
        identity: dict[str, object] = {
            "endpoint": self.served if self.served is not None else self.endpoint.url,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "seed": settings.DECODING_SEED,
        }
        if self.config.protocol != PROMPT:  # absent under the prompt protocol: earlier runs still match
            identity["protocol"] = self.config.protocol
        return identity

    def describe(self) -> dict[str, object]:
        return {
            "model_kind": self.kind,
            "model": self.model,
            "endpoint": self.endpoint.url,
            "endpoint_form": self.endpoint.form,
            "concurrency": self.concurrency,
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "seed": settings.DECODING_SEED,
            "protocol": self.config.protocol,
        }

    def body(self, request: Request) -> dict[str, Any]:
        """The whole chat-completions request body, the same whichever route sends it (one request at a
        time, or the Batch API's lines: `batch.py`)."""
        return {
            "model": self.model,
            "temperature": 0,
            "seed": settings.DECODING_SEED,
            "max_tokens": self.max_tokens,
            **self.request(request),
        }

    def request(self, request: Request) -> dict[str, Any]:
        """The API request's messages and, under the native protocol, its tools or response format."""
        asked: dict[str, Any] = {"messages": list(request.messages)}
        if request.native_schema:
            asked["response_format"] = protocol.response_format(request.tools)
        elif request.native_calls and request.tools:
            asked |= {"tools": protocol.openai_tools(request.tools), "tool_choice": "auto"}
        return asked

    def answer(self, request: Request, message: object, read: _Reader) -> str:
        """The answer's text in the track's format (`protocol.answer_text`)."""
        content = read.text(getattr(message, "content", None), "the message's content")
        if request.native_schema:
            return protocol.without_nulls(content, request.tools)
        if not request.native_calls:
            return content
        return protocol.answer_text("toolcall", read.calls(message), content)

    def completion(self, request: Request, response: object, latency_s: float) -> Completion:
        """A chat completion (`response`, as the SDK makes it) read into the answer to `request`, whichever
        route brought it; one that is not a chat completion raises `_Malformed`."""
        read = _Reader()
        choice = read.choice(response)
        text = self.answer(request, choice.message, read)
        error = (
            "content_filter: the answer was filtered"
            if getattr(choice, "finish_reason", None) == "content_filter"
            else None
        )
        return Completion(
            text=text,
            latency_s=latency_s,
            usage=read.usage(response),
            error=error,
            replaced_surrogates=read.replaced_surrogates,
        )

    def complete_one(self, request: Request) -> Completion:
        """The answer to one request; errors other than fatal ones come back as the completion's error."""
        start = time.perf_counter()
        try:
            response = self.endpoint.client.chat.completions.create(**self.body(request))
            return self.completion(request, response, time.perf_counter() - start)
        except Exception as e:
            fatal = _fatal(e, self.endpoint)
            if fatal is not None:
                raise fatal from e
            # An error's text may quote the endpoint's body: its surrogates are replaced too.
            read = _Reader()
            reason = read.text(_describe_error(e), "the error")
            return Completion(
                text="",
                latency_s=time.perf_counter() - start,
                error=reason,
                replaced_surrogates=read.replaced_surrogates,
            )

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        done = {id(request): completion for request, completion in self.stream(requests)}
        return [done[id(r)] for r in requests]

    def stream(self, requests: Sequence[Request]) -> Iterator[tuple[Request, Completion]]:
        """Keeps `concurrency` requests in flight and yields each answer as it arrives."""
        pending: dict[Future[Completion], Request] = {}
        queue = list(requests)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="hosted") as pool:
            try:
                while queue or pending:
                    while queue and len(pending) < self.concurrency:
                        request = queue.pop(0)
                        pending[pool.submit(self.complete_one, request)] = request
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        request = pending.pop(future)
                        yield request, future.result()
            finally:
                for future in pending:
                    future.cancel()

    def close(self) -> None:
        self.endpoint.client.close()
