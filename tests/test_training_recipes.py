"""What a fine-tune is taught beyond the gold answers: function masking (`train --mask-names`), near-topic
no-call rows (`prepare --irrelevance-donors near`), and the preference step (`train --objective
sft+dpo`)."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slm_swap.data.topics import SAME_TOOL, words
from slm_swap.files import read_examples
from slm_swap.scoring.metrics import score
from slm_swap.train.masking import mask, mask_share, maskable
from slm_swap.types import Completion, Example
from tests.cli import cli
from tests.conftest import xlam_row


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    """Plain Jaccard similarity of two word sets: the tests' own measure of closeness, independent of the
    weights `prepare` ranks by."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


# --- function masking -------------------------------------------------------------------------------------


def names_in(example: Example) -> set[str]:
    """Every tool and parameter name a row offers."""
    found = set()
    for tool in example.tools:
        found.add(tool.name)
        found.update(tool.parameters.get("properties", {}))
    return found


def test_a_masked_row_renames_tools_and_parameters_alike_in_tools_prompt_and_answer(
    prepared: list[Example],
) -> None:
    rows = [e for e in prepared if e.gold and maskable(e)]
    assert len(rows) >= 4
    orders_changed = 0
    for example in rows:
        masked = mask(example, random.Random(7))
        old, new = names_in(example), names_in(masked)
        assert old.isdisjoint(new) and len(new) == len(old)  # every name replaced, none reused
        assert all(re.fullmatch(r"[fp]_[a-z0-9]{8}", n) for n in new)
        # Descriptions and schemas stay: only the names change.
        assert sorted(t.description for t in masked.tools) == sorted(t.description for t in example.tools)
        assert sorted(len(t.parameters.get("properties", {})) for t in masked.tools) == sorted(
            len(t.parameters.get("properties", {})) for t in example.tools
        )
        for tool in masked.tools:
            assert set(tool.parameters.get("required", [])) <= set(tool.parameters["properties"])
        # The prompt offers the new names only; the answer calls them, with the renamed parameters.
        assert all(f'"name": "{t.name}"' in masked.prompt for t in masked.tools)
        assert not any(f'"{name}"' in masked.prompt for name in old)
        offered = {t.name: set(t.parameters["properties"]) for t in masked.tools}
        for call in masked.gold:
            assert call.name in offered and set(call.arguments) <= offered[call.name]
            assert f'name="{call.name}"' in masked.completion
        # The masked answer is right for the masked row: consistent, as scoring reads it.
        result = score(masked, Completion(masked.completion))
        assert result.error_category is None and result.metrics["ast_match"] == 1.0
        # The same values are passed, under the new names.
        assert [sorted(map(json.dumps, c.arguments.values())) for c in masked.gold] == [
            sorted(map(json.dumps, c.arguments.values())) for c in example.gold
        ]
        orders_changed += [t.description for t in masked.tools] != [t.description for t in example.tools]
    assert orders_changed  # the tools are shuffled (some rows offer one tool, so not every order moves)


def test_masking_is_seeded_and_takes_the_share_asked_of_the_training_rows(prepared: list[Example]) -> None:
    first = mask_share(prepared, 0.5, seed=42)
    assert first == mask_share(prepared, 0.5, seed=42)  # the same split and seed give the same rows
    changed = [a.id for a, b in zip(prepared, first, strict=True) if a != b]
    assert len(changed) == round(0.5 * len(prepared))
    assert [e.id for e in first] == [e.id for e in prepared]  # same rows, same order
    assert mask_share(prepared, 0.0, seed=42) == prepared
    assert sum(a != b for a, b in zip(prepared, mask_share(prepared, 1.0, seed=42), strict=True)) == len(
        [e for e in prepared if maskable(e)]
    )


