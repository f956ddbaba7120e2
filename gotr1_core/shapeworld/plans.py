"""Plans a person could write for a ShapeWorld prompt.

A plan in a node graph is there to be changed: a person types prose around the
tags, drags a box to any coordinate, resizes one. These functions write such
plans for a scene spec, so that a model can be evaluated (and trained) on
following them, not only on following its own:

* :func:`prose_chain` — the same tagged objects and boxes, with ordinary prose
  around them (an opening sentence, articles and adjectives, the relation in
  one of its usual phrasings, other separators, a closing phrase). The tags and
  boxes stay exact, so the chain is well-formed.
* :func:`free_boxes` — a valid layout with boxes at arbitrary integer
  coordinates and of any size the world draws (not on the world's lattice;
  the world draws each at the nearest lattice position,
  :func:`~gotr1_core.shapeworld.scenes.drawn_box`).
* :func:`edit_layout` — a plan with one box moved or resized to arbitrary
  coordinates, still valid.
* :func:`person_plan` — one of those at random (the plans GRPO's plan
  rollouts hand the model).
* :func:`reworded` — the other way: any plan's tagged objects and boxes back in the model's own
  wording, which is what the built-in model draws a given plan from (``plan_wording`` in its
  ``gotr1.json``).

*Valid* (:func:`valid_plan`): one box per object of the prompt (boxes are on
the grid, so inside the canvas), boxes apart by at least :data:`MIN_GAP`
(shapes that touch would merge into one region for the judge), and the
prompt's relation true of the boxes.
"""

from __future__ import annotations

import numpy as np

from ..layout import ObjectBox, relation
from ..reasoning import BOX_END, BOX_START, GRID, IMAGE_START, OBJ_END, OBJ_START, Box, parse_chain
from .scenes import layout_for, model_wording
from .world import SceneSpec, ShapeWorldPromptError, parse_prompt

MIN_SIDE, MAX_SIDE = 240, 380
"""Box sides of the plans written here, in grid units: about 15 to 24 pixels of a 64 px scene (the world
draws 16-24; other sides are drawn at the nearest of those)."""
MIN_GAP = 125
"""Grid units between the boxes of two objects: one image patch (8 px of 64)."""

OPENINGS = ("", "", "Here is the plan. ", "The picture shows ", "Let me place each shape. ", "In this image, ",
            "I will draw ", "Plan: ", "A simple scene with ")
CLOSINGS = ("", "", ".", " on a white background.", ". Nothing else is in the picture.", ", all on plain white.")
ARTICLES = ("a ", "a ", "one ", "the ", "")
ADJECTIVES = ("", "", "", "small ", "flat ", "single ", "bright ")
# Written into chains; not the prompt phrasings world.RELATION_PHRASES / SEPARATORS read (those are
# what a prompt may say, these what a plan's prose may say, verbs included).
PROSE_SEPARATORS = (", ", " and ", ", and ", "; ", ". Then ", " as well as ", "\n", " next to ")
PROSE_RELATIONS = {
    "left of": ("left of", "to the left of", "on the left of", "is to the left of", "sits left of"),
    "right of": ("right of", "to the right of", "on the right of", "is to the right of", "sits right of"),
    "above": ("above", "on top of", "over", "is above", "sits above"),
    "below": ("below", "under", "beneath", "is below", "sits underneath"),
}


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _tagged(obj: ObjectBox, rng: np.random.Generator) -> str:
    gap = _pick(rng, (" ", " ", ""))  # whitespace only: still well-formed
    return f"{OBJ_START}{obj.label}{OBJ_END}{gap}{BOX_START}{obj.box.format()}{BOX_END}"


def _mention(obj: ObjectBox, rng: np.random.Generator) -> str:
    return _pick(rng, ARTICLES) + _pick(rng, ADJECTIVES) + _tagged(obj, rng)


def prose_chain(objects: list[ObjectBox], spec: SceneSpec, rng: np.random.Generator) -> str:
    """A well-formed chain planning ``objects`` (in chain order), with varied prose around the tags."""
    if spec.relation is not None and len(objects) == 2:
        phrase = _pick(rng, PROSE_RELATIONS[spec.relation])
        body = f"{_mention(objects[0], rng)} {phrase} {_mention(objects[1], rng)}"
    else:
        parts = [_mention(o, rng) for o in objects]
        body = parts[0]
        for part in parts[1:]:
            body += _pick(rng, PROSE_SEPARATORS) + part
    return _pick(rng, OPENINGS) + body + _pick(rng, CLOSINGS) + IMAGE_START


