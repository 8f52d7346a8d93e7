"""slm-swap at the full dataset's size: prepare, replay eval, compare and report at 6,000 and 60,000 rows.

Generated one-tool conversations in OpenAI's chat format (`prepare --source openai`, every row into the
test split), replayed twice (a "hosted" side answering with the gold, an "SLM" side wrong on every third
row), compared and reported. Each command runs as its own process; the table gives its wall time, its
peak memory (the process's maximum resident set) and the size of what it wrote, at each size, and the
ratio 60k / 6k (linear cost: about 10); then the time of McNemar's exact test on a million discordant
pairs.

    python bench/scale.py [--sizes 6000 60000] [--work bench-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

CITIES = ["Paris", "Lima", "Oslo", "Pune", "Cairo", "Quito", "Hanoi", "Accra", "Perth", "Riga"]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "units": {"type": "string", "enum": ["C", "F"]}},
            "required": ["city"],
        },
    },
}


@dataclass(frozen=True)
class Measured:
    seconds: float
    peak_mb: float
    output_mb: float


def conversations(n: int, path: Path) -> None:
    """n one-tool conversations, each answered with one call."""
    rng = random.Random(42)
    with path.open("w") as f:
        for i in range(n):
            city = rng.choice(CITIES)
            call = {
                "id": f"c{i}",
                "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": city})},
            }
            row = {
                "id": f"row-{i}",
                "messages": [
                    {"role": "user", "content": f"What is the weather like in {city} today? (request {i})"},
                    {"role": "assistant", "content": None, "tool_calls": [call]},
                ],
                "tools": [TOOL],
            }
            f.write(json.dumps(row) + "\n")


def predictions(split: Path, path: Path, *, wrong_every: int) -> None:
    """Replay outputs for every example of `split`: its gold, or prose for every `wrong_every`-th row."""
    with split.open() as rows, path.open("w") as f:
        for i, line in enumerate(rows):
            example = json.loads(line)
            output = "I cannot tell." if wrong_every and i % wrong_every == 0 else example["completion"]
            usage = {"prompt_tokens": 120, "completion_tokens": 18}
            f.write(
                json.dumps(
                    {"id": example["id"], "output": output, "latency_s": 0.2 + (i % 50) / 100, "usage": usage}
                )
                + "\n"
            )


def measure(work: Path, args: list[str], outputs: list[Path]) -> Measured:
    """Runs `slm-swap ARGS` in `work` as a child process: its wall time, peak memory and output size."""
    env = {**os.environ, "LANGFUSE_DISABLED": "1"}
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "slm_swap", *args],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    out, err = child.communicate()
    if os.waitstatus_to_exitcode(status) not in (0, 10):  # 10: compare's FINE_TUNE=1
        raise SystemExit(f"slm-swap {' '.join(args)} failed:\n{out.decode()}\n{err.decode()}")
    size = sum((work / p).stat().st_size for p in outputs) / 1e6
    return Measured(seconds, usage.ru_maxrss / 1024, size)  # ru_maxrss is in KiB on Linux


def at_size(n: int, work: Path) -> dict[str, Measured]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    conversations(n, work / "log.jsonl")
    found: dict[str, Measured] = {}
    split = Path("02_dataset/toolcall/test.jsonl")
    sizes = ["--train-size", "0", "--val-size", "0", "--test-size", str(n)]
    found["prepare --source openai"] = measure(
        work, ["prepare", "--source", "openai", "--dataset-path", "log.jsonl", *sizes], [split]
    )
    predictions(work / split, work / "hosted.jsonl", wrong_every=0)
    predictions(work / split, work / "slm.jsonl", wrong_every=3)
    runs = {}
    for side in ("hosted", "slm"):
        runs[side] = Path(f"05_eval/{side}.json")
        args = ["eval", "--track", "toolcall", "--model-kind", "replay", "--predictions", f"{side}.jsonl"]
        found[f"eval --model-kind replay ({side})"] = measure(
            work, [*args, "--out", str(runs[side])], [runs[side]]
        )
    decision = Path("05_eval/toolcall_decision.json")
    compare = ["compare", "--track", "toolcall", "--azure", str(runs["hosted"]), "--slm", str(runs["slm"])]
    found["compare"] = measure(work, compare, [decision])
    found["report"] = measure(work, ["report"], [Path("05_eval/report.html"), Path("05_eval/report.md")])
    return found


def mcnemar_times() -> str:
    """McNemar's exact test on the largest tables asked of it: the slowest of a few, in milliseconds."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from slm_swap.compare import mcnemar_exact

    tables = [(499_000, 501_000), (0, 1_000_000), (250_000, 750_000), (2_500, 2_500), (10_000, 10_000)]
    worst = 0.0
    for b, c in tables:
        start = time.perf_counter()
        mcnemar_exact(b, c)
        worst = max(worst, time.perf_counter() - start)
    return f"McNemar's exact test, tables up to 1,000,000 discordant pairs: at most {worst * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[6000, 60000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--work", type=Path, default=Path("bench-scale"))
    args = parser.parse_args()
    small, large = args.sizes
    results = {n: at_size(n, args.work / str(n)) for n in (small, large)}
    print(
        f"| command | {small:,}: time, peak, output | {large:,}: time, peak, output | ratio time / memory |"
    )
    print("|---|---|---|---|")
    for command in results[small]:
        a, b = results[small][command], results[large][command]
        print(
            f"| {command} | {a.seconds:.1f} s, {a.peak_mb:.0f} MB, {a.output_mb:.1f} MB | "
            f"{b.seconds:.1f} s, {b.peak_mb:.0f} MB, {b.output_mb:.1f} MB | "
            f"{b.seconds / a.seconds:.1f} / {b.peak_mb / a.peak_mb:.1f} |"
        )
    print(mcnemar_times())


if __name__ == "__main__":
    main()
