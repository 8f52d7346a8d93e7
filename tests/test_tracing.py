"""The tracing layer against the real Langfuse SDK, sending to a local recording receiver.

The `langfuse_receiver` fixture comes from tests/langfuse_receiver.py (a pytest plugin registered in
tests/conftest.py).
"""

from __future__ import annotations

import base64
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from slm_swap.errors import ConfigError
from slm_swap.tracing import (
    DeliveryReport,
    Generation,
    LangfuseSettings,
    LangfuseTracer,
    NullTracer,
    Tracer,
    make_tracer,
)
from tests.langfuse_receiver import LangfuseReceiver

PUBLIC = "pk-lf-test-public"
SECRET = "sk-lf-test-SECRET-value"
START = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
OpenTracer = Callable[[str], LangfuseTracer]


def ns(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 1000


@pytest.fixture
def open_tracer() -> Iterator[OpenTracer]:
    """Builds LangfuseTracers with short timeouts against a receiver, and closes them afterwards."""
    made: list[LangfuseTracer] = []

    def build(host: str) -> LangfuseTracer:
        # The SDK keeps one client per public key per process: each tracer gets a key of its own.
        tracer = LangfuseTracer(
            LangfuseSettings(f"{PUBLIC}-{secrets.token_hex(4)}", SECRET, host), timeout_s=2
        )
        made.append(tracer)
        return tracer

    yield build
    for tracer in made:
        tracer.close()


def record_run(tracer: Tracer, generations: int = 3) -> str | None:
    """A run like an evaluation's: generations with real times and scores, a trace score, an event."""
    with tracer.run(
        "eval",
        input={"dataset": "xlam_sample.json"},
        metadata={"dataset_path": "/data/xlam.json", "dataset_sha256": "ab" * 32, "model_kind": "replay"},
        tags=["mode=live", "track=tools"],
        session_id="session-42",
    ) as run:
        for i in range(generations):
            generation = run.generation(
                Generation(
                    name=f"example-{i}",
                    model="qwen-0.5b",
                    input=[{"role": "user", "content": f"question {i}"}],
                    output=f"answer {i}",
                    metadata={"example_id": i},
                    usage={"input": 10 + i, "output": 3},
                    start_time=START + timedelta(seconds=i),
                    end_time=START + timedelta(seconds=i, milliseconds=250),
                    error="backend timed out" if i == 2 else None,
                )
            )
            generation.score("exact_match", float(i % 2), comment=f"example {i}")
        run.score("accuracy", 0.5, comment="1 of 2")
        run.event("metrics-written", {"path": "runs/1/metrics.json"})
        run.update(output={"accuracy": 0.5}, metadata={"metrics_path": "runs/1/metrics.json"})
        return run.trace_id


def test_a_run_arrives_with_its_trace_generations_and_scores(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer
) -> None:
    tracer = open_tracer(langfuse_receiver.url)
    trace_id = record_run(tracer)
    report = tracer.flush()

    assert report == DeliveryReport(delivered=True, sent=9, failed=0, message=None)  # 5 spans + 4 scores
    root = langfuse_receiver.span("eval")
    assert root.trace_id == trace_id and root.parent_id is None
    assert root.attr("langfuse.observation.type") == "span"
    assert root.attr("langfuse.trace.name") == "eval"
    assert root.attr("langfuse.trace.tags") == ["mode=live", "track=tools"]
    assert root.attr("session.id") == "session-42"
    assert root.metadata("trace") == {
        "dataset_path": "/data/xlam.json",
        "dataset_sha256": "ab" * 32,
        "model_kind": "replay",
        "metrics_path": "runs/1/metrics.json",
    }
    assert root.json_attr("langfuse.observation.input") == {"dataset": "xlam_sample.json"}
    assert root.json_attr("langfuse.observation.output") == {"accuracy": 0.5}
    assert root.attr("langfuse.environment") == "default"

    generations = [langfuse_receiver.span(f"example-{i}") for i in range(3)]
    for i, generation in enumerate(generations):
        assert generation.trace_id == trace_id and generation.parent_id == root.span_id
        assert generation.attr("langfuse.observation.type") == "generation"
        assert generation.attr("langfuse.observation.model.name") == "qwen-0.5b"
        assert generation.json_attr("langfuse.observation.input") == [
            {"role": "user", "content": f"question {i}"}
        ]
        assert generation.attr("langfuse.observation.output") == f"answer {i}"
        assert generation.json_attr("langfuse.observation.usage_details") == {"input": 10 + i, "output": 3}
        assert generation.metadata() == {"example_id": i}
        assert generation.attr("session.id") == "session-42"
        assert generation.start_ns == ns(START + timedelta(seconds=i))
        assert generation.end_ns == ns(START + timedelta(seconds=i, milliseconds=250))
    assert generations[0].status_code == "STATUS_CODE_UNSET"
    assert generations[0].attr("langfuse.observation.level") is None
    assert generations[2].attr("langfuse.observation.level") == "ERROR"
    assert generations[2].attr("langfuse.observation.status_message") == "backend timed out"
    assert (generations[2].status_code, generations[2].status_message) == (
        "STATUS_CODE_ERROR",
        "backend timed out",
    )

    event = langfuse_receiver.span("metrics-written")
    assert event.parent_id == root.span_id and event.attr("langfuse.observation.type") == "event"

    scores = {(s["name"], s.get("observationId")): s for s in langfuse_receiver.scores}
    assert len(scores) == len(langfuse_receiver.scores) == 4
    for i, generation in enumerate(generations):
        score = scores[("exact_match", generation.span_id)]
        assert (score["traceId"], score["value"], score["comment"]) == (
            trace_id,
            float(i % 2),
            f"example {i}",
        )
        assert score["dataType"] == "NUMERIC"
    trace_score = scores[("accuracy", None)]
    assert (trace_score["traceId"], trace_score["value"]) == (trace_id, 0.5)


def test_requests_use_basic_auth_and_the_secret_appears_nowhere_else(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer
) -> None:
    tracer = open_tracer(langfuse_receiver.url)
    record_run(tracer, generations=1)
    assert tracer.flush().delivered

    paths = {r.path for r in langfuse_receiver.requests}
    assert paths == {"/api/public/otel/v1/traces", "/api/public/scores"}
    for request in langfuse_receiver.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        scheme, _, token = headers["authorization"].partition(" ")
        assert (
            scheme == "Basic" and base64.b64decode(token).decode() == f"{tracer.settings.public_key}:{SECRET}"
        )
        assert SECRET.encode() not in request.body
        assert not any(SECRET in value for value in headers.values())
    assert SECRET not in repr(tracer.settings) and tracer.settings.public_key not in repr(tracer.settings)


@pytest.mark.parametrize("status", [401, 500])
def test_a_server_error_is_reported_not_raised(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer, status: int
) -> None:
    langfuse_receiver.fail_with(status)
    tracer = open_tracer(langfuse_receiver.url)
    record_run(tracer, generations=1)  # 3 spans, 2 scores

    report = tracer.flush()

    assert (report.delivered, report.sent, report.failed) == (False, 5, 5)
    assert report.message == (
        f"5 of 5 trace items could not be delivered to {langfuse_receiver.url} (HTTP {status}); "
        "the run's results are saved regardless"
    )
    assert SECRET not in report.message and tracer.settings.public_key not in report.message


def test_only_failing_scores_count_as_failed(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer
) -> None:
    langfuse_receiver.fail_with(401, endpoint="scores")
    tracer = open_tracer(langfuse_receiver.url)
    record_run(tracer)

    report = tracer.flush()

    assert (report.delivered, report.sent, report.failed) == (False, 9, 4)
    assert report.message is not None and "4 of 9" in report.message and "(HTTP 401)" in report.message
    assert len(langfuse_receiver.spans) == 5


def test_scores_rejected_in_a_207_batch_count_as_failed(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer
) -> None:
    langfuse_receiver.reject_scores(1)
    tracer = open_tracer(langfuse_receiver.url)
    record_run(tracer)

    report = tracer.flush()

    assert (report.delivered, report.failed) == (False, 1)
    assert report.message is not None and "rejected by the server (HTTP 207)" in report.message


def test_an_unreachable_host_is_reported(open_tracer: OpenTracer) -> None:
    with LangfuseReceiver() as gone:
        url = gone.url
    tracer = open_tracer(url)
    with tracer.run("eval", metadata={}) as run:
        run.generation(Generation(name="g", model="m", input="q", output="a"))

    report = tracer.flush()

    assert (report.delivered, report.sent, report.failed) == (False, 2, 2)
    assert report.message is not None and "(connection failed)" in report.message


def test_an_exception_in_the_run_marks_the_trace_and_propagates(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer
) -> None:
    tracer = open_tracer(langfuse_receiver.url)
    with pytest.raises(KeyError), tracer.run("eval", metadata={}):
        raise KeyError("boom")

    assert tracer.flush().delivered
    root = langfuse_receiver.span("eval")
    assert root.attr("langfuse.observation.level") == "ERROR"
    assert root.status_message == "KeyError: 'boom'"


def test_tracers_in_one_process_are_isolated(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer
) -> None:
    """Same public key, two hosts: the SDK's per-key singleton must not route both to the first."""
    first = open_tracer(langfuse_receiver.url)
    with LangfuseReceiver() as other:
        second = open_tracer(other.url)
        with first.run("first", metadata={}):
            pass
        with second.run("second", metadata={}):
            pass
        assert first.flush().delivered and second.flush().delivered
        assert [s.name for s in langfuse_receiver.spans] == ["first"]
        assert [s.name for s in other.spans] == ["second"]


def test_sdk_environment_variables_do_not_redirect_or_drop_traces(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LANGFUSE_BASE_URL", "http://127.0.0.1:9")  # the SDK prefers it over `host`
    monkeypatch.setenv("LANGFUSE_SAMPLE_RATE", "0")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "3")
    monkeypatch.setenv("LANGFUSE_TRACING_ENVIRONMENT", "from-os-environ")  # settings say "default"
    tracer = open_tracer(langfuse_receiver.url)
    record_run(tracer, generations=1)

    assert tracer.flush().delivered
    assert len(langfuse_receiver.spans) == 3 and len(langfuse_receiver.scores) == 2
    generation = langfuse_receiver.span("example-0")
    assert generation.attr("langfuse.observation.output") == "answer 0"
    assert generation.attr("langfuse.environment") == "default"


def test_flush_is_fast(langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer) -> None:
    tracer = open_tracer(langfuse_receiver.url)
    record_run(tracer, generations=50)
    started = time.monotonic()
    report = tracer.flush()
    assert report.delivered and report.sent == (1 + 50 + 1) + (
        50 + 1
    )  # spans: root, generations, event; scores
    assert time.monotonic() - started < 2


# --- configuration ----------------------------------------------------------------------------------

FULL = {"LANGFUSE_PUBLIC_KEY": PUBLIC, "LANGFUSE_SECRET_KEY": SECRET, "LANGFUSE_HOST": "http://127.0.0.1:1/"}


@pytest.mark.parametrize(
    ("blank", "missing"),
    [
        (["LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST"], None),
        (["LANGFUSE_SECRET_KEY"], None),
        (["LANGFUSE_HOST"], ""),
        (["LANGFUSE_PUBLIC_KEY", "LANGFUSE_HOST"], "  "),
    ],
)
def test_make_tracer_refuses_without_configuration(blank: list[str], missing: str | None) -> None:
    """`missing` None: the variables are absent; a string: they are set to it (empty counts as unset)."""
    env = {k: v for k, v in FULL.items() if k not in blank}
    if missing is not None:
        env.update(dict.fromkeys(blank, missing))

    with pytest.raises(ConfigError) as error:
        make_tracer(env)

    message = str(error.value)
    for name in FULL:
        assert (name in message) == (name in blank)
    assert "or set LANGFUSE_DISABLED=1 to run without tracing" in message
    assert SECRET not in message and PUBLIC not in message


def test_make_tracer_with_langfuse_disabled_is_a_null_tracer() -> None:
    tracer = make_tracer({"LANGFUSE_DISABLED": "1"})
    assert isinstance(tracer, NullTracer) and not tracer.enabled
    with tracer.run("eval", metadata={"a": 1}, tags=["mode=live"]) as run:
        assert run.trace_id is None
        generation = run.generation(Generation(name="g", model="m", input="q", output="a"))
        generation.score("exact_match", 1.0)
        run.score("accuracy", 1.0)
        run.event("e", {})
        run.update(output="done")
    assert tracer.flush() == DeliveryReport(delivered=True, sent=0, failed=0, message=None)
    tracer.close()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"LANGFUSE_DISABLED": "yes"}, "LANGFUSE_DISABLED must be 1"),
        ({"LANGFUSE_HOST": "cloud.langfuse.com"}, "LANGFUSE_HOST must be an http(s) URL"),
        ({"LANGFUSE_TRACING_ENABLED": "false"}, "LANGFUSE_TRACING_ENABLED=false"),
        ({"OTEL_SDK_DISABLED": "true"}, "OTEL_SDK_DISABLED=true"),
    ],
)
def test_settings_that_would_silently_lose_traces_are_refused(extra: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        LangfuseSettings.from_env({**FULL, **extra})


def test_settings_from_env_are_stripped() -> None:
    settings = LangfuseSettings.from_env(
        {**FULL, "LANGFUSE_SECRET_KEY": f" {SECRET}\n", "LANGFUSE_DISABLED": "0"}
    )
    assert settings == LangfuseSettings(PUBLIC, SECRET, "http://127.0.0.1:1")
    assert SECRET not in repr(settings) and PUBLIC not in repr(settings)


def test_importing_tracing_does_not_import_the_sdk() -> None:
    code = (
        "import sys, slm_swap.tracing; "
        "print([m for m in ('langfuse', 'opentelemetry', 'httpx', 'requests') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_second_client_for_one_public_key_is_refused_not_misrouted(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer
) -> None:
    """The SDK keeps one client per public key per process and would hand the first one's exporter (and
    host) to a second client: a second tracer for the same key is refused."""
    first = open_tracer(langfuse_receiver.url)
    with pytest.raises(RuntimeError, match="one per key"):
        LangfuseTracer(LangfuseSettings(first.settings.public_key, SECRET, "http://127.0.0.1:1"), timeout_s=1)
    record_run(first, generations=1)
    assert first.flush().delivered


def test_ids_differ_between_runs_even_after_the_model_seeds_random(
    langfuse_receiver: LangfuseReceiver, open_tracer: OpenTracer
) -> None:
    """Training seeds Python's `random` with 42 (the trainer's seed), and `run` evaluates in the process that
    trained; trace, span and score ids must not follow it, or every run would reuse the last one's ids and
    Langfuse would merge them."""
    import random

    trace_ids = []
    for _ in range(2):
        tracer = open_tracer(langfuse_receiver.url)
        random.seed(42)
        trace_ids.append(record_run(tracer))
        assert tracer.flush().delivered
    assert trace_ids[0] != trace_ids[1]
    span_ids = [s.span_id for s in langfuse_receiver.spans]
    assert len(span_ids) == len(set(span_ids))
    score_ids = [s["id"] for s in langfuse_receiver.scores]
    assert len(score_ids) == 8 and len(set(score_ids)) == 8
    random.seed(42)
    state = random.random()
    random.seed(42)

    open_tracer(langfuse_receiver.url).dataset_run("none", "r", {}, description="", metadata={})
    assert random.random() == state  # the caller's seeded sequence is left as it was