def test_train_masks_training_rows_only_and_records_the_share_in_the_card(
    workspace: Path, tiny_model: Path
) -> None:
    from slm_swap.train.config import TrainConfig
    from slm_swap.train.sft import build_trainer

    assert cli(["prepare", "--train-size", "8", "--val-size", "4", "--test-size", "4"]).exit_code == 0
    train = read_examples(Path("02_dataset/toolcall/train.jsonl"))
    val = read_examples(Path("02_dataset/toolcall/val.jsonl"))
    config = TrainConfig(
        track="toolcall",
        train=Path("02_dataset/toolcall/train.jsonl"),
        val=Path("02_dataset/toolcall/val.jsonl"),
        out=Path("04_ft/masked"),
        model_path=tiny_model,
        mask_names=1.0,
    )
    built = build_trainer(config)
    train_prompts = [row["prompt"][1]["content"] for row in built.trainer.train_dataset]
    val_prompts = [row["prompt"][1]["content"] for row in built.trainer.eval_dataset]
    assert len(train_prompts) == len(train) and val_prompts == [e.prompt for e in val]
    assert not any(
        f'"name": "{t.name}"' in p for e, p in zip(train, train_prompts, strict=True) for t in e.tools
    )

    command = ["train", "--track", "toolcall", "--model-path", str(tiny_model), "--max-length", "1024"]
    result = cli([*command, "--mask-names", "0.5", "--out", "04_ft/half", "--train-batch-size", "8"])
    assert result.exit_code == 0, result.output
    card = json.loads(Path("04_ft/half/slm_swap_adapter.json").read_text())
    assert card["hyperparameters"]["mask_names"] == 0.5
    plain = cli([*command, "--out", "04_ft/plain", "--train-batch-size", "8"])
    assert plain.exit_code == 0, plain.output
    # Not masking is not recorded, so adapters trained before the setting existed still match.
    assert (
        "mask_names"
        not in json.loads(Path("04_ft/plain/slm_swap_adapter.json").read_text())["hyperparameters"]
    )
    refused = cli([*command, "--mask-names", "1.5"])
    assert refused.exit_code == 2 and "--mask-names" in refused.output


# --- near-topic no-call rows ------------------------------------------------------------------------------

TOPICS = {  # four tools a topic, each offered alone by its row (as BFCL's live_simple rows are)
    "weather": [
        ("get_current_weather", "Current weather conditions for a city"),
        ("weather_forecast_daily", "Daily weather forecast for a city"),
        ("weather_alerts_region", "Severe weather alerts issued for a region"),
        ("uv_index_city", "Ultraviolet index from the weather service for a city"),
    ],
    "finance": [
        ("stock_price_quote", "Latest market price of a stock ticker"),
        ("exchange_rate_lookup", "Market exchange rate between two currencies"),
        ("company_earnings_report", "Quarterly earnings of a company listed on the market"),
        ("crypto_price_ticker", "Latest market price of a cryptocurrency coin"),
    ],
    "cooking": [
        ("find_recipe", "Find a food recipe by dish name"),
        ("nutrition_facts", "Nutrition facts and calories of a food"),
        ("wine_pairing", "Suggest a wine to pair with a food dish"),
        ("meal_planner_week", "Plan a week of food and meals"),
    ],
}
# The same function as get_current_weather under another name: never offered in its place.
TWIN = ("current_weather_conditions", "Current weather conditions for a city")


def topic_rows(copies: int) -> list[dict[str, Any]]:
    rows = []
    tools = [(topic, name, text) for topic, listed in TOPICS.items() for name, text in listed]
    tools.append(("weather", *TWIN))
    for k in range(copies):
        for topic, name, text in tools:
            spec = {"name": f"{name}_v{k}", "description": text, "parameters": {"q": {"type": "str"}}}
            answers = [{"name": spec["name"], "arguments": {"q": f"{topic}{k}"}}]
            query = f"Please help with {topic} question {k}"
            i = len(rows)
            rows.append(xlam_row(i, tools=json.dumps([spec]), answers=json.dumps(answers), query=query))
    return rows


def made_pairs(donors: str) -> list[tuple[Example, Example]]:
    """Each made no-call row of the train and val splits, with the row it was made from."""
    source = {f"xlam-{r['id']}": r for r in ROWS}
    out = []
    for name in ("train", "val"):
        for made in read_examples(Path(f"02_dataset-{donors}/toolcall/{name}.jsonl")):
            if made.id.endswith("-nocall"):
                row = source[made.id.removesuffix("-nocall")]
                out.append((made, row))
    return out


ROWS = topic_rows(copies=6)


