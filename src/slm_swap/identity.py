"""The one identity rule: whether a stage's earlier output can be kept.

Every reuse decision — the splits inside `run`, run files and their journals, adapters — compares a
fingerprint of what changes that stage's result and of nothing else:

* content, never names: the bytes of a source or split file, of a predictions file, of a model
  checkpoint (the digest recorded in its manifest when slm-swap wrote it, else its files hashed), of an
  adapter's weights (the digest its card records);
* the settings that change the output: sizes and seed, decoding (constrained, max new tokens, batch
  size of local generation, stop rules), the prompt format, training hyperparameters;
* never what does not: concurrency, timeouts, retries, ports, paths to identical content.

`Stage.check` compares a stage's recorded inputs with the current ones and says which changed, so the
console can tell what was kept and why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slm_swap.errors import SlmSwapError
from slm_swap.files import sha256_file
from slm_swap.train.card import ADAPTER_CARD, PAIRS_FILE, read_card

MODEL_MANIFEST = "slm_swap_model.json"  # written beside a checkpoint that slm-swap built


def fingerprint(value: Any) -> str:
    """SHA-256 of the canonical JSON of `value` (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Hashing a checkpoint is a second or more per GB: done once per file state in a process.
_digests: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, computed once per (path, size, modification time) in this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return _digests[key]


def _folder_digest(folder: Path, skip: frozenset[str] = frozenset()) -> str:
    """Digest of the regular files directly in `folder` (names and contents; hidden files and `skip` out)."""
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name not in skip
    )
    return fingerprint([[p.name, file_digest(p)] for p in files])


def _recorded(path: Path, key: str) -> str | None:
    """The digest `key` recorded in the JSON file `path` (a model manifest), if any."""
    try:
        recorded = json.loads(path.read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, UnicodeDecodeError, AttributeError):
        return None
    return recorded if isinstance(recorded, str) and recorded else None


def checkpoint_digest(model_path: Path) -> str:
    """The content digest of a model checkpoint folder: the one slm-swap recorded in its manifest when it
    wrote the checkpoint (`models pull`), else a digest of every file in the folder."""
    recorded = _recorded(model_path / MODEL_MANIFEST, "checkpoint_sha256")
    return recorded or _folder_digest(model_path, frozenset({MODEL_MANIFEST}))


def adapter_digest(adapter: Path) -> str:
    """The content digest of a LoRA adapter: the one its card records (written with the weights), else a
    digest of the adapter's files (no card, or not one slm-swap can read)."""
    try:
        recorded = read_card(adapter / ADAPTER_CARD).adapter_files_sha256
    except SlmSwapError:
        recorded = None
    return recorded or adapter_files_digest(adapter)


def adapter_files_digest(adapter: Path) -> str:
    """Digest of an adapter folder's own files (weights, adapter config, tokenizer), the card and the
    preference pairs (written for a reader) excluded."""
    return _folder_digest(adapter, frozenset({ADAPTER_CARD, PAIRS_FILE}))


# How a changed input is named on the console.
LABELS = {
    "dataset_sha256": "the split's content",
    "checkpoint_sha256": "the model checkpoint",
    "adapter_sha256": "the adapter's weights",
    "predictions_sha256": "the predictions file",
    "train_sha256": "the train split",
    "val_sha256": "the validation split",
    "base_model_sha256": "the base model",
    "source": "the source data",
    "endpoint": "the endpoint",
    "model": "the model",
    "model_kind": "the model kind",
}


@dataclass(frozen=True)
class Check:
    """The outcome of comparing a stage's recorded inputs with the current ones."""

    same: bool
    changed: tuple[str, ...] = ()

    @property
    def why(self) -> str:
        if self.same:
            return "inputs unchanged"
        return "changed: " + ", ".join(LABELS.get(name, name.replace("_", " ")) for name in self.changed)


def compare_inputs(recorded: Mapping[str, Any] | None, current: Mapping[str, Any]) -> Check:
    """Which of the current inputs differ from the recorded ones (top-level keys, named)."""
    if not isinstance(recorded, Mapping):
        return Check(False, ("no record of its inputs",))
    changed = tuple(
        sorted(
            k
            for k in set(recorded) | set(current)
            if fingerprint(recorded.get(k)) != fingerprint(current.get(k))
        )
    )
    return Check(not changed, changed)
