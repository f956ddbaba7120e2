"""``gotr1-train compare BASE.json OTHER.json ...``: is one model better than another on the same scenes?

Two ``gotr1-train eval --output`` files of the same split, seed and sample
count judged the same scenes, so the honest comparison is paired: per scene,
the difference of the two models' shares, and a bootstrap interval of its mean
over scenes. An interval that holds 0 is a tie; a lower bound above 0 is a
gain the scenes support. Unpaired intervals of each model overlap far more
often than the paired one holds 0, so comparing them would call real gains
ties. Figures: fully correct by the render-back judge and by the exact judge
(%), distinct images and distinct layouts among a scene's samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .intervals import bootstrap_interval, paired_difference

FIGURES = (("renderback_correct", "render-back correct (%)", 100), ("correct", "exact correct (%)", 100),
           ("distinct_images", "distinct images", 1), ("distinct_layouts", "distinct layouts", 1))


class CompareError(ValueError):
    """Two evaluations that cannot be compared scene by scene."""


def load_eval(path: str | Path) -> dict:
    """An eval JSON with its per-scene rows, or a CompareError saying what to rerun."""
    path = Path(path)
    try:
        figures = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CompareError(f"cannot read {path}: {exc}") from exc
    if not isinstance(figures, dict) or not figures.get("per_scene"):
        raise CompareError(f"{path} has no per-scene rows; write it with `gotr1-train eval MODEL --output {path}` "
                           "(without --plans)")
    return figures


def scene_values(figures: dict, key: str, scale: float) -> np.ndarray:
    return np.array([row[key] for row in figures["per_scene"]], dtype=np.float64) * scale


def check_paired(base: dict, other: dict, names: tuple[str, str]) -> None:
    """Same scenes in the same order and the same samples per scene, or a CompareError naming the difference."""
    if [r["prompt"] for r in base["per_scene"]] != [r["prompt"] for r in other["per_scene"]]:
        raise CompareError(f"{names[0]} and {names[1]} judged different scenes; evaluate both with the same "
                           "--split/--prompts and --count")
    if base.get("samples") != other.get("samples"):
        raise CompareError(f"{names[0]} drew {base.get('samples')} samples per scene and {names[1]} "
                           f"{other.get('samples')}; use the same --samples")


def compare(runs: dict[str, dict], seed: int = 0) -> dict:
    """Per figure: each run's mean and interval over scenes, and each later run minus the first, paired."""
    (base_name, base), *others = runs.items()
    for name, figures in others:
        check_paired(base, figures, (base_name, name))
    result = {}
    for key, _, scale in FIGURES:
        values = {name: scene_values(figures, key, scale) for name, figures in runs.items()}
        result[key] = {
            "runs": {name: {"mean": float(v.mean()), "interval": list(bootstrap_interval(v, seed=seed))}
                     for name, v in values.items()},
            "minus_base": {name: paired_difference(values[name], values[base_name], seed=seed)
                           for name, _ in others}}
    return result


def compare_table(runs: dict[str, dict], seed: int = 0) -> str:
    """Markdown: one row per figure, a column per run, then a paired "run − base" column per later run."""
    figures = compare(runs, seed)
    names = list(runs)
    base = names[0]
    header = ["figure", *names, *(f"{name} − {base} (paired)" for name in names[1:])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, label, scale in FIGURES:
        digits = 1 if scale == 100 else 2
        cells = [label]
        for name in names:
            run = figures[key]["runs"][name]
            low, high = run["interval"]
            cells.append(f"{run['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]")
        for name in names[1:]:
            d = figures[key]["minus_base"][name]
            cells.append(f"{d['difference']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"
                         + (" tie" if d["tie"] else ""))
        lines.append("| " + " | ".join(cells) + " |")
    first = runs[base]
    return (f"`{first.get('prompts')}`: {len(first['per_scene'])} scenes × {first.get('samples')} samples; "
            "95 % bootstrap intervals over scenes; paired differences per scene (tie: the interval holds 0)\n\n"
            + "\n".join(lines))
