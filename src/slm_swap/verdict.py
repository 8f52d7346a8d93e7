"""The verdict of `slm-swap run`, per track, from its decisions, and the verdict file.

* swap now: the SLM is within `delta` of the hosted model on every core metric;
* swap after fine-tune: it trails, but with its LoRA adapter it is within `delta`;
* keep the hosted model: it trails, even after fine-tuning (or it was not fine-tuned).

`run` writes the verdict file (`<eval-dir>/verdict.json`); `report` reads its account of the run as a
whole and works each track's verdict out again from the decision files, by the same rule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from slm_swap.compare import Decision
from slm_swap.fileformats import FileDefault, Flag, Number
from slm_swap.scoring.metrics import Summary

VerdictName = Literal["swap_now", "swap_after_fine_tune", "keep_hosted"]
VERDICTS: dict[VerdictName, str] = {
    "swap_now": "swap now",
    "swap_after_fine_tune": "swap after fine-tune",
    "keep_hosted": "keep the hosted model",
}
VERDICT_FORMAT = "slm-swap.verdict/1"


@dataclass(frozen=True)
class HostedModel:
    """The hosted side of a `run`: its kind and model, or the local stand-in that played it."""

    kind: str
    model: str | None
    stand_in: Flag
    description: str


@dataclass(frozen=True)
class VerdictHeader:
    """The verdict file's account of the run as a whole, which is what `report` reads of it (each track's
    verdict it works out again from the decision files)."""

    session_id: str
    finished_at: str
    seconds: Number
    delta: Number
    hosted: HostedModel
    # How each side was asked (`protocol.py`); verdicts written before the setting: both prompt.
    protocols: Annotated[dict[str, str], FileDefault({"hosted": "prompt", "slm": "prompt"})]


@dataclass(frozen=True)
class TrackVerdict:
    """One track's verdict, the reason, and the files it rests on (paths as given)."""

    verdict: VerdictName
    reason: str
    gold: str
    runs: dict[str, str | None]  # hosted, slm, slm_ft (None when not fine-tuned)
    decision: str
    ft_decision: str | None
    adapter: str | None
    summary: dict[str, Summary | None]  # per run, as `runs`

    @property
    def says(self) -> str:
        return VERDICTS[self.verdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "says": self.says,
            "reason": self.reason,
            "gold": self.gold,
            "runs": self.runs,
            "decision": self.decision,
            "ft_decision": self.ft_decision,
            "adapter": self.adapter,
            "summary": {k: None if v is None else v.to_json() for k, v in self.summary.items()},
        }


@dataclass(frozen=True)
class Verdict(VerdictHeader):
    """The outcome of `slm-swap run`, as written to the verdict file (which is read back as its
    `VerdictHeader` only)."""

    split: str
    tracks: dict[str, TrackVerdict]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": VERDICT_FORMAT,
            "session_id": self.session_id,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            "delta": self.delta,
            "split": self.split,
            "hosted": asdict(self.hosted),
            "protocols": self.protocols,
            "tracks": {track: t.to_json() for track, t in self.tracks.items()},
        }


def read_verdict_header(path: Path) -> VerdictHeader:
    """The run as a whole from the verdict file written by `run`, checked field by field."""
    from slm_swap.files import read_as

    return read_as(
        path,
        "the verdict of `slm-swap run`",
        VerdictHeader,
        "rerun `slm-swap run` (finished stages are kept)",
        file_format=VERDICT_FORMAT,
    )


class Ruling(NamedTuple):
    """A track's verdict and why (`verdict_of`)."""

    verdict: VerdictName
    reason: str


def verdict_of(decision: Decision, ft_decision: Decision | None) -> Ruling:
    """The verdict for a track and why, from its decision (hosted vs SLM) and, when the SLM was
    fine-tuned, the decision hosted vs SLM + adapter."""
    if not decision.fine_tune:
        return Ruling(
            "swap_now", f"the SLM is within {decision.delta} of the hosted model on every core metric"
        )
    trailing = ", ".join(m.metric for m in decision.metrics if m.trails)
    reason = f"the SLM trails by more than {decision.delta} on {trailing}"
    if ft_decision is None:
        return Ruling("keep_hosted", reason + "; no fine-tuned run")
    still = ", ".join(m.metric for m in ft_decision.metrics if m.trails)
    if not still:
        return Ruling(
            "swap_after_fine_tune",
            reason + "; with its LoRA adapter it is within delta on every core metric",
        )
    return Ruling("keep_hosted", reason + f"; with its LoRA adapter it still trails on {still}")
