"""The retrained built-in model's figures, as the tables of docs/shapeworld.md, and its targets met or missed.

Reads the evaluation files ``docs/scripts/retrain_builtin.sh`` writes
(``EVALS/{sft,grpo,grpo-train-only}-{split}.json``, 300 fixed scenes × 8
samples each, and ``EVALS/grpo-plans-{split}.json``) and prints, in markdown:

* the shipped model per split — fully correct by the render-back judge (not
  the reward) and the exact judge (the reward) with 95 % intervals over
  scenes, how often they agree, and its variety beside the world sampler's;
* SFT against both GRPO models, paired per scene (``gotr1-train compare``);
* plan following per kind of plan handed over;
* each target of the retraining, met or missed and by how much.

    python docs/scripts/model_report.py [--evals runs/eval] [--output report.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the ablation script's diversity floor

from trainer.compare import compare, compare_table  # noqa: E402
from trainer.evaluate import PLAN_KINDS  # noqa: E402

from grpo_ablation import FLOOR_LAYOUTS, FLOOR_SHARE  # noqa: E402

SPLITS = ("test", "heldout", "zeroshot")
MODELS = {"sft": "SFT", "grpo": "GRPO", "grpo-train-only": "GRPO, train prompts only"}
PLAN_NAMES = {"model": "a new scene's layout, the model's own wording", "prose": "the same with prose around the tags",
              "free": "boxes at arbitrary integer coordinates and sizes",
              "edit": "the model's own plan, one box moved or resized"}
TARGETS = {"test": 0.95, "heldout": 0.92}  # fully correct by the render-back judge
PLAN_TARGET = 0.90


def load(evals: Path, name: str) -> dict:
    path = evals / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `bash docs/scripts/retrain_builtin.sh` first")
    return json.loads(path.read_text(encoding="utf-8"))


def share(figures: dict, key: str) -> str:
    low, high = figures[f"{key}_ci"]
    return f"{100 * figures[key]:.1f} % [{100 * low:.1f}, {100 * high:.1f}]"


def plan_cell(plans: dict, kind: str) -> str:
    if not plans[f"plans/{kind}/count"]:
        return "— (no plan of this kind could be made)"
    figures = {key: plans[f"plans/{kind}/{key}"] for key in ("renderback_correct", "renderback_correct_ci", "correct",
                                                             "r_ri")}
    return f"{share(figures, 'renderback_correct')} / {100 * figures['correct']:.1f} % / {figures['r_ri']:.2f}"


def split_table(evals: Path, model: str) -> str:
    lines = ["| split | render-back judge | exact judge (the reward) | judges agree | distinct layouts in 8 (world) | "
             "distinct images in 8 | pairwise layout distance (world) | coverage of the world's layouts (world) |",
             "|---|---|---|---|---|---|---|---|"]
    for split in SPLITS:
        f = load(evals, f"{model}-{split}")
        lines.append(
            f"| `{split}` | {share(f, 'renderback_correct')} | {share(f, 'correct')} | {100 * f['judges_agree']:.1f} % | "
            f"{f['diversity/distinct_layouts']:.1f} ({f['diversity/world/distinct_layouts']:.1f}) | "
            f"{f['diversity/distinct_images']:.1f} | {f['diversity/pairwise_distance']:.2f} "
            f"({f['diversity/world/pairwise_distance']:.2f}) | {f['diversity/coverage']:.2f} "
            f"({f['diversity/world/coverage']:.2f}) |")
    return "\n".join(lines)


def plans_table(evals: Path, model: str) -> str:
    lines = ["| plan given | " + " | ".join(f"`{s}`" for s in SPLITS) + " |", "|---|---|---|---|"]
    plans = {split: load(evals, f"{model}-plans-{split}") for split in SPLITS}
    for kind in PLAN_KINDS:
        lines.append(f"| {PLAN_NAMES[kind]} | " + " | ".join(plan_cell(plans[s], kind) for s in SPLITS) + " |")
    return "\n".join(lines)


def targets(evals: Path) -> list[str]:
    """One line per target: met or missed, and by how much."""
    out = []

    def line(ok: bool, text: str) -> None:
        out.append(f"* {'met' if ok else 'MISSED'}: {text}")

    for split, goal in TARGETS.items():
        got = load(evals, f"grpo-{split}")["renderback_correct"]
        line(got >= goal, f"`{split}` fully correct by the render-back judge {got:.1%} (target {goal:.0%}, "
                          f"{100 * (got - goal):+.1f} points)")
    runs = {m: load(evals, f"{m}-zeroshot") for m in ("sft", "grpo")}
    diff = compare(runs)["renderback_correct"]["minus_base"]["grpo"]
    line(diff["low"] >= -1, f"`zeroshot` GRPO − SFT {diff['difference']:+.1f} points [{diff['low']:+.1f}, "
                            f"{diff['high']:+.1f}] (lower bound must be >= -1; goal +10)")
    for split in SPLITS:
        f = load(evals, f"grpo-{split}")
        layouts, pairwise = f["diversity/distinct_layouts"], f["diversity/pairwise_distance"]
        world = f["diversity/world/pairwise_distance"]
        line(layouts >= FLOOR_LAYOUTS, f"`{split}` distinct layouts {layouts:.2f} in 8 (floor {FLOOR_LAYOUTS:g})")
        line(pairwise >= FLOOR_SHARE * world, f"`{split}` pairwise layout distance {pairwise:.2f} = "
                                              f"{pairwise / world:.0%} of the world's {world:.2f} "
                                              f"(floor {100 * FLOOR_SHARE:.0f} %)")
    for split in SPLITS:
        plans = load(evals, f"grpo-plans-{split}")
        worst = min(PLAN_KINDS, key=lambda k: plans[f"plans/{k}/renderback_correct"] or 0.0)  # None: none made
        got = plans[f"plans/{worst}/renderback_correct"] or 0.0
        line(got >= PLAN_TARGET, f"`{split}` plan following, worst kind `{worst}` {got:.1%} by the render-back "
                                 f"judge (target {PLAN_TARGET:.0%} each)")
    return out


def report(evals: Path) -> str:
    versus = "\n\n".join(f"**`{split}`**: " + compare_table({label: load(evals, f"{m}-{split}")
                                                              for m, label in MODELS.items()})
                         for split in SPLITS)
    return "\n\n".join(["## The shipped model (GRPO)", split_table(evals, "grpo"),
                        "## SFT against GRPO, paired per scene", versus,
                        "## Following plans a person writes (render-back [interval over plans] / exact / mean R_RI)",
                        plans_table(evals, "grpo"), "## Targets", "\n".join(targets(evals))]) + "\n"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evals", default="runs/eval", help="the folder retrain_builtin.sh wrote its evaluations to")
    parser.add_argument("--output", help="also write the report here")
    args = parser.parse_args(argv)
    text = report(Path(args.evals))
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
