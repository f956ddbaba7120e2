"""Does speculative Jacobi decoding change what the model draws? Sequential vs Jacobi on the same scenes.

Runs ``gotr1-train eval`` twice on one evaluation split — image tokens drawn
sequentially, then by speculative Jacobi decoding — with the same seed, so
both runs plan the same chains (the text stage is the same) and differ only in
how the image stage draws. The acceptance rule promises the same distribution;
this measures it where it matters: fully correct by the render-back judge
(the independent one) and the exact judge, distinct images and layouts, each
with its 95 % interval over scenes, and the paired difference per scene
(Jacobi − sequential) with its interval: an interval that holds 0 is what
"quality unchanged" means here. Each eval's JSON is kept in ``--out``; a rerun
reuses them.

    python docs/scripts/decoding_quality.py --model builtin --split test --count 100 --samples 8
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from trainer.evaluate import EvalConfig, run_eval  # noqa: E402
from trainer.intervals import bootstrap_interval, paired_difference  # noqa: E402

MODES = ("sequential", "jacobi")
FIGURES = (("renderback_correct", "render-back correct", 100), ("correct", "exact correct", 100),
           ("distinct_images", "distinct images", 1), ("distinct_layouts", "distinct layouts", 1))


def evaluate(mode: str, args) -> dict:
    path = Path(args.out) / f"{mode}.json"
    if not path.exists():
        run_eval(EvalConfig(model=args.model, prompts=f"shapeworld:{args.split}", count=args.count,
                            samples=args.samples, sample_seed=args.seed, device=args.device, output=str(path),
                            image_decoding=mode, max_batch=args.max_batch))
    return json.loads(path.read_text(encoding="utf-8"))


def table(runs: dict[str, dict], args) -> str:
    rows = {mode: runs[mode]["per_scene"] for mode in MODES}
    if [r["prompt"] for r in rows["sequential"]] != [r["prompt"] for r in rows["jacobi"]]:
        raise ValueError("the two runs judged different scenes")
    lines = [f"`{args.model}`, `{args.split}`: {len(rows['sequential'])} scenes × {args.samples} samples, seed "
             f"{args.seed}; 95 % bootstrap intervals over scenes", "",
             "| figure | sequential | Jacobi | Jacobi − sequential (paired; tie: the interval holds 0) |", "|---|---|---|---|"]
    for key, name, scale in FIGURES:
        values = {mode: np.array([r[key] for r in rows[mode]], dtype=float) * scale for mode in MODES}
        cells = []
        for mode in MODES:
            low, high = bootstrap_interval(values[mode], seed=args.seed)
            cells.append(f"{values[mode].mean():.1f} [{low:.1f}, {high:.1f}]" if scale == 100
                         else f"{values[mode].mean():.2f} [{low:.2f}, {high:.2f}]")
        paired = paired_difference(values["jacobi"], values["sequential"], seed=args.seed)
        digits = 1 if scale == 100 else 2
        cells.append(f"{paired['difference']:+.{digits}f} [{paired['low']:+.{digits}f}, {paired['high']:+.{digits}f}]"
                     + (" tie" if paired["tie"] else ""))
        lines.append(f"| {name}{' (%)' if scale == 100 else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--split", default="test")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-batch", type=int, default=8, dest="max_batch",
                        help="images drawn at once (Jacobi pays on the CPU at small batches)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="runs/decoding-quality")
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    text = table({mode: evaluate(mode, args) for mode in MODES}, args)
    (Path(args.out) / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
