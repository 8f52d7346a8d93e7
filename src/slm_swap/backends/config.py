"""One configuration type per kind of model: what a backend is built from, and nothing it does not read.

`factory.ModelOptions` is the command line's model options (one set of flags for every kind);
`ModelOptions.config()` checks them for the kind chosen and gives that kind's configuration. Tests and
benchmarks build a configuration directly. Nothing here imports a heavy dependency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slm_swap import settings
from slm_swap.protocol import PROMPT
from slm_swap.settings import AzureSettings


@dataclass(frozen=True)
class LocalConfig:
    """The local SLM (`LocalBackend`): a checkpoint, at most one adapter, and how it decodes."""

    model_path: Path
    adapter: Path | None = None
    batch_size: int = 8
    max_new_tokens: int = settings.MAX_NEW_TOKENS.default
    constrained: bool = False
    load_in: str = "auto"
    protocol: str = PROMPT

    kind = "slm"


@dataclass(frozen=True)
class HostedConfig:
    """A hosted LLM (`HostedBackend`): Azure OpenAI (`azure`, its four settings) or any OpenAI-compatible
    endpoint (`base_url`, `api_key`, `model`), and how it is asked."""

    kind: str  # azure | openai
    model: str | None = None  # openai: the model to request (azure: the deployment, from `azure`)
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    azure: AzureSettings | None = None
    concurrency: int = settings.CONCURRENCY.default
    timeout: float = settings.TIMEOUT.default
    max_retries: int = settings.MAX_RETRIES.default
    max_tokens: int = settings.API_MAX_TOKENS
    protocol: str = PROMPT
    served: dict[str, object] | None = None  # what answers there, when known (the local stand-in)
    batch: bool = False  # through the provider's Batch API (`batch.py`) instead of request by request
    batch_poll: float = settings.BATCH_POLL.default  # seconds between checks of a batch's status


@dataclass(frozen=True)
class ReplayConfig:
    """Outputs produced elsewhere (`ReplayBackend`): a predictions file or a run file."""

    predictions: Path

    kind = "replay"


ModelConfig = LocalConfig | HostedConfig | ReplayConfig
