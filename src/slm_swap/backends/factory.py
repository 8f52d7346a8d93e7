"""Builds a backend from its kind's configuration (`config.py`), after checking what that kind needs: a
missing optional dependency or setting is a ConfigError that says what to install or set. Heavy
dependencies are imported only then."""

from __future__ import annotations

from collections.abc import Callable

from slm_swap import settings
from slm_swap.backends.base import Backend
from slm_swap.backends.config import HostedConfig, LocalConfig, ModelConfig, ReplayConfig
from slm_swap.errors import ConfigError
from slm_swap.settings import AzureSettings


def check(config: ModelConfig) -> ModelConfig:
    """`config` when its kind has what it needs (a hosted `azure` configuration gets its settings read from
    no environment, so the message lists every variable it needs), else a ConfigError naming the fix."""
    if isinstance(config, ReplayConfig):
        return config  # `ReplayBackend` reads its file, and says what is wrong with it
    if isinstance(config, LocalConfig):
        try:
            import torch  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            raise ConfigError(
                f"{settings.MODEL_KIND} slm needs the local extra ({e.name} is missing)\n"
                "  fix: pip install 'slm-swap[local]' (CPU: pip install torch==2.13.0 first)"
            ) from e
        if config.adapter is not None and not config.adapter.is_dir():
            raise ConfigError(f"{settings.ADAPTER} {config.adapter}: no such folder")
        return config
    if config.kind == "azure" and config.azure is None:
        AzureSettings.from_env({})  # raises the message that lists the variables it needs
    if config.kind == "openai" and not config.model:
        raise ConfigError(
            f"{settings.MODEL_KIND} openai needs {settings.MODEL} (or {settings.MODEL.envvar}): "
            "the model name to request"
        )
    return config


def make_backend(config: ModelConfig, say: Callable[[str], None] = lambda line: None) -> Backend:
    """The backend for a kind's configuration (checked by `check`); heavy dependencies are imported only
    now. `say` hears what a backend that works in the background has to tell (the Batch API route's
    progress)."""
    check(config)
    if isinstance(config, ReplayConfig):
        from slm_swap.backends.replay import ReplayBackend

        return ReplayBackend(config)
    if isinstance(config, LocalConfig):
        from slm_swap.backends.local import LocalBackend

        return LocalBackend(config)
    if config.hosted_batch:
        from slm_swap.backends.batch import BatchBackend

        return BatchBackend(config, say)
    from slm_swap.backends.hosted import HostedBackend

    return HostedBackend(config)


__all__ = ["HostedConfig", "LocalConfig", "ModelConfig", "ReplayConfig", "check", "make_backend"]
