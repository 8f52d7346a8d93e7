"""Click options made from the settings' one declaration (`slm_swap.settings`), one at a time or from a
whole configuration dataclass, and the configurations built back from what a command was given. This is
the edge: the environment is read here (by click, for a setting's variable; `azure_settings` for Azure)
and nowhere in the library."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

from slm_swap import settings
from slm_swap.backends.factory import ModelOptions
from slm_swap.settings import AzureSettings, Setting
from slm_swap.workspace import Workspace

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")


def click_type(setting: Setting) -> Any:
    """The click type that checks a setting's values: its choices, its range, a path."""
    kind = setting.value_type
    if setting.choices:
        return click.Choice(setting.choices)
    if kind is Path:
        return click.Path(path_type=Path)
    if kind is int and (setting.min is not None or setting.max is not None):
        return click.IntRange(
            None if setting.min is None else int(setting.min),
            None if setting.max is None else int(setting.max),
        )
    if kind is float:
        return FiniteFloat(setting.min, setting.max)
    return kind


class FiniteFloat(click.FloatRange):
    """A float within an optional range that is a number: `nan` passes every comparison of a range, and
    `inf` or `1e400` would reach the arithmetic (a $nan price, an interval that cannot be compared)."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)  # then the range


def option(setting: Setting, *decls: str, **overrides: Any) -> Callable[[F], F]:
    """A click option made from a setting: its flag, variable, default, type and help."""
    params: dict[str, Any] = {
        "default": setting.default,
        "envvar": setting.envvar,
        "show_envvar": setting.envvar is not None,
        "show_default": setting.default is not None and not setting.secret,
        "help": setting.help,
    }
    if isinstance(setting.default, tuple):
        params["multiple"] = True
        params["type"] = click.Choice(setting.choices) if setting.choices else str
    elif setting.value_type is bool:
        params["is_flag"] = True
        params["show_default"] = False
    else:
        params["type"] = click_type(setting)
    if setting.metavar:
        params["metavar"] = setting.metavar
    params.update(overrides)
    return click.option(*(decls or (setting.flag,)), **params)


def _declared(config: type, names: Iterable[str] | None) -> list[dataclasses.Field[Any]]:
    fields = [f for f in dataclasses.fields(config) if "setting" in f.metadata]
    if names is None:
        return fields
    wanted = set(names)
    return [f for f in fields if f.name in wanted]


def options_of(config: type, names: Iterable[str] | None = None) -> Callable[[F], F]:
    """The options of a configuration's declared fields (or of `names` among them), each given to the
    command under its setting's name; `config_from` builds the configuration back."""

    def decorate(func: F) -> F:
        for f in reversed(_declared(config, names)):
            setting: Setting = f.metadata["setting"]
            func = option(setting)(func)
        return func

    return decorate


def config_from(config: type[C], kw: dict[str, Any], **given: Any) -> C:
    """The configuration made from the options `options_of(config)` added to a command (found in `kw`)."""
    declared = ((f.name, f.metadata["setting"].name) for f in _declared(config, None))
    values = {field: kw[name] for field, name in declared if name in kw}
    return config(**values, **given)


def workspace_options(func: F) -> F:
    """--dataset-dir, --ft-dir and --eval-dir (with their variables), given to the command as one
    `workspace`: every command finds and writes the workspace's files the same way."""

    @functools.wraps(func)
    def with_workspace(*args: Any, dataset_dir: Path, ft_dir: Path, eval_dir: Path, **kwargs: Any) -> Any:
        return func(*args, workspace=Workspace(dataset_dir, ft_dir, eval_dir), **kwargs)

    decorated: Any = with_workspace
    for setting in (settings.EVAL_DIR, settings.FT_DIR, settings.DATASET_DIR):
        decorated = option(setting)(decorated)
    return decorated


track_option = option(settings.TRACK, required=True)
split_option = option(settings.SPLIT)


BATCH_FIELDS = ("hosted_batch", "batch_poll")  # ModelOptions' Batch API route


def model_options(
    *, kinds: tuple[str, ...] = settings.MODEL_KINDS, with_kind: bool = True, batch: bool = False
) -> Callable[[F], F]:
    """The options that choose and configure a model (`ModelOptions`' declared fields), for every command
    that asks one; `--model-kind` among `kinds` unless the command chooses the kinds itself. The Batch
    API route's options only with `batch`: for the commands where latency does not matter."""
    names = [f.name for f in dataclasses.fields(ModelOptions) if batch or f.name not in BATCH_FIELDS]

    def decorate(func: F) -> F:
        func = options_of(ModelOptions, names)(func)
        if with_kind:
            func = option(settings.MODEL_KIND, type=click.Choice(kinds), required=True)(func)
        return func

    return decorate


def azure_settings(kind: str) -> AzureSettings | None:
    """Azure's settings, read from the environment for a command that asks Azure (else None)."""
    return AzureSettings.from_env(os.environ) if kind == "azure" else None


def model_options_of(kind: str, kw: dict[str, Any], **given: Any) -> ModelOptions:
    """The model configuration from a command's model options (found in `kw`)."""
    return config_from(ModelOptions, kw, kind=kind, azure=azure_settings(kind), **given)
