"""Builds a backend from the user's choice of model kind, importing heavy dependencies only then."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from slm_swap import settings
from slm_swap.backends.base import Backend
from slm_swap.errors import ConfigError
from slm_swap.settings import AzureSettings

MODEL_KINDS = settings.MODEL_KINDS
HOSTED_KINDS = ("azure", "openai")


@dataclass(frozen=True)
class ModelOptions:
    """Everything any backend needs; each kind reads its own fields. The fields declared with a setting
    are the command line's model options (`cli.options.model_options`)."""

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


def make_backend(options: ModelOptions) -> Backend:
    """The backend for `options.kind`. A missing optional dependency or setting is a ConfigError that
    says what to install or set."""
    if options.protocol not in ("prompt", "native"):
        raise ConfigError(
            f"{settings.PROTOCOL} {options.protocol}: only `run` asks each model both ways\n"
            f"  fix: choose {settings.PROTOCOL} prompt or native here, or use "
            f"`slm-swap run {settings.PROTOCOL} both`"
        )
    if options.constrained and options.kind != "slm":
        raise ConfigError(
            f"{settings.CONSTRAINED} applies to the local model ({settings.MODEL_KIND} slm), not "
            f"{options.kind}\n"
            f"  fix: drop {settings.CONSTRAINED}; to evaluate a constrained SLM behind an endpoint, "
            f"start it with `slm-swap serve {settings.CONSTRAINED}`"
        )
    if options.kind == "replay":
        from slm_swap.backends.replay import ReplayBackend

        if options.predictions is None:
            raise ConfigError(f"{settings.MODEL_KIND} replay needs {settings.PREDICTIONS} FILE")
        return ReplayBackend(options.predictions)
    if options.kind == "slm":
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            raise ConfigError(
                f"{settings.MODEL_KIND} slm needs the local extra ({e.name} is missing)\n"
                "  fix: pip install 'slm-swap[local]' (CPU: pip install torch==2.13.0 first)"
            ) from e
        from slm_swap.backends.local import LocalBackend
        from slm_swap.models import resolve_model_path

        if options.adapter is not None and not options.adapter.is_dir():
            raise ConfigError(f"{settings.ADAPTER} {options.adapter}: no such folder")
        return LocalBackend(
            resolve_model_path(options.model_path),
            adapter=options.adapter,
            batch_size=options.batch_size,
            max_new_tokens=options.max_new_tokens,
            constrained=options.constrained,
            load_in=options.load_in,
            protocol=options.protocol,
        )
    if options.kind in HOSTED_KINDS:
        from slm_swap.backends.hosted import HostedBackend, azure_endpoint, openai_endpoint

        if options.kind == "azure":
            # Without settings, from_env of nothing raises the message that lists the four variables.
            azure = options.azure or AzureSettings.from_env({})
            endpoint = azure_endpoint(azure, timeout=options.timeout, max_retries=options.max_retries)
        else:
            if not options.model:
                raise ConfigError(
                    f"{settings.MODEL_KIND} openai needs {settings.MODEL} (or {settings.MODEL.envvar}): "
                    "the model name to request"
                )
            endpoint = openai_endpoint(
                options.base_url,
                options.api_key,
                options.model,
                timeout=options.timeout,
                max_retries=options.max_retries,
            )
        return HostedBackend(
            endpoint,
            kind=options.kind,
            concurrency=options.concurrency,
            max_tokens=options.max_new_tokens,
            served=options.served,
            protocol=options.protocol,
        )
    raise ConfigError(
        f"unknown {settings.MODEL_KIND} {options.kind!r}; choose one of {', '.join(MODEL_KINDS)}"
    )
