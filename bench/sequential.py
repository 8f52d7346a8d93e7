"""Sequential evaluation against evaluating every row: error rate, agreement and rows used.

For each pool of paired outcomes, the rows are shuffled `--orderings` times (seeded); each ordering is
evaluated as `run --max-test-size` does (`--first` rows, then twice as many each round), with the
confidence sequence of `slm_swap.sequential` checked after each round and evaluation stopped when every
core metric is settled against `--delta`. For each pool it prints:

* agreement: how often the sequential rule verdict (per metric, trails or not) equals the verdict of
  `compare` on all rows of the pool;
* error: how often a metric the sequence settled is settled on the wrong side of delta, against the truth
  (the pool's own mean difference, which every row gives);
* rows: the mean share of the pool evaluated, and the shares stopped early.

Pools: the run files of two evaluations of the same rows (`--runs A.json B.json`, any number of pairs;
e.g. bench/bfcl.py's toolcall_constrained.json and toolcall_constrained_native.json of one category),
paired on their core metrics, no model called; and synthetic pools of 0/1 outcomes whose difference lies
at given distances from delta (`--synthetic`), where errors are likeliest. Then, as a check of
`power.rows_needed`, the share of fixed-n evaluations at the rows it names that settle the metric.

    python bench/sequential.py [--runs A.json B.json ...] [--synthetic] [--orderings 200] [--first 8]
                               [--delta 0.01]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from slm_swap.compare import compare
from slm_swap.power import bounds, interval, power
from slm_swap.runs import read_run
from slm_swap.scoring.metrics import core_metrics
from slm_swap.sequential import confidence_sequence, rounds


def sequential(diffs: dict[str, np.ndarray], first: int, delta: float) -> tuple[int, dict[str, bool | None]]:
    """One ordering: rows used, and per metric the side it was settled on (True: trails) or None."""
    n = len(next(iter(diffs.values())))
    settled: dict[str, bool | None] = {}
    for rows in rounds(first, n):
        settled = {}
        for metric, d in diffs.items():
            cs = confidence_sequence(d[:rows], n)
            settled[metric] = True if cs.low > delta else False if cs.high <= delta else None
        if all(v is not None for v in settled.values()):
            return rows, settled
    return n, settled


def simulate(name: str, diffs: dict[str, np.ndarray], orderings: int, first: int, delta: float) -> str:
    """The table row for one pool."""
    n = len(next(iter(diffs.values())))
    truth = {m: float(d.mean()) > delta for m, d in diffs.items()}
    whole = {m: interval(d) for m, d in diffs.items()}  # `compare` on all rows
    all_rows = {m: float(d.mean()) > delta + 1e-12 for m, d in diffs.items()}
    rng = np.random.default_rng(42)
    used, agree, wrong, early = [], 0, 0, 0
    start = time.perf_counter()
    for _ in range(orderings):
        order = rng.permutation(n)
        rows, settled = sequential({m: d[order] for m, d in diffs.items()}, first, delta)
        seen = {m: d[order][:rows] for m, d in diffs.items()}
        verdict = {m: settled[m] if settled[m] is not None else float(seen[m].mean()) > delta for m in diffs}
        agree += verdict == all_rows
        wrong += any(settled[m] is not None and settled[m] != truth[m] for m in diffs)
        early += rows < n
        used.append(rows / n)
    differences = ", ".join(f"{m} {float(d.mean()):+.3f}" for m, d in diffs.items())
    unsettled = [m for m, ci in whole.items() if not ci.settled(delta)]
    return (
        f"| {name} | {n} | {differences} | {', '.join(unsettled) or 'none'} | "
        f"{agree / orderings:.3f} | {wrong / orderings:.3f} | {np.mean(used):.2f} | "
        f"{early / orderings:.2f} | {(time.perf_counter() - start) / orderings:.2f} |"
    )


def from_runs(a: Path, b: Path) -> dict[str, np.ndarray]:
    """Paired differences a − b per core metric over the rows both runs hold, in a's order."""
    run_a, run_b = read_run(a), read_run(b)
    compare(run_a, run_b, 0.0)  # refuses runs that are not of the same rows of the same split
    by_id = {r.id: r for r in run_b.results}
    out = {}
    for metric in core_metrics(run_a.meta.track, list(run_a.summary.metrics)):
        pairs = [
            r.metrics[metric] - by_id[r.id].metrics[metric]
            for r in run_a.results
            if metric in r.metrics and metric in by_id[r.id].metrics
        ]
        out[metric] = np.array(pairs)
    return {m: d for m, d in out.items() if len(d) == len(run_a.results)}  # metrics of every row


def synthetic(n: int, hosted_only: float, slm_only: float, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    k12, k21 = round(n * hosted_only), round(n * slm_only)
    values = np.array([1.0] * k12 + [-1.0] * k21 + [0.0] * (n - k12 - k21))
    return {"x": rng.permutation(values)}


def power_check(delta: float) -> list[str]:
    """`power.rows_needed` from a 50,000-row pilot, then the share of 20,000 fixed-n evaluations at that
    many rows that settle the metric (the promise: 80%)."""
    rng = np.random.default_rng(7)
    lines = ["| hosted only | SLM only | rows needed | settled at those rows |", "|---|---|---|---|"]
    for p12, p21 in [(0.3, 0.1), (0.15, 0.05), (0.2, 0.15), (0.05, 0.0)]:
        pilot = rng.choice([1.0, -1.0, 0.0], size=50_000, p=[p12, p21, 1 - p12 - p21])
        rows = power(pilot, delta).rows_needed
        if rows is None:
            continue
        counts = rng.multinomial(rows, [p12, p21, 1 - p12 - p21], size=20_000)
        low, high = bounds(counts[:, 0] - counts[:, 1], counts[:, 0] + counts[:, 1], rows)
        share = float(((low > delta) | (high <= delta)).mean())
        lines.append(f"| {p12} | {p21} | {rows:,} | {share:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", type=Path, default=[], help="pairs of run files: A B [A B ...]")
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--orderings", type=int, default=200)
    parser.add_argument("--first", type=int, default=8)
    parser.add_argument("--delta", type=float, default=0.01)
    args = parser.parse_args()
    if len(args.runs) % 2:
        parser.error("--runs takes pairs of run files")
    print(
        "| pool | rows | difference (all rows) | unsettled on all rows | agreement | error | "
        "mean share used | stopped early | s / ordering |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for a, b in zip(args.runs[::2], args.runs[1::2], strict=True):
        name = f"{a.parent.name}: {a.stem} − {b.stem}"
        print(simulate(name, from_runs(a, b), args.orderings, args.first, args.delta), flush=True)
    if args.synthetic:
        for n, p12, p21 in [
            (400, 0.20, 0.05),  # far above delta
            (400, 0.10, 0.05),  # above
            (400, 0.06, 0.04),  # near delta, above
            (400, 0.05, 0.05),  # equal: just below delta
            (400, 0.02, 0.0),  # small, above
            (1000, 0.04, 0.02),
        ]:
            pool = synthetic(n, p12, p21, 1)
            print(simulate(f"synthetic {p12:.2f}/{p21:.2f}", pool, args.orderings, args.first, args.delta))
    print()
    print("\n".join(power_check(args.delta)))


if __name__ == "__main__":
    main()
