"""The ShapeWorld bench: T2I-CompBench's questions asked of the built-in world, on a laptop.

Scenes come from the clean evaluation splits (``test``, ``heldout``,
``zeroshot``: never trained on in any wording), taken in turn from each split,
and fall into one category each, shaped like T2I-CompBench's:

| category | scenes | T2I-CompBench's counterpart |
|---|---|---|
| ``binding`` | 2-3 objects, one of each colour-shape pair, no relation | colour and shape binding |
| ``spatial`` | two objects in a relation (left of, above, ...) | 2D-spatial |
| ``counting`` | 2-4 copies of one colour-shape pair | numeracy (T2I-CompBench++) |
| ``complex`` | several pairs, some counted | complex (binding and counting at once) |

A scene scores the share of its images the render-back judge calls fully
correct (the independent judge, never a reward; the exact judge, GRPO's reward,
is reported beside it), and a category the mean over its scenes with a
bootstrap interval over scenes. Variety is reported beside accuracy: distinct
images and distinct plans among a scene's images.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from PIL import Image

from gotr1_core.shapeworld.renderback import check_image
from gotr1_core.shapeworld.scenes import EVALUATION_SPLITS, Scene, evaluation_scenes, split_of
from gotr1_core.shapeworld.world import BENCH_CATEGORIES, bench_category

from ..intervals import bootstrap_interval
from .harness import image_name, read_chains

def bench_scenes(per_category: int) -> dict[str, list[Scene]]:
    """Up to ``per_category`` distinct evaluation scenes of each category, drawn in turn from each evaluation
    split (the same for every run: the splits' fixed lists, in order). A category the splits hold fewer scenes
    of gets all of them (counting: one colour-shape pair in a few counts); none at all is an error."""
    pool = 4 * per_category + 40
    while True:
        lists = [evaluation_scenes(split, pool, fewer=True) for split in EVALUATION_SPLITS]
        chosen: dict[str, list[Scene]] = {name: [] for name in BENCH_CATEGORIES}
        for row in itertools.zip_longest(*lists):
            for scene in row:
                name = None if scene is None else bench_category(scene.spec)
                if name is not None and len(chosen[name]) < per_category:
                    chosen[name].append(scene)
        exhausted = all(len(scenes) < pool for scenes in lists)
        if exhausted or all(len(scenes) == per_category for scenes in chosen.values()):
            break
        pool *= 2
    empty = [name for name, scenes in chosen.items() if not scenes]
    if empty:
        raise ValueError(f"the evaluation splits hold no scene of {', '.join(empty)}")
    return chosen


def score_folder(folder: Path, scenes: dict[str, list[Scene]], images_per_prompt: int, seed: int = 0) -> dict:
    """Per category and per image: the render-back verdict, the exact judge's, and variety, from the images
    and chains in ``folder`` (as :func:`~.harness.draw` writes them)."""
    from gotr1_core.rewards import ShapeWorldJudge

    chains = read_chains(folder)
    exact = ShapeWorldJudge()
    report: dict = {"images_per_prompt": images_per_prompt, "categories": {}, "images": []}
    for name, chosen in scenes.items():
        per_scene, exact_scene, distinct_images, distinct_plans = [], [], [], []
        for scene in chosen:
            files = [image_name(scene.prompt, i) for i in range(images_per_prompt)]
            missing = [f for f in files if not (folder / f).exists()]
            if missing:
                raise ValueError(f"{folder}: {len(missing)} image(s) of {scene.prompt!r} missing (first: "
                                 f"{missing[0]}); draw them first (the bench resumes where it stopped)")
            images = [np.asarray(Image.open(folder / f).convert("RGB")) for f in files]
            plans = [chains.get(f, "") for f in files]
            verdicts = [check_image(scene.spec, image) for image in images]
            judged = exact.score([scene.prompt] * len(images), plans, None, np.stack(images)).correct
            per_scene.append(float(np.mean([v.correct for v in verdicts])))
            exact_scene.append(float(np.mean(judged)))
            distinct_images.append(len({image.tobytes() for image in images}))
            distinct_plans.append(len(set(plans)))
            report["images"] += [{"file": f, "category": name, "prompt": scene.prompt, "split": split_of(scene.spec),
                                  "renderback_correct": v.correct, "exact_correct": bool(e),
                                  "why": v.problems[:2]} for f, v, e in zip(files, verdicts, judged)]
        low, high = bootstrap_interval(per_scene, seed=seed)
        report["categories"][name] = {
            "scenes": len(chosen), "renderback_correct": float(np.mean(per_scene)), "ci": [low, high],
            "exact_correct": float(np.mean(exact_scene)), "distinct_images": float(np.mean(distinct_images)),
            "distinct_plans": float(np.mean(distinct_plans))}
    overall = [r["renderback_correct"] for r in report["categories"].values()]
    report["overall"] = float(np.mean(overall))  # T2I-CompBench-style: the mean of the categories
    return report


def write_scenes(folder: Path, scenes: dict[str, list[Scene]]) -> None:
    """The prompt lists, one file per category (as T2I-CompBench ships its own), with the split of each."""
    folder.mkdir(parents=True, exist_ok=True)
    listing = {name: [{"prompt": s.prompt, "split": split_of(s.spec)} for s in chosen]
               for name, chosen in scenes.items()}
    (folder / "prompts.json").write_text(json.dumps(listing, indent=2) + "\n", encoding="utf-8")
