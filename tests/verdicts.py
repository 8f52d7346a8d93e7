"""What `slm-swap run` should have exited with, from the verdict it wrote."""

from __future__ import annotations

import json
from pathlib import Path


def run_exit_code(eval_dir: Path = Path("05_eval")) -> int:
    """0 when every track's verdict is settled, 3 when one is not (`run`'s documented exit status)."""
    verdict = json.loads((eval_dir / "verdict.json").read_text())
    return 3 if any(t["verdict"] == "not_settled" for t in verdict["tracks"].values()) else 0


def ruled(track: dict[str, object]) -> object:
    """What the delta rule says for a track of `verdict.json`: its verdict, or where that is not settled
    the verdict it leans to."""
    return track["leaning"] if track["verdict"] == "not_settled" else track["verdict"]
