"""The GRPO ablation of docs/training.md: which remedies keep the policy varied on ShapeWorld.

Every variant is one GRPO config (``--config``, by default the shipped
``shapeworld_grpo.yaml``) with a few keys changed, trained for the same steps
from the same model on the same prompts and seeds; then each trained model —
and the starting one, as row ``start`` — is evaluated on the same fixed
evaluation scenes with the same sample seed: both judges' fully-correct shares
with bootstrap intervals over scenes, and the diversity figures beside the
world sampler's. Rows are paired (same scenes, same draws), so differences
between them are differences between the variants.

    python docs/scripts/grpo_ablation.py --out runs/ablation [--model builtin] [--steps 60]
        [--split test] [--count 100] [--samples 8] [--variants none,clip_higher,...] [key=value ...]

``--jobs 2`` trains and judges two rows at a time, each on one core.
``key=value`` changes every variant's config (e.g. ``lr=0.0001``). Each
finished variant leaves ``OUT/NAME/eval.json``; a rerun skips what is done and
resumes a variant's training from its last checkpoint (every 10 steps), so an
interrupted ablation continues. Prints the markdown table and writes it to
``OUT/ablation.md``, every figure to ``OUT/ablation.json``, and the choice
(:func:`choose`) to ``OUT/choice.json`` with the variant's config changes as
``key=value`` words in ``OUT/choice.args`` for the full run to take.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # side_by_side; --jobs workers import this file by name

from trainer.config import load_config  # noqa: E402
from trainer.evaluate import EvalConfig, saved_eval  # noqa: E402
from trainer.grpo import GRPOConfig, train_grpo  # noqa: E402

from side_by_side import side_by_side  # noqa: E402

# name -> the keys it changes, and what the change is (the docs' table names the references)
VARIANTS = {
    "none": ({}, "the config as it is"),
    "clip_higher": ({"clip_eps_high": 0.28}, "upper clip 0.28 (DAPO)"),
    "entropy_bonus": ({"entropy_coef": 0.01}, "entropy bonus 0.01"),
    "dynamic_sampling": ({"dynamic_sampling_rounds": 3}, "refill zero-advantage groups, 3 rounds (DAPO)"),
    "hot_rollouts": ({"text_temperature": 1.0, "image_temperature": 1.0}, "rollout temperature 1.0"),
    "strong_kl": ({"beta": 0.1}, "KL weight 0.1"),
    "sample_mean": ({"loss_normalisation": "sample"}, "per-sample mean (GoT-R1)"),
    "combined": ({"clip_eps_high": 0.28, "entropy_coef": 0.01, "dynamic_sampling_rounds": 3},
                 "clip-higher + entropy bonus + dynamic sampling"),
}
FLOOR_LAYOUTS, FLOOR_SHARE = 6.0, 0.7
"""The diversity floor the retraining must keep (mean distinct layouts among 8 samples; pairwise layout distance as
a share of the world sampler's): the choice's default, and what docs/scripts/model_report.py checks."""
COLUMNS = ["render-back correct", "exact correct", "distinct layouts", "pairwise distance (world's)",
           "entropy chain / image (last step)"]


def train_variant(name: str, args, changes: dict) -> Path:
    folder = Path(args.out) / name
    model = folder / "run" / "model"
    if (model / "model.safetensors").exists():
        return model
    overrides = [f"{k}={json.dumps(v)}" for k, v in changes.items()] + [
        f"output_dir={json.dumps(str(folder / 'run'))}", f"model={json.dumps(args.model)}",
        f"steps={args.steps}", "eval_prompts=[]", "sample_every=0", f"save_every={min(10, args.steps)}",
        f"device={json.dumps(args.device)}", *args.overrides]
    train_grpo(load_config(GRPOConfig, args.config, overrides), resume=True, progress=False)  # a killed one continues
    return model


def evaluate_model(model: str, folder: Path, args) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    figures = saved_eval(EvalConfig(model=model, prompts=f"shapeworld:{args.split}", count=args.count,
                                    samples=args.samples, device=args.device, output=str(folder / "eval.json")))
    figures.pop("per_scene", None)  # the table's figures only: ablation.json stays readable
    return figures


def last_logged(folder: Path) -> dict:
    """The run's last training step's figures (entropy, distinct plans per group)."""
    log = folder / "run" / "metrics.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    rows = [r for r in rows if "policy/entropy_chain" in r]
    return rows[-1] if rows else {}


def table_entry(name: str, args) -> tuple[str, str, dict, dict]:
    """(name, change, evaluation, last logged step) of one row: the variant trained (or found) and judged."""
    out = Path(args.out)
    if name == "start":
        return name, f"`{args.model}` before any step", evaluate_model(args.model, out / name, args), {}
    changes, what = VARIANTS[name]
    model = train_variant(name, args, changes)
    return name, what, evaluate_model(str(model), out / name, args), last_logged(out / name)


def table_row(name: str, what: str, figures: dict, logged: dict) -> str:
    def share(key):
        low, high = figures[f"{key}_ci"]
        return f"{figures[key]:.1%} [{low:.1%}, {high:.1%}]".replace("%", "")

    entropy = (f"{logged['policy/entropy_chain']:.3f} / {logged['policy/entropy_image']:.3f}" if logged else "—")
    return (f"| `{name}` | {what} | {share('renderback_correct')} | {share('correct')} | "
            f"{figures['diversity/distinct_layouts']:.1f} | {figures['diversity/pairwise_distance']:.2f} "
            f"({figures['diversity/world/pairwise_distance']:.2f}) | {entropy} |")


def choose(rows: list[tuple[str, str, dict, dict]], floor_layouts: float, floor_share: float) -> dict:
    """The variant a full run should use, by a rule fixed before the results: among the trained variants that keep
    the diversity floor (mean distinct layouts ≥ ``floor_layouts`` and pairwise layout distance ≥ ``floor_share`` of
    the world sampler's), the most accurate by the render-back judge (the one not trained against); when none keeps
    the floor, the most varied (distinct layouts, then accuracy)."""
    trained = [(name, figures) for name, _, figures, _ in rows if name in VARIANTS]
    if not trained:
        raise ValueError("no trained variant to choose from")

    def keeps_floor(figures: dict) -> bool:
        return (figures["diversity/distinct_layouts"] >= floor_layouts and figures["diversity/pairwise_distance"]
                >= floor_share * figures["diversity/world/pairwise_distance"])

    kept = [(name, figures) for name, figures in trained if keeps_floor(figures)]
    if kept:
        name, _ = max(kept, key=lambda item: item[1]["renderback_correct"])
        why = (f"most accurate by the render-back judge of the {len(kept)} variants keeping >= {floor_layouts:g} "
               f"distinct layouts and >= {floor_share:.0%} of the world's pairwise distance")
    else:
        name, _ = max(trained, key=lambda item: (item[1]["diversity/distinct_layouts"], item[1]["renderback_correct"]))
        why = "no variant keeps the diversity floor: the most varied one"
    changes = VARIANTS[name][0]
    return {"variant": name, "changes": changes, "why": why,
            "args": [f"{key}={json.dumps(value)}" for key, value in changes.items()]}


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the runs, their evaluations and the table")
    parser.add_argument("--config", default=str(ROOT / "trainer" / "configs" / "shapeworld_grpo.yaml"))
    parser.add_argument("--model", default="builtin", help="the model every variant starts from")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--split", default="test", choices=["test", "heldout", "zeroshot"])
    parser.add_argument("--count", type=int, default=100, help="evaluation scenes")
    parser.add_argument("--samples", type=int, default=8, help="samples per scene")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"any of {', '.join(VARIANTS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1,
                        help="rows trained and judged side by side, each on its share of the cores (on 2 CPU cores "
                             "two one-thread GRPO runs made 1.4x the steps per second of one two-thread run)")
    parser.add_argument("--floor-layouts", type=float, default=FLOOR_LAYOUTS,
                        help="diversity floor of the choice: mean distinct layouts among a scene's samples")
    parser.add_argument("--floor-share", type=float, default=FLOOR_SHARE,
                        help="diversity floor of the choice: pairwise layout distance as a share of the world's")
    parser.add_argument("overrides", nargs="*", help="key=value changes to every variant's config")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {', '.join(unknown)}; known: {', '.join(VARIANTS)}")

    out = Path(args.out)
    rows = side_by_side(functools.partial(table_entry, args=args), ["start", *names], args.jobs)
    header = "| variant | change | " + " | ".join(COLUMNS) + " |"
    lines = [f"{args.steps} steps from `{args.model}`; `{args.split}`, {args.count} scenes × {args.samples} "
             "samples at the model's own settings; shares in % with 95 % bootstrap intervals over scenes; "
             f"distinct layouts among the {args.samples} samples of a scene.", "",
             header, "|" + "---|" * (len(COLUMNS) + 2), *(table_row(*row) for row in rows)]
    table = "\n".join(lines) + "\n"
    (out / "ablation.md").write_text(table, encoding="utf-8")
    (out / "ablation.json").write_text(json.dumps({name: {"change": what, "eval": figures, "last_step": logged}
                                                   for name, what, figures, logged in rows}, indent=2) + "\n",
                                       encoding="utf-8")
    choice = choose(rows, args.floor_layouts, args.floor_share)
    (out / "choice.json").write_text(json.dumps(choice, indent=2) + "\n", encoding="utf-8")
    (out / "choice.args").write_text(" ".join(choice["args"]) + "\n", encoding="utf-8")
    print(table)
    print(f"chosen: {choice['variant']} ({choice['why']})")
    return table


if __name__ == "__main__":
    main()
