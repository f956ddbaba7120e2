"""T2I-CompBench: the GoT-R1 paper's Table 1 (colour, shape, texture, 2D-spatial, non-spatial, complex).

The scoring rules of each category, the official ones (``gotr1-train bench
t2i-compbench`` draws and scores a whole run with them; the Benchmark Scorer
node scores a batch of images):

| category | score of an image |
|---|---|
| colour, shape, texture | BLIP-VQA: the product over the prompt's noun phrases (up to 8) of P(yes) to "{phrase}?" |
| 2D-spatial | detector: 0.25 × each object's confidence + ½ × the position score; below 0.5 counts 0 |
| non-spatial | CLIP ViT-B/32: the cosine of image and prompt (raw) |
| complex | 3-in-1: the mean of BLIP-VQA with the spatial score (prompts with a relation), with CLIP of the prompt without adjectives (prompts with an action), or with both |

Where the official code uses spaCy and UniDet, :mod:`.phrases` and an
open-vocabulary detector stand in (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import phrases
from .scorers import Detection

CATEGORIES = ("color", "shape", "texture", "spatial", "non_spatial", "complex")
ATTRIBUTE = ("color", "shape", "texture")
COLUMNS = {"color": "Color", "shape": "Shape", "texture": "Texture", "spatial": "2D-Spatial",
           "non_spatial": "Non-Spatial", "complex": "Complex"}
MAX_PHRASES = 8  # the official --np_num


def position_score(relation: str, box1, box2, iou_threshold: float = 0.1, distance_threshold: float = 150.0) -> float:
    """How well ``box1`` stands in ``relation`` to ``box2`` (boxes ``(x0, y0, x1, y1)`` in pixels, y down), by the
    official 2D-spatial rule: for left/right/top/bottom the centres must be offset mostly along that axis, scoring 1
    when the boxes overlap less than ``iou_threshold`` (IoU) and ``iou_threshold / IoU`` otherwise; for near / next
    to / on side of, 1 when the centres are within ``distance_threshold`` pixels on either axis and the threshold
    over the larger offset otherwise. A relation outside the vocabulary (the official list's "on top of" included)
    scores 0."""
    dx = (box2[0] + box2[2]) / 2 - (box1[0] + box1[2]) / 2
    dy = (box2[1] + box2[3]) / 2 - (box1[1] + box1[3]) / 2
    overlap = max(0.0, min(box1[2], box2[2]) - max(box1[0], box2[0])) * max(
        0.0, min(box1[3], box2[3]) - max(box1[1], box2[1]))
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - overlap
    iou = overlap / union if union > 0 else 0.0
    if relation in ("next to", "on side of", "near"):
        if abs(dx) < distance_threshold or abs(dy) < distance_threshold:
            return 1.0
        return distance_threshold / max(abs(dx), abs(dy))
    along = {"on the right of": (dx < 0, abs(dx) > abs(dy)), "on the left of": (dx > 0, abs(dx) > abs(dy)),
             "on the bottom of": (dy < 0, abs(dy) > abs(dx)), "on the top of": (dy > 0, abs(dy) > abs(dx))}
    if relation not in along or not all(along[relation]):
        return 0.0
    return 1.0 if iou < iou_threshold else iou_threshold / iou


def spatial_score(detections: list[Detection], relation: str | None, first: str | None, second: str | None) -> float:
    """The official 2D-spatial score of one image from its detections (most confident first)."""
    best = {}
    for detection in detections:
        best.setdefault(detection.label, detection)
    one, two = best.get(first) if first else None, best.get(second) if second else None
    if one and two:
        score = 0.25 * one.score + 0.25 * two.score + position_score(relation or "", one.box, two.box) / 2
    elif one or two:
        score = 0.25 * (one or two).score
    else:
        score = 0.0
    return score if score >= 0.5 else 0.0


def attribute_score(vqa, image, prompt: str) -> tuple[float, list[str]]:
    """BLIP-VQA's score: the product of P(yes) over the prompt's first 8 noun phrases; 1 for a prompt with none."""
    asked = phrases.noun_phrases(prompt)[:MAX_PHRASES]
    if not asked:
        return 1.0, []
    return float(np.prod(vqa.p_yes([image] * len(asked), [f"{p}?" for p in asked]))), asked


def three_in_one(attribute: float, spatial: float, action: float, has_spatial: bool, has_action: bool) -> float:
    """The complex category's score: prompts listed as spatial average attribute and spatial, those listed as
    action average attribute and action (CLIP), the rest average all three (the official 3-in-1)."""
    if has_spatial:
        return (attribute + spatial) / 2
    if has_action:
        return (attribute + action) / 2
    return (attribute + spatial + action) / 3


def complex_key(prompt: str) -> str:
    """How the official 3-in-1 compares a complex prompt with its spatial/action lists."""
    return prompt.split(".")[0].lower()


NEEDS = {"color": ("vqa",), "shape": ("vqa",), "texture": ("vqa",), "spatial": ("detector",),
         "non_spatial": ("clip",), "complex": ("vqa", "clip", "detector")}
"""The scorers (:data:`~.scorers.SCORERS` keys) each category needs."""


@dataclass
class Scorers:
    """The models a run's categories need (None where a run leaves a category out)."""

    vqa: object | None = None
    clip: object | None = None
    detector: object | None = None


def score_image(category: str, image, prompt: str, scorers: Scorers, complex_lists: dict[str, set[str]] | None = None
                ) -> dict:
    """One image's official score in ``category``, with what it was made of."""
    if category in ATTRIBUTE:
        value, asked = attribute_score(scorers.vqa, image, prompt)
        return {"score": value, "phrases": asked}
    if category == "non_spatial":
        return {"score": scorers.clip.similarity([prompt], [image])[0]}
    relations = phrases.COMPLEX_RELATIONS if category == "complex" else phrases.RELATIONS
    relation, first, second = phrases.relation_objects(prompt, relations)
    found = scorers.detector.detect(image, [q for q in (first, second) if q]) if first or second else []
    if category == "complex" and relation is not None:
        # the official complex rule finds the objects by the short relation and scores by the full one
        relation = next((r for r in phrases.RELATIONS if r in prompt.lower()), relation)
    spatial = spatial_score(found, relation, first, second)
    if category == "spatial":
        return {"score": spatial, "relation": relation, "objects": [first, second]}
    attribute, asked = attribute_score(scorers.vqa, image, prompt)
    action = scorers.clip.similarity([phrases.without_adjectives(prompt)], [image])[0]
    key = complex_key(prompt)
    lists = complex_lists or {"spatial": set(), "action": set()}
    value = three_in_one(attribute, spatial, action, key in lists["spatial"], key in lists["action"])
    return {"score": value, "attribute": attribute, "spatial": spatial, "action": action, "phrases": asked}
