"""A fine-tune's configuration: its hyperparameters (each one a setting, so `train` and `run` take them
as options from this one declaration) and the run they belong to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slm_swap import settings
from slm_swap.errors import ConfigError
from slm_swap.files import refuse_inputs
from slm_swap.settings import PRECISIONS
from slm_swap.types import TRACKS, Track


@dataclass(frozen=True, kw_only=True)
class Hyperparameters:
    """What a fine-tune learns with; the specification's fixed values are the defaults. Each field is a
    setting (`train` and `run` take them all as options). Validated on creation."""

    lora_r: int = settings.field(settings.LORA_R)
    lora_alpha: int = settings.field(settings.LORA_ALPHA)
    lora_dropout: float = settings.field(settings.LORA_DROPOUT)
    learning_rate: float = settings.field(settings.LEARNING_RATE)
    epochs: float = settings.field(settings.EPOCHS)
    max_length: int = settings.field(settings.MAX_LENGTH)
    batch_size: int = settings.field(settings.TRAIN_BATCH_SIZE)
    gradient_accumulation: int = settings.field(settings.GRADIENT_ACCUMULATION)
    load_in_4bit: bool = settings.field(settings.LOAD_IN_4BIT)
    save_steps: int = settings.field(settings.SAVE_STEPS)
    precision: str = settings.field(settings.PRECISION)  # the arithmetic, not the weights' storage
    mask_names: float = settings.field(settings.MASK_NAMES)  # share of training rows masked (`masking.py`)
    objective: str = settings.field(settings.OBJECTIVE)  # sft, or then a preference step (`preference.py`)

    def __post_init__(self) -> None:
        for name in (
            "lora_r",
            "lora_alpha",
            "batch_size",
            "gradient_accumulation",
            "max_length",
            "save_steps",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{settings.setting_of(self, name)} must be >= 1, got {getattr(self, name)}"
                )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"{settings.PRECISION} must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
            )
        if not 0 <= self.mask_names <= 1:
            raise ConfigError(f"{settings.MASK_NAMES} must be in [0, 1], got {self.mask_names}")
        if self.objective not in settings.OBJECTIVES:
            raise ConfigError(
                f"{settings.OBJECTIVE} must be one of {', '.join(settings.OBJECTIVES)}, "
                f"got {self.objective!r}"
            )
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"{settings.LORA_DROPOUT} must be in [0, 1), got {self.lora_dropout}")


@dataclass(frozen=True)
class TrainConfig(Hyperparameters):
    """One fine-tuning run: a track's splits, the base checkpoint, where the adapter goes, and the
    hyperparameters (given by keyword). Validated on creation; an error names the values that conflict."""

    track: Track
    train: Path
    val: Path
    out: Path
    model_path: Path
    resume: bool = False
    protocol: str = settings.field(settings.PROTOCOL)
    seed: int = settings.TRAINING_SEED
    strategy: str = "single"  # recorded in the card and trace: single, parallel or sequential (launchers)

    def __post_init__(self) -> None:
        if self.track not in TRACKS:
            raise ConfigError(f"{settings.TRACK} must be one of {', '.join(TRACKS)}, got {self.track!r}")
        if self.train.resolve() == self.val.resolve():
            raise ConfigError(
                f"the train and validation splits are the same file ({self.train}); validation must be "
                "held out"
            )
        inputs = {
            "the train split": self.train,
            "the validation split": self.val,
            "the base model": self.model_path,
        }
        refuse_inputs(self.out, inputs, settings.OUT, folder=True)
        super().__post_init__()