def test_near_donors_offer_tools_close_in_topic_never_the_gold_or_its_twin(
    workspace: Path, write_xlam: Callable[..., Path]
) -> None:
    path = write_xlam(ROWS, name="topics.json")
    sizes = ["--train-size", "24", "--val-size", "8", "--test-size", "8", "--irrelevance-share", "0.5"]
    closeness: dict[str, list[float]] = {}
    for donors in ("random", "near"):
        out = f"02_dataset-{donors}"
        args = [
            "prepare",
            "--dataset-path",
            str(path),
            *sizes,
            "--out-dir",
            out,
            "--irrelevance-donors",
            donors,
        ]
        result = cli(args)
        assert result.exit_code == 0, result.output
        manifest = json.loads(Path(out, "prepared.json").read_text())
        assert ("irrelevance_donors" in manifest["inputs"]) == (donors == "near")
        pairs = made_pairs(donors)
        assert len(pairs) == 16
        for made, row in pairs:
            gold = json.loads(row["answers"])[0]["name"]
            offered = {t.name for t in made.tools}
            assert gold not in offered and not made.gold  # never the removed tool; the answer is no call
            removed = words(t for t in read_tools(row))
            closeness.setdefault(donors, []).append(similarity(removed, words(made.tools)))
            if donors == "near":
                # Not the same function under another name: neither a copy of the gold nor its twin.
                same = {base(gold)} | ({TWIN[0]} if base(gold) == "get_current_weather" else set())
                assert not {base(name) for name in offered} & same
                assert similarity(removed, words(made.tools)) < SAME_TOOL
                assert topic_of(gold) == topic_of(next(iter(offered)))  # a near miss: the same topic
    mean = {k: sum(v) / len(v) for k, v in closeness.items()}
    assert mean["near"] > 2 * mean["random"] and mean["near"] > 0.15, mean
    # The test split is never augmented, and the splits are seeded: the same command, the same bytes.
    again = cli(
        ["prepare", "--dataset-path", str(path), *sizes, "--out-dir", "again", "--irrelevance-donors", "near"]
    )
    assert again.exit_code == 0
    for name in ("train", "val", "test"):
        assert (
            Path(f"again/toolcall/{name}.jsonl").read_bytes()
            == Path(f"02_dataset-near/toolcall/{name}.jsonl").read_bytes()
        )


def read_tools(row: dict[str, Any]) -> list[Any]:
    from slm_swap.types import ToolSpec

    return [ToolSpec(t["name"], t["description"], {}) for t in json.loads(row["tools"])]


def base(name: str) -> str:
    """A tool's name without its copy's suffix."""
    return name.rsplit("_v", 1)[0]


def topic_of(name: str) -> str:
    if base(name) == TWIN[0]:
        return "weather"
    return next(topic for topic, listed in TOPICS.items() if base(name) in {n for n, _ in listed})


# --- the preference step ----------------------------------------------------------------------------------


def test_pairs_are_made_of_the_models_wrong_answers_with_the_gold_chosen(prepared: list[Example]) -> None:
    from slm_swap.data.formats import NO_CALL_REPLY, render_completion
    from slm_swap.train.preference import preference_pairs
    from slm_swap.types import ToolCall

    call_row = next(e for e in prepared if e.gold)
    no_call_row = replace_example(call_row, gold=(), acceptable=(), completion=NO_CALL_REPLY)
    wrong_value = render_completion("toolcall", [ToolCall(call_row.gold[0].name, {"x": "not it"})])
    answers = {
        "right": (call_row, Completion(call_row.completion)),
        "no call where one is": (call_row, Completion("I cannot help with that.")),
        "a wrong value": (call_row, Completion(wrong_value)),
        "a call where none is": (no_call_row, Completion(call_row.completion)),
        "right abstention": (no_call_row, Completion("None of these tools fit.")),
        "failed": (call_row, Completion("", error="timeout")),
    }
    pairs = preference_pairs([e for e, _ in answers.values()], [c for _, c in answers.values()])
    assert [p.rejected for p in pairs] == [
        answers[k][1].text for k in ("no call where one is", "a wrong value", "a call where none is")
    ]
    assert all(
        p.chosen == e.completion for p, e in zip(pairs, (call_row, call_row, no_call_row), strict=True)
    )
    assert pairs[2].mistake and pairs[0].mistake
    row = pairs[0].row()
    assert row["prompt"] == call_row.messages() and row["chosen"][0]["role"] == "assistant"


def replace_example(example: Example, **changes: Any) -> Example:
    from dataclasses import replace

    return replace(example, **changes)


