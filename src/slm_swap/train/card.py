"""The adapter card: what `slm-swap train` writes beside a LoRA adapter (`slm_swap_adapter.json`).

It records what the adapter is a function of (the identity rule: the splits' and the base checkpoint's
content, the hyperparameters), how the run went, and the digest of the adapter's files, which later
evaluations take as the adapter's identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.fileformats import Count, FileForm, Flag, Number

ADAPTER_FORMAT = "slm-swap.adapter/1"
ADAPTER_CARD = "slm_swap_adapter.json"  # the card's file name, beside the adapter it describes
# `--objective sft+dpo`: the preference pairs, beside the adapter for a reader (not part of what it computes)
PAIRS_FILE = "preference_pairs.jsonl"


@dataclass(frozen=True, kw_only=True)
class AdapterCard(FileForm):
    """The card, fields in the order it is written (`to_json`). Fields that cards gained later have
    defaults, so an earlier card is still read."""

    track: str
    train: str
    val: str
    adapter: str
    base_model: str
    engine: str  # "trl+peft" or "unsloth"
    device: str = ""
    precision: str  # as read from the trained model (`sft.precision_of`)
    batches: str = "padded"  # or "padding-free"
    strategy: str  # single, parallel or sequential (set by the launchers)
    train_sha256: str
    val_sha256: str
    base_model_sha256: str = ""
    hyperparameters: dict[str, Any]
    interrupted: Flag
    steps: Count
    train_loss_first: Number | None
    train_loss_last: Number | None
    train_loss_mean: Number
    val_loss: Number | None
    wall_seconds: Number
    adapter_sha256: str  # of the trained LoRA weights, as the ranks of a multi-GPU run compare them
    versions: dict[str, str]
    adapter_files_sha256: str | None = None  # of the files written (None until they are, and not written)
    preference: dict[str, Any] | None = None  # --objective sft+dpo: the preference step (`preference.py`)

    file_format = ADAPTER_FORMAT
    left_out = ("adapter_files_sha256", "preference")


def read_card(path: Path) -> AdapterCard:
    """An adapter card, checked field by field."""
    from slm_swap.files import read_as

    return read_as(
        path,
        "an adapter card written by `slm-swap train`",
        AdapterCard,
        "retrain the adapter",
        file_format=ADAPTER_FORMAT,
    )
