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
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from slm_swap import settings
from slm_swap.backends.config import (
    BATCH_SETTINGS,
    CONFIGS,
    HOSTED_KINDS,
    ModelConfig,
    config_for,
    declared,
    kinds_taking,
)
from slm_swap.errors import ConfigError
from slm_swap.settings import AzureSettings, Setting
from slm_swap.workspace import Workspace

if TYPE_CHECKING:
    from slm_swap.run_config import RunConfig

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")


def click_type(setting: Setting) -> Any:
    """The click type that checks a setting's values: its choices, its range, a path."""
    kind = setting.value_type
    if setting.choices:
        return click.Choice(setting.choices)
    if issubclass(kind, Path):  # a Path default's type is PosixPath
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

    def _describe_range(self) -> str:
        return "any finite number" if self.min is None and self.max is None else super()._describe_range()

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


def model_options(
    *, kinds: tuple[str, ...] = settings.MODEL_KINDS, with_kind: bool = True, batch: bool = False
) -> Callable[[F], F]:
    """The options of the model kinds a command asks (each kind's configuration's declared fields, once
    each), and `--model-kind` among `kinds` unless the command chooses the kinds itself. The Batch API
    route's options only with `batch`: for the commands where latency does not matter."""
    chosen: dict[str, Setting] = {}
    for kind in kinds:
        for name, setting in declared(CONFIGS[kind]).items():
            if batch or setting not in BATCH_SETTINGS:
                chosen.setdefault(name, setting)

    def decorate(func: F) -> F:
        for setting in reversed(chosen.values()):
            func = option(setting)(func)
        if with_kind:
            func = option(settings.MODEL_KIND, type=click.Choice(kinds), required=True)(func)
        return func

    return decorate


def given_on_command_line(name: str) -> bool:
    """Whether the current command's option `name` was typed on its command line (not its default, not its
    environment variable, which may be set for another model)."""
    ctx = click.get_current_context(silent=True)
    return ctx is not None and ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


WHAT_KINDS_ARE = {  # what a refusal says an option applies to
    "slm": "the local model",
    "azure": "a hosted model",
    "openai": "a hosted model",
    "replay": "stored outputs",
}


def refuse_options_of_other_kinds(kinds: Iterable[str], kw: dict[str, Any]) -> None:
    """A ConfigError for an option typed on the command line that no model asked (`kinds`) takes: an option
    that does not apply is refused, never silently ignored."""
    kinds = list(kinds)
    taken = {name for kind in kinds for name in declared(CONFIGS[kind])}
    for name in kw:
        setting = next((s for c in CONFIGS.values() for n, s in declared(c).items() if n == name), None)
        if setting is None or name in taken or not given_on_command_line(name):
            continue
        takes = kinds_taking(setting)
        applies = f"{WHAT_KINDS_ARE[takes[0]]} ({settings.MODEL_KIND} {' or '.join(dict.fromkeys(takes))})"
        fix = f"drop {setting}"
        if setting is settings.CONSTRAINED:
            fix += (
                f"; to evaluate a constrained SLM behind an endpoint, start it with "
                f"`slm-swap serve {settings.CONSTRAINED}`"
            )
        raise ConfigError(f"{setting} applies to {applies}, not {' or '.join(kinds)}\n  fix: {fix}")


def azure_settings(kind: str) -> AzureSettings | None:
    """Azure's settings, read from the environment for a command that asks Azure (else None)."""
    return AzureSettings.from_env(os.environ) if kind == "azure" else None


def model_configs(kinds: Iterable[str], kw: dict[str, Any]) -> list[tuple[str, ModelConfig]]:
    """Each chosen kind's configuration, built from a command's model options (found in `kw`), each taking
    its own; an option typed that none of them takes is refused."""
    chosen = list(dict.fromkeys(kinds))
    refuse_options_of_other_kinds(chosen, kw)
    configs = []
    for kind in chosen:
        hosted = {"azure": azure_settings(kind)} if kind in HOSTED_KINDS else {}
        configs.append((kind, config_for(kind, kw, **hosted)))
    return configs


def model_config(kind: str, kw: dict[str, Any]) -> ModelConfig:
    """The chosen kind's configuration (`model_configs` of one kind)."""
    ((_, config),) = model_configs([kind], kw)
    return config


def run_options(func: F) -> F:
    """`run`'s options, generated from the parts of its configuration (`run_config.RunConfig`): its own
    settings, where rows come from, the split sizes, the no-call rules, the hyperparameters, the prices,
    the workspace and both models' options."""
    from slm_swap.data.nocall import NoCallRules
    from slm_swap.data.splits import SplitSizes
    from slm_swap.report import Pricing
    from slm_swap.run_config import RunSettings, SourceSettings
    from slm_swap.train.config import Hyperparameters

    func = model_options(kinds=settings.RUNNING_KINDS, with_kind=False, batch=True)(func)
    for part in reversed((RunSettings, SourceSettings, SplitSizes, NoCallRules, Hyperparameters, Pricing)):
        func = options_of(part)(func)
    func = workspace_options(func)
    return option(settings.HOSTED_KIND)(func)


def run_config(kw: dict[str, Any]) -> RunConfig:
    """`run`'s configuration from its options (`run_options`), and what it reads from the environment: the
    hosted model's settings (Azure's, when `--hosted-kind` chooses or finds them), the environment its
    stand-in starts in, and the Langfuse configuration a Langfuse source is read with."""
    from slm_swap.data.nocall import NoCallRules
    from slm_swap.data.splits import SplitSizes
    from slm_swap.report import Pricing
    from slm_swap.run_config import RunConfig, RunSettings, SourceSettings, hosted_kind
    from slm_swap.tracing import LangfuseConfig
    from slm_swap.train.config import Hyperparameters

    chosen = kw["hosted_kind"]
    # auto takes Azure when its variables are all set: read here, at the edge, like every setting.
    azure = AzureSettings.from_env(os.environ) if chosen == "azure" else AzureSettings.if_set(os.environ)
    kind = hosted_kind(chosen, azure, kw["base_url"])
    return RunConfig(
        slm=config_for("slm", kw),  # type: ignore[arg-type]
        hosted=config_for(kind or "openai", kw, azure=azure if kind == "azure" else None),  # type: ignore[arg-type]
        stand_in=kind is None,
        run=config_from(RunSettings, kw),
        source=config_from(SourceSettings, kw),
        workspace=kw["workspace"],
        sizes=config_from(SplitSizes, kw),
        no_call=config_from(NoCallRules, kw),
        train=config_from(Hyperparameters, kw),
        pricing=config_from(Pricing, kw),
        environment=os.environ,
        langfuse=LangfuseConfig.from_env(os.environ),
    )


def gpus_to_use(given: int | None) -> int:
    """`--gpus` as given, or every GPU visible: CUDA_VISIBLE_DEVICES's list when it is set, else the
    machine's NVIDIA devices (counted without initialising CUDA)."""
    if given is not None:
        return given
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = len([device for device in visible.split(",") if device.strip()])
    else:
        count = len([device for device in Path("/dev").glob("nvidia[0-9]*") if device.name[6:].isdigit()])
    if count == 0:
        raise ConfigError(
            f"no GPU is visible here, so {settings.GPUS} has nothing to default to\n"
            f"  fix: pass {settings.GPUS} N (with --dry-run, to see the command for N GPUs)"
        )
    return count
