"""BFCL through slm-swap's own commands: `prepare --source bfcl`, then `eval`.

For each category (`--rows` test rows each, seed 42; `--irrelevance-rows` for the two irrelevance
categories, whose right answer is no call), each track and each decoding mode (free and
grammar-constrained), prints ast_match (and, on the structured track, exact_match) for the AST categories
and abstention for the irrelevance ones, with Wilson 95% intervals and seconds per example, and writes the
table as Markdown (`--out`, default bfcl.md).

`--protocols prompt native` asks the toolcall track both ways on the same rows (`--protocol`; the
structured track has no native form on a local model, `docs/protocol.md`). The embedded model's chat
template cannot render tools; `--chat-template FILE` evaluates a copy of the checkpoint carrying that
template instead (e.g. tests/data/templates/hermes.jinja, a Hermes-style tool template the model was not
trained on), for what the native path costs in time.

    python bench/bfcl.py [--rows 40] [--irrelevance-rows 240] [--categories simple_python irrelevance ...]
                         [--modes free constrained] [--protocols prompt native] [--chat-template FILE]
                         [--model-path DIR] [--adapter DIR] [--work bench-bfcl]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from math import sqrt
from pathlib import Path

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")
NO_CALL_CATEGORIES = ("irrelevance", "live_irrelevance")  # the right answer is no call: abstention
TRACKS = ("toolcall", "structured")


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, centre - half), min(1.0, centre + half)


def slm_swap(*args: str) -> str:
    """Runs one slm-swap command with tracing off; its output, or the benchmark stops with it."""
    env = {**os.environ, "LANGFUSE_DISABLED": "1"}
    done = subprocess.run([sys.executable, "-m", "slm_swap", *args], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"slm-swap {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def share(hits: int, n: int) -> str:
    """`hits/n [low, high]`, with the Wilson 95% interval."""
    low, high = wilson(hits, n)
    return f"{hits}/{n} [{low:.2f}, {high:.2f}]"


def cell(results: list[dict[str, object]], metric: str) -> str:
    return share(sum(int(r["metrics"][metric] == 1.0) for r in results), len(results))  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=40)
    parser.add_argument(
        "--categories", nargs="+", default=list(CATEGORIES), choices=CATEGORIES + NO_CALL_CATEGORIES
    )
    parser.add_argument(
        "--irrelevance-rows",
        type=int,
        default=240,
        help="rows of each irrelevance category (irrelevance has 240, live_irrelevance 880; seed 42)",
    )
    parser.add_argument(
        "--modes", nargs="+", default=["free", "constrained"], choices=["free", "constrained"]
    )
    parser.add_argument("--tracks", nargs="+", default=list(TRACKS), choices=TRACKS)
    parser.add_argument(
        "--protocols", nargs="+", default=["prompt"], choices=["prompt", "native"], help="toolcall only"
    )
    parser.add_argument("--chat-template", type=Path, help="a chat template for a copy of the checkpoint")
    parser.add_argument("--model-path", help="the SLM checkpoint [default: the embedded model]")
    parser.add_argument("--adapter", help="a LoRA adapter to evaluate with")
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--work", type=Path, default=Path("bench-bfcl"))
    parser.add_argument("--out", type=Path, default=Path("bfcl.md"))
    args = parser.parse_args()

    model = ["--model-path", args.model_path] if args.model_path else []
    if args.chat_template:
        model = ["--model-path", str(with_template(args.model_path, args.chat_template, args.work))]
    adapter = ["--adapter", args.adapter] if args.adapter else []
    header = "| category | track | decoding | protocol | metric | share (95% CI) | exact_match (95% CI) |"
    rows = [header + " s / example |", "|---|---|---|---|---|---|---|---|"]
    for category in args.categories:
        data = args.work / category / "02_dataset"
        no_call = category in NO_CALL_CATEGORIES
        n = args.irrelevance_rows if no_call else args.rows
        sizes = ["--train-size", "0", "--val-size", "0", "--test-size", str(n)]
        slm_swap("prepare", "--source", "bfcl", "--bfcl-category", category, "--out-dir", str(data), *sizes)
        asked = [
            (track, mode, protocol)
            for track in args.tracks
            for mode in args.modes
            for protocol in (args.protocols if track == "toolcall" else ["prompt"])
        ]
        for track, mode, protocol in asked:
            out = args.work / category / f"{track}_{mode}{'_native' * (protocol == 'native')}.json"
            start = time.perf_counter()
            flags = ["--constrained"] if mode == "constrained" else []
            flags += ["--protocol", protocol]
            slm_swap(
                "eval",
                "--track",
                track,
                "--model-kind",
                "slm",
                "--dataset-dir",
                str(data),
                "--out",
                str(out),
                "--max-new-tokens",
                str(args.max_new_tokens),
                "--force",
                *model,
                *adapter,
                *flags,
            )
            seconds = time.perf_counter() - start
            results = json.loads(out.read_text())["results"]
            metric = "abstention" if no_call else "ast_match"
            exact = cell(results, "exact_match") if track == "structured" and not no_call else "—"
            line = (
                f"| {category} | {track} | {mode} | {protocol} | {metric} | {cell(results, metric)} | "
                f"{exact} | {seconds / len(results):.2f} |"
            )
            print(line, flush=True)
            rows.append(line)
    args.out.write_text("\n".join(rows) + "\n")
    print(f"wrote {args.out} (seconds per example include loading the model once per run)")


def with_template(model_path: str | None, template: Path, work: Path) -> Path:
    """A copy of the checkpoint (default: the embedded model) that carries `template` as its chat
    template."""
    from slm_swap.local.models import resolve_model_path

    source = resolve_model_path(model_path)
    copy = work / f"{source.name}-{template.stem}"
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(source, copy)
    (copy / "chat_template.jinja").write_text(template.read_text())
    config = copy / "tokenizer_config.json"
    data = json.loads(config.read_text())
    data.pop("chat_template", None)  # chat_template.jinja is read only when the config has none
    config.write_text(json.dumps(data, indent=2))
    return copy


if __name__ == "__main__":
    main()
