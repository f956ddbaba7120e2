"""How varied a model's samples are, against the world's own sampler.

Accuracy alone rewards a model that draws one picture per prompt. These
figures tell such a model apart from one that samples the variety the world
allows; each is computed per prompt over K samples and averaged over prompts:

* **distinct layouts** — plans that differ once snapped to what the world
  draws (:func:`layout_signature`: labels with the pixel boxes of
  :func:`~gotr1_core.shapeworld.scenes.drawn_box`), so a one-unit jitter is not
  a new layout; and **distinct images** (pixel-exact).
* **pairwise distance** — mean :func:`layout_distance` over the K(K-1)/2
  pairs: 1 - the mean IoU of matched boxes (same label, best matching), so 0
  for one layout repeated and about 0.9-1 for the world's independent layouts.
* **coverage** — the share of K layouts drawn by the world's sampler that
  have a model layout within :data:`COVERAGE_DISTANCE` (recall of the world's
  variety). Its ceiling is the same figure for a second, independent set of K
  world layouts, which :func:`world_reference` reports beside it.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from ..layout import Layout
from ..rewards.matching import matched_iou
from ..rewards.shapeworld_judge import normalise_label
from .scenes import drawn_box, layout_for
from .world import SceneSpec

COVERAGE_DISTANCE = 0.6
"""A world layout counts as covered when a model layout is this close (matched boxes overlap by IoU 0.4 on average:
the same objects in roughly the same places)."""


def layout_signature(layout: Layout) -> tuple:
    """A plan as the world draws it: sorted (label, pixel box) pairs."""
    return tuple(sorted((normalise_label(o.label), drawn_box(o.box)) for o in layout.objects))


def layout_distance(a: Layout, b: Layout) -> float:
    """1 - mean IoU of boxes matched within labels, over the larger plan's objects (an unmatched box scores 0):
    0 for the same plan, 1 for plans with no box in common."""
    first = [(normalise_label(o.label), o.box) for o in a.objects]
    second = [(normalise_label(o.label), o.box) for o in b.objects]
    if not first and not second:
        return 0.0
    matched = matched_iou(first, second) if len(first) >= len(second) else matched_iou(second, first)
    return 1.0 - sum(matched) / max(len(first), len(second))


def mean_pairwise_distance(layouts: list[Layout]) -> float:
    pairs = list(combinations(layouts, 2))
    return float(np.mean([layout_distance(a, b) for a, b in pairs])) if pairs else 0.0


def coverage(model: list[Layout], world: list[Layout], within: float = COVERAGE_DISTANCE) -> float:
    """Share of ``world`` layouts with a ``model`` layout no farther than ``within``."""
    if not world:
        return 0.0
    return float(np.mean([any(layout_distance(w, m) <= within for m in model) for w in world]))


def world_layouts(spec: SceneSpec, count: int, seed: int) -> list[Layout]:
    """``count`` layouts of ``spec`` from the world's own sampler."""
    rng = np.random.default_rng(seed)
    return [layout_for(spec, rng).layout for _ in range(count)]


def prompt_diversity(layouts: list[Layout], images: list | None, world: list[Layout]) -> dict[str, float]:
    """The figures of one prompt's K samples (``images`` optional) against ``world`` layouts of the same prompt."""
    figures = {"distinct_layouts": float(len({layout_signature(x) for x in layouts})),
               "pairwise_distance": mean_pairwise_distance(layouts),
               "coverage": coverage(layouts, world)}
    if images is not None:
        figures["distinct_images"] = float(len({np.ascontiguousarray(np.asarray(i)).tobytes() for i in images}))
    return figures


def world_reference(spec: SceneSpec, count: int, seed: int) -> tuple[list[Layout], dict[str, float]]:
    """The world layouts a model's ``count`` samples are compared with, and the world's own figures: a second,
    independent set of ``count`` layouts scored exactly as a model's would be (the ceiling)."""
    target = world_layouts(spec, count, seed)
    other = world_layouts(spec, count, seed + 1)
    return target, prompt_diversity(other, None, target)


def diversity_report(specs: list[SceneSpec], layouts: list[list[Layout]], images: list[list] | None = None,
                     seed: int = 0) -> dict[str, float]:
    """Mean figures over prompts, the model's and the world's (``world/...``) side by side; ``layouts[i]`` are the
    K samples of ``specs[i]``."""
    model_rows, world_rows = [], []
    for i, (spec, mine) in enumerate(zip(specs, layouts)):
        target, world_figures = world_reference(spec, len(mine), seed + 2 * i)
        model_rows.append(prompt_diversity(mine, None if images is None else images[i], target))
        world_rows.append(world_figures)
    report = {key: float(np.mean([r[key] for r in model_rows])) for key in model_rows[0]}
    report.update({f"world/{key}": float(np.mean([r[key] for r in world_rows])) for key in world_rows[0]})
    return report