def reworded(prompt: str, chain: str) -> str:
    """``chain``'s tagged objects and boxes, in order, in the model's own wording (:func:`model_wording`);
    the words around the tags are dropped. A chain with no tagged object comes back as it is.

    Why: in this world everything a plan says is in its tags and boxes, and the model's image stage
    follows a plan in its own wording best (the shipped model draws prose plans of held-out compositions
    fully correct 87.0 % of the time as written, 92.7 % reworded; docs/shapeworld.md). The relation word
    is the prompt's, as in the model's own chains; a prompt the world does not read gets the plain list.
    """
    objects = [ObjectBox(o.name, box) for o in parse_chain(chain).objects for box in o.boxes]
    if not objects:
        return chain
    try:
        spec = parse_prompt(prompt)
    except ShapeWorldPromptError:
        spec = None
    return model_wording(objects, spec)


def _apart(a: Box, b: Box) -> bool:
    return (a.x2 + MIN_GAP <= b.x1 or b.x2 + MIN_GAP <= a.x1 or
            a.y2 + MIN_GAP <= b.y1 or b.y2 + MIN_GAP <= a.y1)


def valid_plan(objects: list[ObjectBox], spec: SceneSpec) -> bool:
    """One box per object of the prompt, apart from each other, and standing in the prompt's relation."""
    boxes = [o.box for o in objects]
    if len(boxes) != spec.num_objects:
        return False
    if any(not _apart(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:]):
        return False
    return spec.relation is None or relation(boxes[0], boxes[1]) == spec.relation


def _random_box(rng: np.random.Generator, width: int | None = None, height: int | None = None) -> Box:
    w = int(rng.integers(MIN_SIDE, MAX_SIDE + 1)) if width is None else width
    h = int(rng.integers(MIN_SIDE, MAX_SIDE + 1)) if height is None else height
    x, y = int(rng.integers(0, GRID - w + 1)), int(rng.integers(0, GRID - h + 1))
    return Box(x, y, x + w, y + h)


def free_boxes(spec: SceneSpec, rng: np.random.Generator, tries: int = 2000) -> list[ObjectBox]:
    """A valid layout for ``spec`` with boxes at arbitrary integer coordinates and sizes."""
    names = spec.object_names()
    for _ in range(tries):
        boxes: list[Box] = []
        for _ in names:  # one box at a time, each apart from those already placed
            box = next((b for b in (_random_box(rng) for _ in range(100)) if all(_apart(b, o) for o in boxes)), None)
            if box is None:
                break
            boxes.append(box)
        objects = [ObjectBox(name, box) for name, box in zip(names, boxes)]
        if len(objects) == len(names) and valid_plan(objects, spec):
            return objects
    raise RuntimeError(f"could not place {names} apart on the canvas")


def edit_layout(objects: list[ObjectBox], spec: SceneSpec, rng: np.random.Generator,
                tries: int = 500) -> list[ObjectBox] | None:
    """``objects`` with one box moved (same size) or resized (same centre) to arbitrary integer coordinates,
    the plan still valid; ``None`` for a plan that was not valid to begin with, or when no edit was found."""
    if not valid_plan(objects, spec):
        return None
    for _ in range(tries):
        i = int(rng.integers(len(objects)))
        old = objects[i].box
        if rng.random() < 0.5:  # move
            new = _random_box(rng, old.x2 - old.x1, old.y2 - old.y1) if old.x2 - old.x1 < GRID else old
        else:  # resize around the centre
            w, h = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
            cx, cy = (old.x1 + old.x2) // 2, (old.y1 + old.y2) // 2
            x1, y1 = min(max(cx - w // 2, 0), GRID - w), min(max(cy - h // 2, 0), GRID - h)
            new = Box(x1, y1, x1 + w, y1 + h)
        if new == old:
            continue
        edited = objects[:i] + [ObjectBox(objects[i].label, new)] + objects[i + 1:]
        if valid_plan(edited, spec):
            return edited
    return None


def person_plan(spec: SceneSpec, rng: np.random.Generator) -> str:
    """A valid plan for ``spec`` as a person might write it: boxes on the world's lattice or at arbitrary
    integer coordinates, in the model's wording or with prose around the tags (each half the time)."""

    objects = free_boxes(spec, rng) if rng.random() < 0.5 else list(layout_for(spec, rng).layout.objects)
    return prose_chain(objects, spec, rng) if rng.random() < 0.5 else model_wording(objects, spec)
