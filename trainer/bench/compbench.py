"""Scoring a T2I-CompBench run's folder: every image of every category, in the official layout.

``OUT/<category>/samples/{prompt}_{index:06d}.png`` (the layout the official
evaluators read); the rules are :mod:`gotr1_core.benchmarks.compbench`. A
category scores the mean over its images (as published), with a 95 % bootstrap
interval over prompts.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gotr1_core.benchmarks import compbench

from ..intervals import bootstrap_interval
from .harness import image_name

CATEGORIES, COLUMNS = compbench.CATEGORIES, compbench.COLUMNS


def score_folder(out: Path, prompts: dict[str, list[str]], images_per_prompt: int, scorers: compbench.Scorers,
                 complex_lists: dict[str, set[str]] | None = None, seed: int = 0, progress=None) -> dict:
    """Score ``OUT/<category>/samples`` for each category in ``prompts``: per image, per category (mean over images,
    bootstrap interval over prompts) and the mean of the categories."""
    report: dict = {"images_per_prompt": images_per_prompt, "categories": {}, "images": []}
    for category, listed in prompts.items():
        folder = out / category / "samples"
        per_prompt = []
        for prompt in listed:
            values = []
            for index in range(images_per_prompt):
                path = folder / image_name(prompt, index)
                if not path.is_file():
                    raise ValueError(f"{path}: missing; draw the images first (the bench resumes where it stopped)")
                image = Image.open(path).convert("RGB")
                result = compbench.score_image(category, image, prompt, scorers, complex_lists)
                values.append(result["score"])
                report["images"].append({"category": category, "file": path.name, "prompt": prompt, **result})
            per_prompt.append(float(np.mean(values)))
            if progress is not None:
                progress()
        low, high = bootstrap_interval(per_prompt, seed=seed)
        report["categories"][category] = {"prompts": len(listed), "score": float(np.mean(per_prompt)),
                                          "ci": [low, high]}
    report["overall"] = float(np.mean([row["score"] for row in report["categories"].values()]))
    return report
