"""The model choice: one configuration type per kind of model, each field declared once from its setting
(`settings.field`), so its flag, default and help are the setting's.

The command line builds the chosen kind's configuration directly from its options
(`cli.options.model_config`), refusing an option given for another kind; tests and benchmarks build one
directly. `make_backend` (factory.py) checks what a kind needs before it loads anything. Nothing here
imports a heavy dependency.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from slm_swap import settings
from slm_swap.protocol import PROMPT, Protocol
from slm_swap.settings import AzureSettings, Setting

HostedKind = Literal["azure", "openai"]
HOSTED_KINDS: tuple[HostedKind, ...] = ("azure", "openai")


@dataclass(frozen=True)
class LocalConfig:
    """The local SLM (`LocalBackend`): a checkpoint (None: the embedded model), at most one adapter, and
    how it decodes."""

    model_path: str | os.PathLike[str] | None = settings.field(settings.MODEL_PATH)
    adapter: Path | None = settings.field(settings.ADAPTER)
    batch_size: int = settings.field(settings.BATCH_SIZE)
    max_new_tokens: int = settings.field(settings.MAX_NEW_TOKENS)
    constrained: bool = settings.field(settings.CONSTRAINED)
    load_in: str = settings.field(settings.LOAD_IN)
    protocol: Protocol = settings.field(settings.PROTOCOL)

    kind: ClassVar[str] = "slm"


@dataclass(frozen=True)
class HostedConfig:
    """A hosted LLM (`HostedBackend`): Azure OpenAI (`azure`, its four variables) or any OpenAI-compatible
    endpoint (`base_url`, `api_key`, `model`), and how it is asked."""

    kind: HostedKind
    model: str | None = settings.field(settings.MODEL)  # openai: the model (azure: its deployment)
    base_url: str | None = settings.field(settings.BASE_URL)
    api_key: str | None = settings.field(settings.API_KEY)
    concurrency: int = settings.field(settings.CONCURRENCY)
    timeout: float = settings.field(settings.TIMEOUT)
    max_retries: int = settings.field(settings.MAX_RETRIES)
    max_new_tokens: int = settings.field(settings.MAX_NEW_TOKENS)  # sent as the request's max_tokens
    protocol: Protocol = settings.field(settings.PROTOCOL)
    hosted_batch: bool = settings.field(settings.HOSTED_BATCH)  # the provider's Batch API (`batch.py`)
    batch_poll: float = settings.field(settings.BATCH_POLL)
    azure: AzureSettings | None = None  # azure: read from the environment at the command line's edge
    served: dict[str, object] | None = None  # what answers there, when known (the local stand-in)


@dataclass(frozen=True)
class ReplayConfig:
    """Outputs produced elsewhere (`ReplayBackend`): a predictions file or a run file."""

    predictions: Path | None = settings.field(settings.PREDICTIONS)

    kind: ClassVar[str] = "replay"
    protocol: ClassVar[Protocol] = PROMPT  # stored outputs are read as the track's text answers


ModelConfig = LocalConfig | HostedConfig | ReplayConfig
CONFIGS: dict[str, type[LocalConfig] | type[HostedConfig] | type[ReplayConfig]] = {
    "slm": LocalConfig,
    "azure": HostedConfig,
    "openai": HostedConfig,
    "replay": ReplayConfig,
}
BATCH_SETTINGS = (settings.HOSTED_BATCH, settings.BATCH_POLL)  # where latency does not matter only


def declared(config: type) -> dict[str, Setting]:
    """A configuration's options: each declared field's name and the setting it was declared with."""
    return {f.name: f.metadata["setting"] for f in dataclasses.fields(config) if "setting" in f.metadata}


def kinds_taking(setting: Setting) -> list[str]:
    """The model kinds whose configuration has `setting` (what a refusal says it applies to)."""
    return [kind for kind, config in CONFIGS.items() if setting in declared(config).values()]


def config_for(kind: str, values: dict[str, Any], **given: Any) -> ModelConfig:
    """The `kind`'s configuration from option values (by field name; those of other kinds ignored)."""
    config = CONFIGS[kind]
    own = {name: values[name] for name in declared(config) if name in values}
    extra: dict[str, Any] = {"kind": kind} if config is HostedConfig else {}
    built: ModelConfig = config(**own, **extra, **given)
    return built
