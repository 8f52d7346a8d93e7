"""The verdict of `slm-swap run`, per track, from its decisions, and the verdict file.

* swap now: the SLM is within `delta` of the hosted model on every core metric;
* swap after fine-tune: it trails, but with its LoRA adapter it is within `delta`;
* keep the hosted model: it trails, even after fine-tuning (or it was not fine-tuned);
* not settled: the rule leans to one of the three, but a core metric it rests on is not settled (its 95%
  interval straddles delta): the rows are too few to give it, and the verdict says how many would.

`run` writes the verdict file (`<eval-dir>/verdict.json`, format `VERDICT_FORMAT`), and `report` reads
it whole, each track's verdict as `run` gave it. A verdict file of format /1 (written before the format
named how each side was asked, and read only for its account of the run as a whole) is still read so:
its tracks' verdicts the report works out again from the decision files, by the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

from slm_swap.compare import Decision
from slm_swap.fileformats import Count, FileForm, Flag, Number
from slm_swap.scoring.metrics import Summary

RuleVerdict = Literal["swap_now", "swap_after_fine_tune", "keep_hosted"]
VerdictName = Literal["swap_now", "swap_after_fine_tune", "keep_hosted", "not_settled"]
VERDICTS: dict[VerdictName, str] = {
    "swap_now": "swap now",
    "swap_after_fine_tune": "swap after fine-tune",
    "keep_hosted": "keep the hosted model",
    "not_settled": "not settled",
}
VERDICT_FORMAT = "slm-swap.verdict/2"
VERDICT_FORMAT_1 = "slm-swap.verdict/1"  # read for its account of the run as a whole (`VerdictOf1`)


@dataclass(frozen=True)
class HostedModel:
    """The hosted side of a `run`: its kind and model, or the local stand-in that played it."""

    kind: str
    model: str | None
    stand_in: Flag
    description: str


@dataclass(frozen=True)
class VerdictHeader:
    """The verdict's account of the run as a whole."""

    session_id: str
    finished_at: str
    seconds: Number
    delta: Number
    hosted: HostedModel
    protocols: dict[str, str]  # how each side was asked (`protocol.py`): hosted, slm


@dataclass(frozen=True)
class TrackVerdict(FileForm):
    """One track's verdict, the reason, and the files it rests on (paths as given). The verdict file holds
    what it says (`says`) first."""

    verdict: VerdictName
    reason: str
    gold: str
    runs: dict[str, str | None]  # hosted, slm, slm_ft (None when not fine-tuned)
    decision: str
    ft_decision: str | None
    adapter: str | None
    summary: dict[str, Summary | None]  # per run, as `runs`
    leaning: RuleVerdict | None = None  # not settled: what the delta rule says on these rows
    rows_needed: Count | None = None  # not settled: about how many rows would settle it (None: no number)

    written: ClassVar[dict[str, str]] = {"says": "says"}

    @property
    def says(self) -> str:
        if self.verdict == "not_settled" and self.leaning is not None:
            return f"not settled (leaning: {VERDICTS[self.leaning]})"
        return VERDICTS[self.verdict]


@dataclass(frozen=True)
class Verdict(VerdictHeader, FileForm):
    """The outcome of `slm-swap run`: the verdict file's format."""

    split: str
    tracks: dict[str, TrackVerdict]

    file_format = VERDICT_FORMAT


@dataclass(frozen=True)
class VerdictOf1(VerdictHeader):
    """What a verdict file of format /1 is read for: its account of the run as a whole. One written before
    the protocol setting names none: both sides were asked in slm-swap's own prompt format."""

    protocols: dict[str, str] = field(default_factory=lambda: {"hosted": "prompt", "slm": "prompt"})


def read_verdict(path: Path) -> VerdictHeader:
    """The verdict file written by `run`, checked field by field: a `Verdict`, or of a file of format /1,
    its account of the run as a whole (`VerdictOf1`), as readers of /1 read it."""
    from slm_swap.files import read_as, read_json

    what, fix = "the verdict of `slm-swap run`", "rerun `slm-swap run` (finished stages are kept)"
    data = read_json(path, what)
    if isinstance(data, dict) and data.get("format") == VERDICT_FORMAT_1:
        return read_as(path, what, VerdictOf1, fix, file_format=VERDICT_FORMAT_1)
    return read_as(path, what, Verdict, fix, file_format=VERDICT_FORMAT)


