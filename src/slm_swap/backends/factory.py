"""Builds a backend from the user's choice of model kind, importing heavy dependencies only then."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from slm_swap import settings
from slm_swap.backends.base import Backend
from slm_swap.errors import ConfigError

MODEL_KINDS = ("slm", "azure", "openai", "replay")
HOSTED_KINDS = ("azure", "openai")


@dataclass(frozen=True)
class ModelOptions:
    """Everything any backend needs; each kind reads its own fields."""

    kind: str
    model_path: str | None = None
    adapter: Path | None = None
    batch_size: int = 8
    max_new_tokens: int = settings.MAX_NEW_TOKENS.default
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    model: str | None = None
    concurrency: int = 8
    timeout: float = 60.0
    max_retries: int = 5
    predictions: Path | None = None
    constrained: bool = False
    load_in: str = "auto"  # slm: settings.LOADS
    served: dict[str, object] | None = None  # azure/openai: what answers there, when known (the stand-in)


def make_backend(options: ModelOptions, env: Mapping[str, str] | None = None) -> Backend:
    """The backend for `options.kind`. A missing optional dependency or setting is a ConfigError that
    says what to install or set."""
    env = os.environ if env is None else env
    if options.constrained and options.kind != "slm":
        raise ConfigError(
            f"--constrained applies to the local model (--model-kind slm), not {options.kind}\n"
            "  fix: drop --constrained; to evaluate a constrained SLM behind an endpoint, "
            "start it with `slm-swap serve --constrained`"
        )
    if options.kind == "replay":
        from slm_swap.backends.replay import ReplayBackend

        if options.predictions is None:
            raise ConfigError("--model-kind replay needs --predictions FILE")
        return ReplayBackend(options.predictions)
    if options.kind == "slm":
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            raise ConfigError(
                f"--model-kind slm needs the local extra ({e.name} is missing)\n"
                "  fix: pip install 'slm-swap[local]' (CPU: pip install torch==2.13.0 first)"
            ) from e
        from slm_swap.backends.local import LocalBackend
        from slm_swap.models import resolve_model_path

        if options.adapter is not None and not options.adapter.is_dir():
            raise ConfigError(f"--adapter {options.adapter}: no such folder")
        return LocalBackend(
            resolve_model_path(options.model_path),
            adapter=options.adapter,
            batch_size=options.batch_size,
            max_new_tokens=options.max_new_tokens,
            constrained=options.constrained,
            load_in=options.load_in,
        )
    if options.kind in HOSTED_KINDS:
        from slm_swap.backends.hosted import AzureSettings, HostedBackend, azure_endpoint, openai_endpoint

        if options.kind == "azure":
            endpoint = azure_endpoint(
                AzureSettings.from_env(env), timeout=options.timeout, max_retries=options.max_retries
            )
        else:
            model = options.model or env.get("OPENAI_MODEL")
            if not model:
                raise ConfigError(
                    "--model-kind openai needs --model (or OPENAI_MODEL): the model name to request"
                )
            endpoint = openai_endpoint(
                options.base_url or env.get("OPENAI_BASE_URL"),
                options.api_key or env.get("OPENAI_API_KEY"),
                model,
                timeout=options.timeout,
                max_retries=options.max_retries,
            )
        return HostedBackend(
            endpoint,
            kind=options.kind,
            concurrency=options.concurrency,
            max_tokens=options.max_new_tokens,
            served=options.served,
        )
    raise ConfigError(f"unknown --model-kind {options.kind!r}; choose one of {', '.join(MODEL_KINDS)}")
