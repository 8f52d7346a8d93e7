"""Can the model's own likelihoods tell a row whose right answer is no call from one that wants a call?

Rule 0 of constrained decoding (`stops.py`) chooses, at the answer's start, between the no-call answer
(toolcall: `NO_CALL_REPLY` and the end; structured: `]}` after `{"calls": [`) and the opening of a first
call, on the model's log-likelihood of each. This script scores both ways on BFCL rows through the same
prompts `eval` uses (`prepare --source bfcl`, the model's chat template), without generating, and prints
for each candidate rule how often it chooses no call on the irrelevance rows (where that is right) and on
the AST rows (where it costs a call):

- `sum`: the total log-likelihood of each way (today's rule);
- `mean`: the mean log-likelihood per token of each way (no penalty on the longer way);
- `first`: the log-probability of each way's first token only (what greedy decoding restricted to the
  two ways would choose).

It also prints the area under the ROC curve of the margin (no call minus call) for telling irrelevance
rows from AST rows: 0.5 is chance, and an area near 0.5 means no threshold on that margin, however
chosen, can let the model abstain on irrelevance without abstaining on as many rows that want a call.

    python bench/abstain_rule.py [--rows 40] [--irrelevance-rows 240] [--tracks toolcall structured]
                                 [--model-path DIR] [--adapter DIR] [--work bench-abstain]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

CALL_CATEGORIES = ("simple_python", "multiple")
NO_CALL_CATEGORY = "irrelevance"
RULES = ("sum", "mean", "first")


def prepare(category: str, rows: int, work: Path) -> Path:
    data = work / category / "02_dataset"
    if not data.exists():
        sizes = ["--train-size", "0", "--val-size", "0", "--test-size", str(rows)]
        command = [
            sys.executable,
            "-m",
            "slm_swap",
            "prepare",
            "--source",
            "bfcl",
            "--bfcl-category",
            category,
        ]
        subprocess.run(
            [*command, "--out-dir", str(data), *sizes],
            check=True,
            env={**os.environ, "LANGFUSE_DISABLED": "1"},
        )
    return data


def auc(positives: list[float], negatives: list[float]) -> float:
    """The probability that a positive's margin is above a negative's (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40, help="rows of each AST category (seed 42)")
    parser.add_argument("--irrelevance-rows", type=int, default=240)
    parser.add_argument("--tracks", nargs="+", default=["toolcall", "structured"])
    parser.add_argument("--model-path", type=Path, help="the SLM checkpoint [default: the embedded model]")
    parser.add_argument("--adapter", type=Path, help="a LoRA adapter to score with")
    parser.add_argument("--work", type=Path, default=Path("bench-abstain"))
    args = parser.parse_args()

    import torch

    from slm_swap.files import read_examples
    from slm_swap.local.engine import Engine
    from slm_swap.local.models import resolve_model_path
    from slm_swap.local.stops import WAYS

    engine = Engine(resolve_model_path(args.model_path), {"adapter": args.adapter} if args.adapter else {})
    model, tokenizer = engine.llm, engine.tokenizer
    eos = tokenizer.eos_token_id

    def ids(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def way_scores(prefix: list[int], ways: list[list[int]]) -> list[list[float]]:
        """Per way, the log-probability of each of its tokens after the tokens `prefix`."""
        out = []
        with torch.inference_mode():
            for way in ways:
                logits = model(input_ids=torch.tensor([prefix + way]), logits_to_keep=len(way) + 1).logits
                log_probs = torch.log_softmax(logits[0].float(), dim=-1)
                out.append([float(log_probs[j, t]) for j, t in enumerate(way)])
        return out

    categories = [*CALL_CATEGORIES, NO_CALL_CATEGORY]
    sizes = {c: args.rows for c in CALL_CATEGORIES} | {NO_CALL_CATEGORY: args.irrelevance_rows}
    print(
        "| track | rule | abstains on irrelevance | abstains on simple_python | abstains on multiple | AUC |"
    )
    print("|---|---|---|---|---|---|")
    for track in args.tracks:
        ways = WAYS[track]  # type: ignore[index]
        # Each way is tokenised on its own, after the prompt and the answer's start, as the stop rule
        # scores it (`{"calls": []}` as one string would merge ` [` and `]` into one token).
        answer_start = ids("" if track == "toolcall" else '{"calls": [')
        no_call = [*ids(ways.no_call), eos]
        first = ids(ways.first)
        margins: dict[str, dict[str, list[float]]] = {rule: {} for rule in RULES}
        for category in categories:
            examples = read_examples(prepare(category, sizes[category], args.work) / track / "test.jsonl")
            for rule in RULES:
                margins[rule][category] = []
            with engine.using(None if not args.adapter else "adapter"):
                for example in examples:
                    a, b = way_scores(ids(engine.render(example.messages())) + answer_start, [no_call, first])
                    margins["sum"][category].append(sum(a) - sum(b))
                    margins["mean"][category].append(sum(a) / len(a) - sum(b) / len(b))
                    margins["first"][category].append(a[0] - b[0])
        for rule in RULES:
            m = margins[rule]
            shares = [f"{sum(x > 0 for x in m[c])}/{len(m[c])}" for c in categories]
            area = auc(m[NO_CALL_CATEGORY], m[CALL_CATEGORIES[0]] + m[CALL_CATEGORIES[1]])
            print(f"| {track} | {rule} | {shares[2]} | {shares[0]} | {shares[1]} | {area:.2f} |", flush=True)


if __name__ == "__main__":
    main()