class Ruling(NamedTuple):
    """A track's verdict and why (`verdict_of`): what the delta rule says (`rule`), and whether the core
    metrics it rests on are settled; when they are not, the verdict is `not_settled`, leaning to `rule`,
    with about how many rows would settle it (None: no number of rows a team would run)."""

    verdict: VerdictName
    reason: str
    rule: RuleVerdict
    rows_needed: int | None = None

    @property
    def leaning(self) -> RuleVerdict | None:
        return self.rule if self.verdict == "not_settled" else None


class _Rests(NamedTuple):
    """What a verdict needs of one decision to be settled: every core metric settled (`every`), or one
    trailing metric surely trailing; the metrics not yet settled and the rows that would settle them."""

    settled: bool
    unsettled: tuple[str, ...]
    rows_needed: int | None


def _rests_on(decision: Decision, *, every: bool) -> _Rests:
    if every:  # "within delta on every core metric": each must be settled
        open_ = [m for m in decision.metrics if not m.settled]
        counts = [m.rows_needed for m in open_ if m.rows_needed is not None]
        rows = max(counts) if counts and len(counts) == len(open_) else None
        return _Rests(not open_, tuple(m.metric for m in open_), rows)
    trailing = [m for m in decision.metrics if m.trails]  # "trails": one surely trailing metric suffices
    if any(m.settled for m in trailing):
        return _Rests(True, (), None)
    counts = [m.rows_needed for m in trailing if m.rows_needed is not None]
    return _Rests(False, tuple(m.metric for m in trailing), min(counts, default=None))


def verdict_of(decision: Decision, ft_decision: Decision | None) -> Ruling:
    """The verdict for a track and why, from its decision (hosted vs SLM) and, when the SLM was
    fine-tuned, the decision hosted vs SLM + adapter: the delta rule's verdict, or `not_settled` leaning
    to it when a core metric it rests on is not settled."""
    rule, reason = _rule(decision, ft_decision)
    rests = [_rests_on(decision, every=not decision.fine_tune)]
    if ft_decision is not None and decision.fine_tune:
        rests.append(_rests_on(ft_decision, every=rule == "swap_after_fine_tune"))
    if all(r.settled for r in rests):
        return Ruling(rule, reason, rule)
    unsettled = [m for r in rests for m in r.unsettled]
    needs = [r.rows_needed for r in rests if not r.settled]
    counts = [n for n in needs if n is not None]
    rows = max(counts) if len(counts) == len(needs) else None
    open_ = list(dict.fromkeys(unsettled))
    them = "them" if len(open_) > 1 else "it"
    figured = all(m.detectable is not None for d in (decision, ft_decision) if d for m in d.metrics)
    if not figured:  # a decision file written before the figures
        more = f"rerun `slm-swap compare` for the rows that would settle {them}"
    elif rows is not None:
        more = f"about {rows:,} rows would settle {them}"
    else:
        more = f"no number of rows a team would run settles {them} at the differences observed"
    settled = [m.metric for m in decision.metrics if m.settled]
    they = f"they settle {', '.join(settled)}, but " if settled else ""
    said = (
        f"not settled on {decision.examples} rows: {they}the 95% interval of {', '.join(open_)} straddles "
        f"delta {decision.delta}; {more}. The rule leans to {VERDICTS[rule]}: {reason}"
    )
    return Ruling("not_settled", said, rule, rows)


def _rule(decision: Decision, ft_decision: Decision | None) -> tuple[RuleVerdict, str]:
    """The delta rule's verdict for a track and why."""
    if not decision.fine_tune:
        return "swap_now", f"the SLM is within {decision.delta} of the hosted model on every core metric"
    trailing = ", ".join(m.metric for m in decision.metrics if m.trails)
    reason = f"the SLM trails by more than {decision.delta} on {trailing}"
    if ft_decision is None:
        return "keep_hosted", reason + "; no fine-tuned run"
    still = ", ".join(m.metric for m in ft_decision.metrics if m.trails)
    if not still:
        return (
            "swap_after_fine_tune",
            reason + "; with its LoRA adapter it is within delta on every core metric",
        )
    return "keep_hosted", reason + f"; with its LoRA adapter it still trails on {still}"
