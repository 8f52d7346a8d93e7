"""Builds a backend from the command line's model options, through the chosen kind's configuration;
heavy dependencies are imported only then."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from slm_swap import settings
from slm_swap.backends.base import Backend
from slm_swap.backends.config import HostedConfig, LocalConfig, ModelConfig, ReplayConfig
from slm_swap.errors import ConfigError
from slm_swap.protocol import PROTOCOLS
from slm_swap.settings import AzureSettings

MODEL_KINDS = settings.MODEL_KINDS
HOSTED_KINDS = ("azure", "openai")


@dataclass(frozen=True)
class ModelOptions:
    """The command line's model options (`cli.options.model_options`): one set for every kind, of which
    each kind reads its own; `config()` gives the chosen kind's configuration (`config.py`)."""

    kind: str
    model_path: str | None = settings.field(settings.MODEL_PATH)
    adapter: Path | None = settings.field(settings.ADAPTER)
    batch_size: int = settings.field(settings.BATCH_SIZE)
    max_new_tokens: int = settings.field(settings.MAX_NEW_TOKENS)
    constrained: bool = settings.field(settings.CONSTRAINED)
    protocol: str = settings.field(settings.PROTOCOL)
    load_in: str = settings.field(settings.LOAD_IN)
    base_url: str | None = settings.field(settings.BASE_URL)
    api_key: str | None = field(default=None, repr=False, metadata={"setting": settings.API_KEY})
    model: str | None = settings.field(settings.MODEL)
    concurrency: int = settings.field(settings.CONCURRENCY)
    timeout: float = settings.field(settings.TIMEOUT)
    max_retries: int = settings.field(settings.MAX_RETRIES)
    predictions: Path | None = None  # replay
    azure: AzureSettings | None = None  # azure: read from the environment at the command line's edge
    served: dict[str, object] | None = None  # azure/openai: what answers there, when known (the stand-in)
    # azure/openai through the Batch API: options of the commands where latency does not matter (eval,
    # label, run: `cli.options.model_options(batch=True)`).
    hosted_batch: bool = settings.field(settings.HOSTED_BATCH)
    batch_poll: float = settings.field(settings.BATCH_POLL)

    def config(self) -> ModelConfig:
        """The chosen kind's configuration. Options that do not apply to it, a missing optional
        dependency or setting, are a ConfigError that says what to drop, install or set."""
        if self.protocol not in PROTOCOLS:
            raise ConfigError(
                f"{settings.PROTOCOL} {self.protocol}: only `run` asks each model both ways\n"
                f"  fix: choose {settings.PROTOCOL} prompt or native here, or use "
                f"`slm-swap run {settings.PROTOCOL} both`"
            )
        if self.constrained and self.kind != "slm":
            raise ConfigError(
                f"{settings.CONSTRAINED} applies to the local model ({settings.MODEL_KIND} slm), not "
                f"{self.kind}\n"
                f"  fix: drop {settings.CONSTRAINED}; to evaluate a constrained SLM behind an endpoint, "
                f"start it with `slm-swap serve {settings.CONSTRAINED}`"
            )
        if self.hosted_batch and self.kind not in HOSTED_KINDS:
            raise ConfigError(
                f"{settings.HOSTED_BATCH} applies to a hosted model ({settings.MODEL_KIND} azure or "
                f"openai), not {self.kind}\n  fix: drop {settings.HOSTED_BATCH}"
            )
        if self.kind == "replay":
            if self.predictions is None:
                raise ConfigError(f"{settings.MODEL_KIND} replay needs {settings.PREDICTIONS} FILE")
            return ReplayConfig(self.predictions)
        if self.kind == "slm":
            try:
                import torch  # noqa: F401
                import transformers  # noqa: F401
            except ImportError as e:
                raise ConfigError(
                    f"{settings.MODEL_KIND} slm needs the local extra ({e.name} is missing)\n"
                    "  fix: pip install 'slm-swap[local]' (CPU: pip install torch==2.13.0 first)"
                ) from e
            from slm_swap.local.models import resolve_model_path

            if self.adapter is not None and not self.adapter.is_dir():
                raise ConfigError(f"{settings.ADAPTER} {self.adapter}: no such folder")
            return LocalConfig(
                resolve_model_path(self.model_path),
                adapter=self.adapter,
                batch_size=self.batch_size,
                max_new_tokens=self.max_new_tokens,
                constrained=self.constrained,
                load_in=self.load_in,
                protocol=self.protocol,
            )
        if self.kind in HOSTED_KINDS:
            if self.kind == "azure":
                # Without settings, from_env of nothing raises the message that lists the variables it needs.
                azure = self.azure or AzureSettings.from_env({})
            elif not self.model:
                raise ConfigError(
                    f"{settings.MODEL_KIND} openai needs {settings.MODEL} (or {settings.MODEL.envvar}): "
                    "the model name to request"
                )
            return HostedConfig(
                self.kind,
                model=self.model,
                base_url=self.base_url,
                api_key=self.api_key,
                azure=azure if self.kind == "azure" else None,
                concurrency=self.concurrency,
                timeout=self.timeout,
                max_retries=self.max_retries,
                max_tokens=self.max_new_tokens,
                protocol=self.protocol,
                served=self.served,
                batch=self.hosted_batch,
                batch_poll=self.batch_poll,
            )
        raise ConfigError(
            f"unknown {settings.MODEL_KIND} {self.kind!r}; choose one of {', '.join(MODEL_KINDS)}"
        )


def make_backend(
    options: ModelOptions | ModelConfig, say: Callable[[str], None] = lambda line: None
) -> Backend:
    """The backend for the command line's `options` (checked by `ModelOptions.config`), or for a kind's
    configuration; heavy dependencies are imported only now. `say` hears what a backend that works in
    the background has to tell (the Batch API route's progress)."""
    config = options.config() if isinstance(options, ModelOptions) else options
    if isinstance(config, ReplayConfig):
        from slm_swap.backends.replay import ReplayBackend

        return ReplayBackend(config)
    if isinstance(config, LocalConfig):
        from slm_swap.backends.local import LocalBackend

        return LocalBackend(config)
    if config.batch:
        from slm_swap.backends.batch import BatchBackend

        return BatchBackend(config, say)
    from slm_swap.backends.hosted import HostedBackend

    return HostedBackend(config)