def test_sft_then_dpo_trains_on_the_fine_tuned_models_own_mistakes(workspace: Path, tiny_model: Path) -> None:
    """`train --objective sft+dpo`: the fine-tuned adapter answers its training rows (as it is evaluated),
    every wrong answer is a pair against the gold, and DPO moves the same adapter on from there; the card
    and the pairs file say what it did."""
    from transformers import AutoTokenizer

    from slm_swap.train.card import PAIRS_FILE
    from slm_swap.train.preference import answer_limit, answers_of

    sizes = ["--train-size", "6", "--val-size", "2", "--test-size", "2"]
    assert cli(["prepare", *sizes]).exit_code == 0
    command = ["train", "--track", "toolcall", "--model-path", str(tiny_model), "--max-length", "1024"]
    sft = cli([*command, "--out", "04_ft/sft"])
    assert sft.exit_code == 0, sft.output
    dpo = cli([*command, "--out", "04_ft/dpo", "--objective", "sft+dpo"])
    assert dpo.exit_code == 0, dpo.output
    card = json.loads(Path("04_ft/dpo/slm_swap_adapter.json").read_text())
    assert card["hyperparameters"]["objective"] == "sft+dpo"
    step = card["preference"]
    train = read_examples(Path("02_dataset/toolcall/train.jsonl"))
    assert step["rows"] == len(train) and step["answers"] == "greedy, grammar-constrained"
    assert step["passes"] == "prompt shared"  # every pair read its prompt once
    # The rejected answers are the fine-tuned model's own: the SFT-only adapter (same seed, same rows)
    # gives them again.
    limit = answer_limit(train, AutoTokenizer.from_pretrained(tiny_model))
    split, sft_adapter = Path("02_dataset/toolcall/train.jsonl"), Path("04_ft/sft")
    answers = answers_of(train, track="toolcall", split=split, model_path=tiny_model, adapter=sft_adapter,
                         max_new_tokens=limit, run_file=Path("05_eval/own.json"))  # fmt: skip
    own = {e.id: c.text for e, c in zip(train, answers, strict=True)}
    pairs = [json.loads(line) for line in Path("04_ft/dpo", PAIRS_FILE).read_text().splitlines()]
    assert len(pairs) == step["pairs"] > 0 and step["steps"] > 0
    gold = {e.id: e.completion for e in train}
    assert all(p["rejected"] == own[p["id"]] and p["chosen"] == gold[p["id"]] for p in pairs)
    assert sum(step["mistakes"].values()) == step["pairs"]
    # Its reference is the fine-tuned adapter itself, not the base model: at the first step the two agree,
    # so DPO's loss is log 2 exactly whatever the pair.
    assert step["loss"] == "1 sigmoid" and step["loss_first"] == pytest.approx(math.log(2), abs=1e-4)
    # The step moved the adapter on from the fine-tune's, and the result loads like any adapter.
    assert (
        card["adapter_sha256"]
        != json.loads(Path("04_ft/sft/slm_swap_adapter.json").read_text())["adapter_sha256"]
    )
    assert not Path("04_ft/dpo/ref").exists()  # TRL's frozen reference copy is not saved
    slm = ["--model-kind", "slm", "--model-path", str(tiny_model), "--adapter", "04_ft/dpo"]
    evaluated = cli(["eval", "--track", "toolcall", *slm, "--max-new-tokens", "8"])
    assert evaluated.exit_code == 0, evaluated.output
    native = cli([*command, "--out", "04_ft/n", "--objective", "sft+dpo", "--protocol", "native"])
    assert native.exit_code == 2 and "--objective sft+dpo" in native.output
    # A finished fine-tune takes the step later, without training again: `--resume` goes on from its last
    # checkpoint (the fine-tune's end) to the same pairs and the same adapter as the whole run.
    later = cli([*command, "--out", "04_ft/sft", "--resume", "--objective", "sft+dpo"])
    assert later.exit_code == 0, later.output
    resumed = json.loads(Path("04_ft/sft/slm_swap_adapter.json").read_text())
    assert resumed["steps"] == card["steps"] and resumed["preference"]["pairs"] == step["pairs"]
    assert resumed["adapter_sha256"] == card["adapter_sha256"]
    assert Path("04_ft/sft", PAIRS_FILE).read_text() == Path("04_ft/dpo", PAIRS_FILE).read_text()


