"""The tracer a command runs with, chosen from the LANGFUSE_* environment it is given (`config.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from slm_swap.tracing.base import Tracer
from slm_swap.tracing.config import ENV_DISABLED, REQUIRED, LangfuseConfig
from slm_swap.tracing.langfuse import LangfuseTracer
from slm_swap.tracing.null import NullTracer
from slm_swap.urls import shown


def make_tracer(env: Mapping[str, str]) -> Tracer:
    """For commands that run a model or decide: a Langfuse tracer, or the null tracer when
    LANGFUSE_DISABLED=1. Raises `ConfigError` as `LangfuseConfig.tracing()` does."""
    settings = LangfuseConfig.from_env(env).tracing()
    return NullTracer() if settings is None else LangfuseTracer(settings)


@dataclass(frozen=True)
class OptionalTracing:
    tracer: Tracer | None
    says: str  # one line for the console: traced, or why not


def tracer_if_configured(env: Mapping[str, str]) -> OptionalTracing:
    """For commands that trace when configured and say so when not (`serve`): a Langfuse tracer when
    the LANGFUSE_* variables are set, none when none of them is set or LANGFUSE_DISABLED=1. A partial or
    invalid configuration is still a `ConfigError`, as in `LangfuseConfig.tracing()`."""
    config = LangfuseConfig.from_env(env)
    if config.off:
        return OptionalTracing(None, f"tracing is off ({ENV_DISABLED}=1)")
    if len(config.missing) == len(REQUIRED):
        return OptionalTracing(None, f"tracing is off ({', '.join(REQUIRED)} are not set)")
    settings = config.tracing()
    assert settings is not None  # not off, so tracing() either returns settings or raises
    return OptionalTracing(
        LangfuseTracer(settings), f"tracing requests to Langfuse at {shown(settings.host)}"
    )
