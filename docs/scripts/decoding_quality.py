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

    python docs/scripts/decoding_quality.py --model builtin --split test --count 100 --samples 8 [--jobs 2]
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # side_by_side; --jobs workers import this file by name

from trainer.compare import compare_table  # noqa: E402
from trainer.evaluate import EvalConfig, saved_eval  # noqa: E402

from side_by_side import side_by_side  # noqa: E402

MODES = ("sequential", "jacobi")


def evaluate(mode: str, args) -> dict:
    return saved_eval(EvalConfig(model=args.model, prompts=f"shapeworld:{args.split}", count=args.count,
                                 samples=args.samples, sample_seed=args.seed, device=args.device,
                                 output=str(Path(args.out) / f"{mode}.json"), image_decoding=mode,
                                 max_batch=args.max_batch))


def table(runs: dict[str, dict], args) -> str:
    return f"`{args.model}`, seed {args.seed}: " + compare_table({mode: runs[mode] for mode in MODES}, seed=args.seed)


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
    parser.add_argument("--jobs", type=int, default=1, help="2: both evaluations at once, one core each")
    parser.add_argument("--out", default="runs/decoding-quality")
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    text = table(dict(zip(MODES, side_by_side(functools.partial(evaluate, args=args), MODES, args.jobs))), args)
    (Path(args.out) / "table.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