def test_an_interrupted_preference_step_goes_on_from_its_answers_and_last_checkpoint(
    workspace: Path, tiny_model: Path
) -> None:
    """The step journals its answers as a run file and checkpoints DPO: `train --resume` after it was cut
    off takes the answers whole and goes on from its last checkpoint to the adapter of an uncut run; a
    checkpoint left by a step on other pairs is not gone on from."""
    from slm_swap.train.card import PAIRS_FILE
    from slm_swap.train.preference import ANSWERS_RUN, STEP_DIR

    assert cli(["prepare", "--train-size", "8", "--val-size", "2", "--test-size", "2"]).exit_code == 0
    command = ["train", "--track", "toolcall", "--model-path", str(tiny_model), "--max-length", "1024",
               "--train-batch-size", "1", "--save-steps", "1",
               "--objective", "sft+dpo", "--out", "04_ft/dpo"]  # fmt: skip
    whole = cli(command)
    assert whole.exit_code == 0, whole.output
    out = Path("04_ft/dpo")
    card = json.loads((out / "slm_swap_adapter.json").read_text())
    steps = card["preference"]["steps"]
    assert steps >= 2, card["preference"]  # one pair a step: a checkpoint to go on from, and a step after
    step = out / STEP_DIR
    answers = json.loads((step / ANSWERS_RUN).read_text())
    assert [r["id"] for r in answers["results"]] == [
        e.id for e in read_examples(Path("02_dataset/toolcall/train.jsonl"))
    ]
    kept = sorted(step.glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
    assert kept[-1].name == f"checkpoint-{steps}"

    # Cut off after its next-to-last step: the card is not written, the last checkpoint not saved.
    (out / "slm_swap_adapter.json").unlink()
    shutil.rmtree(kept[-1])
    went_on_from = (kept[-2] / "trainer_state.json").stat().st_mtime_ns
    resumed = cli([*command, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert (kept[-2] / "trainer_state.json").stat().st_mtime_ns == went_on_from  # gone on from, not remade
    again = json.loads((out / "slm_swap_adapter.json").read_text())
    assert json.loads((step / ANSWERS_RUN).read_text())["meta"]["started_at"] == answers["meta"]["started_at"]
    assert again["preference"]["pairs"] == card["preference"]["pairs"]
    assert again["preference"]["steps"] == steps and again["adapter_sha256"] == card["adapter_sha256"]

    # Pairs that differ from the ones a checkpoint was trained on (here: the pairs file says other pairs,
    # and a checkpoint no trainer could load): the step starts over, to the same adapter.
    (out / "slm_swap_adapter.json").unlink()
    (out / PAIRS_FILE).write_text('{"id": "other"}\n')
    (step / "checkpoint-99").mkdir()
    (step / "checkpoint-99" / "trainer_state.json").write_text("not a checkpoint")
    over = cli([*command, "--resume"])
    assert over.exit_code == 0, over.output
    assert not (step / "checkpoint-99").exists()
    assert json.loads((out / "slm_swap_adapter.json").read_text())["adapter_sha256"] == card["adapter_sha256"]


def test_the_preference_step_makes_one_pass_whatever_the_epochs(workspace: Path, tiny_model: Path) -> None:
    """`--epochs` sets the fine-tune's passes; the preference step passes once over its pairs, since they
    are the answers of the model as the fine-tune left it."""
    assert cli(["prepare", "--train-size", "6", "--val-size", "2", "--test-size", "2"]).exit_code == 0
    trained = cli(["train", "--track", "toolcall", "--model-path", str(tiny_model), "--max-length", "1024",
                   "--epochs", "2", "--objective", "sft+dpo", "--out", "04_ft/dpo"])  # fmt: skip
    assert trained.exit_code == 0, trained.output
    card = json.loads(Path("04_ft/dpo/slm_swap_adapter.json").read_text())
    hyper, step = card["hyperparameters"], card["preference"]
    assert hyper["epochs"] == 2 and step["pairs"] > 0
    per_step = hyper["batch_size"] * hyper["gradient_accumulation"]  # one pair a step, accumulated
    assert step["steps"] == -(-step["pairs"] // per_step)


def test_run_takes_the_recipes_and_its_adapter_card_records_them(azure: object, tiny_model: Path) -> None:
    """The three options through `run`: the splits are made with near donors, and the fine-tune masks
    names and takes the preference step; each is recorded where its output is."""
    from tests.test_pipeline import run

    recipe = ["--irrelevance-share", "0.25", "--irrelevance-donors", "near", "--mask-names", "0.5"]
    output = run(tiny_model, "--tracks", "toolcall", *recipe, "--objective", "sft+dpo")
    assert "train toolcall:" in output
    manifest = json.loads(Path("02_dataset/prepared.json").read_text())
    assert (
        manifest["inputs"]["irrelevance_donors"] == "near" and manifest["inputs"]["irrelevance_share"] == 0.25
    )
    card = json.loads(Path("04_ft/adapter_toolcall/slm_swap_adapter.json").read_text())
    assert card["hyperparameters"]["mask_names"] == 0.5 and card["hyperparameters"]["objective"] == "sft+dpo"
    assert card["preference"]["rows"] == 4
    # The same recipe again keeps the adapter; the identity rule holds the recipe.
    again = run(tiny_model, "--tracks", "toolcall", *recipe, "--objective", "sft+dpo")
    assert "train toolcall: 04_ft/adapter_toolcall kept" in again


def test_the_shared_prompt_pass_gives_trls_loss_and_gradients(
    workspace: Path, tiny_model: Path, tiny_adapter: Path
) -> None:
    """The preference step reads each pair's prompt once (prompt + chosen + rejected as one sequence, the
    rejected answer masked from the chosen one): on a batch of pairs of unequal lengths, padded as TRL
    pads them, its loss, gradients and rewards are TRL's own, with the policy moved off its reference."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    from slm_swap.train.config import TrainConfig
    from slm_swap.train.preference import Pair, preference_trainer

    assert cli(["prepare", "--train-size", "6", "--val-size", "2", "--test-size", "2"]).exit_code == 0
    split = Path("02_dataset/toolcall/train.jsonl")
    rows = read_examples(split)
    # Each row's gold answer chosen over another row's (answers of other lengths, a no-call one among them).
    pairs = [
        Pair(e.id, "wrong_value", e.messages(), e.completion, rows[(i + 1) % len(rows)].completion)
        for i, e in enumerate(rows)
    ]
    assert len({len(p.rejected) for p in pairs}) > 1
    config = TrainConfig(track="toolcall", train=split, val=Path("02_dataset/toolcall/val.jsonl"),
                         out=Path("04_ft/p"), model_path=tiny_model, max_length=1024)  # fmt: skip
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_model), str(tiny_adapter), is_trainable=True
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    trainer = preference_trainer(model, tokenizer, pairs, config, cuda=False, bf16=False)
    trainable = {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}
    assert trainable and all(".default." in n for n in trainable)  # the "ref" copy stays frozen
    torch.manual_seed(3)
    with torch.no_grad():  # the policy off its reference, so that the log-ratios are not zero
        for p in trainable.values():
            p.add_(0.05 * torch.randn_like(p))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
    assert (batch["attention_mask"] == 0).any()  # padded rows
    trainer.model.train()

    def step(compute: Callable[..., Any]) -> tuple[float, dict[str, Any]]:
        trainer.model.zero_grad()
        loss = compute(trainer, trainer.model, batch)
        loss.backward()
        return float(loss), {n: p.grad.clone() for n, p in trainable.items()}

    shared_loss, shared_grads = step(type(trainer).compute_loss)
    assert trainer.shared_batches == 1 and trainer.other_batches == 0
    trl_loss, trl_grads = step(DPOTrainer.compute_loss)
    assert abs(shared_loss - math.log(2)) > 1e-3  # the policy is not its reference
    # Summed log-likelihoods here are about 1e3, where float32 resolves 1e-4: the rewards and loss (beta = 0.1
    # times differences of such sums) agree to about 1e-5, whatever order the two passes add in.
    assert shared_loss == pytest.approx(trl_loss, abs=1e-4)
    for name, grad in shared_grads.items():  # each gradient within float32 rounding of TRL's, as a whole
        assert float((grad - trl_grads[name]).norm()) <= 1e-4 * float(trl_grads[name].norm()), name
    assert any(g.abs().max() > 0 for g in shared_grads.values())
    ours = trainer._shared_logs
    theirs = trainer._metrics["train"]
    for key in ("logps/chosen", "logps/rejected"):
        assert ours[key][0] == pytest.approx(theirs[key][0], rel=1e-6), key
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert ours[key][0] == pytest.approx(theirs[key][0], abs=1e-4), key
