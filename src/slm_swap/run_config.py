"""`run`'s configuration: one value composed of the parts the single commands take (where rows come from,
the split sizes, the no-call rules, the hyperparameters, the two models' configurations, the decision's
settings), so a setting means in `run` what it means in the command that owns it. `run`'s options are
generated from these parts (`cli.options.run_options`) and the value is built back from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from slm_swap import settings
from slm_swap.backends.config import HostedConfig, LocalConfig
from slm_swap.data.nocall import NoCallRules
from slm_swap.data.splits import SplitSizes
from slm_swap.errors import ConfigError
from slm_swap.protocol import PROMPT
from slm_swap.report import Pricing
from slm_swap.settings import AzureSettings
from slm_swap.tracing import LangfuseConfig
from slm_swap.train.config import Hyperparameters
from slm_swap.types import SPLITS, TRACKS, Track
from slm_swap.workspace import Workspace


@dataclass(frozen=True)
class SourceSettings:
    """Where the rows come from (prepare, run): the source's kind and what names its content."""

    source: str = settings.field(settings.SOURCE)
    dataset_path: Path | None = settings.field(settings.DATASET_PATH)  # None: the source's default
    bfcl_category: str = settings.field(settings.BFCL_CATEGORY)
    langfuse_dataset: str | None = settings.field(settings.LANGFUSE_DATASET)


@dataclass(frozen=True)
class RunSettings:
    """`run`'s own settings: what it decides on, how, and how its stand-in is reached."""

    tracks: tuple[Track, ...] = settings.field(settings.TRACKS_SETTING)
    seed: int = settings.field(settings.SEED)
    max_test_size: int | None = settings.field(settings.MAX_TEST_SIZE)
    delta: float = settings.field(settings.DELTA)
    both_protocols: bool = settings.field(settings.BOTH_PROTOCOLS)
    standin_port: int = settings.field(settings.STANDIN_PORT)
    force: bool = settings.field(settings.FORCE)


@dataclass(frozen=True)
class RunConfig:
    """The whole decision's configuration. `hosted` is the hosted model's configuration; with `stand_in`,
    its endpoint is the local stand-in's (the SLM served, grammar-constrained), reached with its
    concurrency, timeouts and retries. `environment` is what the stand-in's process is started with, and
    `langfuse` what a Langfuse source is read with (both read at the command line's edge)."""

    slm: LocalConfig = field(default_factory=LocalConfig)
    hosted: HostedConfig = field(default_factory=lambda: HostedConfig("openai"))
    stand_in: bool = True
    run: RunSettings = field(default_factory=RunSettings)
    source: SourceSettings = field(default_factory=SourceSettings)
    workspace: Workspace = field(default_factory=Workspace)
    sizes: SplitSizes = field(default_factory=SplitSizes)
    no_call: NoCallRules = field(default_factory=NoCallRules)
    train: Hyperparameters = field(default_factory=Hyperparameters)
    pricing: Pricing = field(default_factory=Pricing)
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)
    langfuse: LangfuseConfig | None = None
    split: str = settings.SPLIT.default  # the split decided on

    def __post_init__(self) -> None:
        for split in SPLITS:  # train and val to fine-tune, test to decide on
            if getattr(self.sizes, split) < 1:
                raise ConfigError(
                    "the whole decision needs rows in every split, but "
                    f"{settings.setting_of(self.sizes, split)} is {getattr(self.sizes, split)}\n"
                    "  fix: give it at least 1"
                )
        pool = self.run.max_test_size
        if pool is not None and pool <= self.sizes.test:
            raise ConfigError(
                f"{settings.MAX_TEST_SIZE} {pool} is not more than {settings.TEST_SIZE} "
                f"{self.sizes.test}, the first round's rows\n  fix: give a larger {settings.MAX_TEST_SIZE} "
                f"(the pool), or leave it out to evaluate {settings.TEST_SIZE} rows at once"
            )
        if self.run.both_protocols and self.slm.protocol != PROMPT:
            raise ConfigError(
                f"{settings.BOTH_PROTOCOLS} decides under {settings.PROTOCOL} prompt and asks natively "
                f"beside it, but {settings.PROTOCOL} is {self.slm.protocol}\n"
                f"  fix: drop {settings.PROTOCOL} {self.slm.protocol}, or drop {settings.BOTH_PROTOCOLS}"
            )
        if self.stand_in and self.hosted.hosted_batch:
            raise ConfigError(
                f"{settings.HOSTED_BATCH}: the hosted side would be the local stand-in, which has no Batch "
                f"API\n  fix: set AZURE_* or {settings.BASE_URL} (or choose {settings.HOSTED_KIND} azure or "
                f"openai), or drop {settings.HOSTED_BATCH}"
            )
        if not set(self.run.tracks) <= set(TRACKS):
            raise ConfigError(f"{settings.TRACKS_SETTING} takes {', '.join(TRACKS)}, not {self.run.tracks}")

    @property
    def split_sizes(self) -> SplitSizes:
        """The splits `prepare` makes: with a test pool, its rows are the test split."""
        pool = self.run.max_test_size
        return self.sizes if pool is None else replace(self.sizes, test=pool)


def hosted_kind(kind: str, azure: AzureSettings | None, base_url: str | None) -> str | None:
    """The hosted model `run` asks: `auto` takes Azure when its settings are given, an OpenAI-compatible
    endpoint when a base URL is given, and otherwise the local stand-in (None)."""
    if kind == "auto":
        return "azure" if azure is not None else "openai" if base_url else None
    return None if kind == "stand-in" else kind
