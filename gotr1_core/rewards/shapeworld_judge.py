"""The exact ShapeWorld judge: the four GoT-R1 rewards without any learned model.

The prompt is parsed into a scene spec; the image is read back by colour
segmentation (:mod:`gotr1_core.shapeworld.detect`). Objects are matched by
label ("red circle"); within a label, planned and detected boxes are paired
to maximise total IoU.

* ``r_sem`` = objects the chain names that the prompt asks for, over the larger
  of the two counts (missing and extra objects both cost).
* ``r_spa`` = with a relation: 1 if the planned boxes of its two objects stand
  in that relation, else 0. Without one: the share of planned box pairs that do
  not overlap (ShapeWorld objects never do); 0 if nothing was placed.
* ``r_ri``  = mean over planned boxes of the IoU with the matched detection of
  the same label (0 when unmatched); 0 if nothing was placed.
* ``r_pi``  = objects found in the image that the prompt asks for, over the
  larger count; with a relation, the average of that and whether the relation
  holds between the detected objects.

A sample is *correct* when the image has exactly the prompt's objects and the
relation (if any) holds — the accuracy the trainer reports.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Sequence

from ..layout import Layout, ObjectBox, intersection, relation
from ..reasoning import Box
from ..shapeworld.detect import detect_objects
from ..shapeworld.world import SHAPES, SceneSpec, parse_prompt
from .base import Rewards
from .matching import count_match, matched_iou


def normalise_label(label: str) -> str:
    """'Red  Circles' -> 'red circle': chains name objects freely, the world singularly."""
    words = label.lower().split()
    if words and words[-1].endswith("s") and words[-1][:-1] in SHAPES:
        words[-1] = words[-1][:-1]
    return " ".join(words)


def _first_box(items: list[tuple[str, Box]], label: str) -> Box | None:
    return next((box for lbl, box in items if lbl == label), None)


class ShapeWorldJudge:
    """Exact rewards for ShapeWorld prompts (see the module docstring for the definitions)."""

    name = "shapeworld"

    def score(self, prompts: Sequence[str], chains: Sequence[str], layouts: Sequence[Layout] | None,
              images, callback: Callable[[str, int, int], None] | None = None) -> Rewards:
        if not (len(prompts) == len(chains) == len(images)) or (layouts is not None and len(layouts) != len(chains)):
            raise ValueError("the judge needs one prompt, chain, (layout) and image per sample")
        specs = {p: parse_prompt(p) for p in set(prompts)}  # user error: raises, naming the vocabulary
        columns: dict[str, list] = {k: [] for k in ("r_sem", "r_spa", "r_ri", "r_pi", "notes", "correct", "detected")}
        for i, (prompt, chain, image) in enumerate(zip(prompts, chains, images)):
            layout = layouts[i] if layouts is not None else Layout.from_chain(chain)
            for key, value in zip(columns, self._score_one(specs[prompt], layout, image)):
                columns[key].append(value)
            if callback is not None:
                callback("judging", i + 1, len(prompts))
        return Rewards(columns["r_sem"], columns["r_spa"], columns["r_ri"], columns["r_pi"],
                       explanations=columns["notes"], correct=columns["correct"], detected=columns["detected"])

    def _score_one(self, spec: SceneSpec, layout: Layout, image):
        notes: list[str] = []
        expected = Counter(spec.object_names())
        planned = [(normalise_label(o.label), o.box) for o in layout.objects]
        mentioned = Counter(lbl for lbl, _ in planned) + Counter(normalise_label(u) for u in layout.unplaced)
        r_sem = count_match(expected, mentioned)
        if r_sem < 1:
            notes.append(f"chain: missing {dict(expected - mentioned) or 'nothing'}, "
                         f"extra {dict(mentioned - expected) or 'nothing'}")

        subject, obj = (spec.groups[0].name, spec.groups[1].name) if spec.relation else (None, None)
        if not planned:
            r_spa = 0.0
            notes.append("plan: no boxes")
        elif spec.relation:
            a, b = _first_box(planned, subject), _first_box(planned, obj)
            found = relation(a, b) if a is not None and b is not None else None
            r_spa = 1.0 if found == spec.relation else 0.0
            if r_spa < 1:
                notes.append(f"plan: '{subject}' is {found or 'not placed'} relative to '{obj}', "
                             f"prompt says {spec.relation}")
        else:
            pairs = [(a, b) for i, (_, a) in enumerate(planned) for _, b in planned[i + 1:]]
            overlapping = sum(intersection(a, b) > 0 for a, b in pairs)
            r_spa = 1.0 - overlapping / len(pairs) if pairs else 1.0
            if overlapping:
                notes.append(f"plan: {overlapping} of {len(pairs)} box pairs overlap")

        detections = detect_objects(image)
        detected = [(d.name, d.box) for d in detections]
        matched = matched_iou(planned, detected)
        r_ri = sum(matched) / len(matched) if matched else 0.0
        if planned and r_ri < 1:
            misses = [lbl for (lbl, _), s in zip(planned, matched) if s == 0]
            notes.append(f"image vs plan: mean IoU {r_ri:.3f}" + (f", not found: {misses}" if misses else ""))

        object_score = count_match(expected, Counter(lbl for lbl, _ in detected))
        if object_score < 1:
            found = Counter(lbl for lbl, _ in detected)
            notes.append(f"image: missing {dict(expected - found) or 'nothing'}, extra {dict(found - expected) or 'nothing'}")
        relation_ok = True
        if spec.relation:
            a, b = _first_box(detected, subject), _first_box(detected, obj)
            found = relation(a, b) if a is not None and b is not None else None
            relation_ok = found == spec.relation
            if not relation_ok:
                notes.append(f"image: '{subject}' is {found or 'not found'} relative to '{obj}', "
                             f"prompt says {spec.relation}")
            r_pi = 0.5 * object_score + 0.5 * float(relation_ok)
        else:
            r_pi = object_score
        found_layout = Layout(tuple(ObjectBox(lbl, box) for lbl, box in detected))
        return r_sem, r_spa, r_ri, r_pi, notes, object_score == 1.0 and relation_ok, found_layout
