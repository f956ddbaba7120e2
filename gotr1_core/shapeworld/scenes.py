"""ShapeWorld scenes: layouts that satisfy a spec, ground-truth chains, pictures, splits.

Scenes live on a ``CANVAS`` x ``CANVAS`` pixel canvas with a white background.
Boxes sit on the image tokenizer's patch grid (``CELL`` = 8 pixels, the 8x8
token grid of a 64 px image): sides are 2 or 3 cells, shapes never share a cell
and keep ``GAP`` empty cells between them, and a stated relation holds for the
boxes under :func:`gotr1_core.layout.relation`. Aligning shapes to patches is
what lets a VQ with 64 tokens and a few hundred codes reproduce a scene exactly
(every patch is background or one of a small, fixed set of shape pieces), so
the image stage is judged on following the plan, not fighting the tokenizer.
Every box is a whole-pixel box, so grid <-> pixel conversion is exact.

Splits are deterministic from a seed. ``train`` and ``test`` draw from the same
distribution, in which a :data:`HELDOUT_PAIRS` colour-shape pair only ever
appears alone ("a red triangle"); every ``heldout`` scene puts at least one of
them among other objects, in counts or in relations — compositions the model
never saw, to measure compositional generalisation. (Each pair is seen once on
its own so that its picture pieces are in the generator's vocabulary: an image
token is a colour-and-shape piece, and a piece never emitted in training cannot
be composed from others.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image, ImageDraw

from ..layout import Layout, ObjectBox, from_pixel_box, relation
from ..reasoning import Box
from .plans import model_wording
from .world import COLOURS, MAX_OBJECTS, RELATIONS, SHAPES, Group, SceneSpec, format_prompt, parse_prompt

CANVAS = 64
BACKGROUND = (255, 255, 255)
CELL = 8                   # pixels per image token side (64 px -> 8x8 tokens)
SIDES_IN_CELLS = (2, 3)    # shapes are 16 or 24 pixels wide
GAP = 1                    # empty cells between two shapes
HELDOUT_PAIRS = frozenset({("red", "triangle"), ("green", "square"), ("blue", "circle")})
SPLITS = {"train": 0, "test": 1, "heldout": 2}
ALL_PAIRS = tuple((c, s) for c in COLOURS for s in SHAPES)


@dataclass(frozen=True)
class SceneObject:
    colour: str
    shape: str
    pixel_box: tuple[int, int, int, int]  # half-open [x1, x2) x [y1, y2) on the canvas

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"

    @property
    def box(self) -> Box:
        return from_pixel_box(*self.pixel_box, CANVAS, CANVAS)


@dataclass(frozen=True)
class Scene:
    spec: SceneSpec
    objects: tuple[SceneObject, ...]  # chain order: groups as in the prompt, each left to right

    @property
    def prompt(self) -> str:
        return format_prompt(self.spec)

    @property
    def layout(self) -> Layout:
        return Layout(tuple(ObjectBox(o.name, o.box) for o in self.objects))

    @cached_property
    def chain(self) -> str:
        return ground_truth_chain(self)

    def render(self) -> np.ndarray:
        return render(self.objects)


def ground_truth_chain(scene: Scene) -> str:
    """The plan a perfect model writes: every object tagged with its box, joined like the prompt."""
    return model_wording(list(scene.layout.objects), scene.spec)


def render(objects, size: int = CANVAS) -> np.ndarray:
    """Draw shapes (``SceneObject``s) crisply on a white canvas; ``[size, size, 3]`` uint8."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    for obj in objects:
        x1, y1, x2, y2 = obj.pixel_box
        colour = COLOURS[obj.colour]
        if obj.shape == "circle":
            draw.ellipse((x1, y1, x2 - 1, y2 - 1), fill=colour)
        elif obj.shape == "square":
            draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=colour)
        else:  # triangle pointing up, touching all four sides of its box
            draw.polygon([(x1, y2 - 1), (x2 - 1, y2 - 1), ((x1 + x2 - 1) / 2, y1)], fill=colour)
    return np.asarray(image, dtype=np.uint8).copy()


# -- sampling -------------------------------------------------------------------------------

def _separated(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    margin = GAP * CELL
    return (a[2] + margin <= b[0] or b[2] + margin <= a[0] or
            a[3] + margin <= b[1] or b[3] + margin <= a[1])


def _random_box(rng: np.random.Generator) -> tuple[int, int, int, int]:
    cells = CANVAS // CELL
    side = int(rng.choice(SIDES_IN_CELLS))
    x, y = (int(v) * CELL for v in rng.integers(0, cells - side + 1, size=2))
    return (x, y, x + side * CELL, y + side * CELL)


def layout_for(spec: SceneSpec, rng: np.random.Generator, tries: int = 2000) -> Scene:
    """A random scene satisfying ``spec`` (non-overlapping shapes, the relation true)."""
    for _ in range(tries):
        boxes: list[tuple[int, int, int, int]] = []
        for _ in range(spec.num_objects):
            for _ in range(100):
                box = _random_box(rng)
                if all(_separated(box, other) for other in boxes):
                    boxes.append(box)
                    break
        if len(boxes) < spec.num_objects:
            continue
        objects, start = [], 0
        for group in spec.groups:
            mine = sorted(boxes[start:start + group.count])  # left to right (then top to bottom)
            objects += [SceneObject(group.colour, group.shape, b) for b in mine]
            start += group.count
        if spec.relation is not None and relation(objects[0].box, objects[1].box) != spec.relation:
            continue
        return Scene(spec, tuple(objects))
    raise RuntimeError(f"could not place {format_prompt(spec)!r} on the canvas")


def scene_for_prompt(prompt: str, seed: int = 0) -> Scene:
    """A ground-truth scene for any ShapeWorld prompt (raises ``ShapeWorldPromptError`` otherwise)."""
    return layout_for(parse_prompt(prompt), np.random.default_rng(seed))


def _sample_spec(rng: np.random.Generator, pairs: list[tuple[str, str]], must: list[tuple[str, str]] | None):
    """A random spec over ``pairs``; ``must`` (held-out pairs) forces a composition with one of them.

    Without ``must``, a single-object scene may use any pair (held-out pairs are seen alone).
    """
    if must:
        kind = rng.choice(["count", "conjunction", "relation"], p=[0.25, 0.3, 0.45])
    else:
        kind = rng.choice(["single", "count", "conjunction", "relation"], p=[0.2, 0.2, 0.25, 0.35])
    if kind == "single" and not must:
        return SceneSpec((Group(1, *ALL_PAIRS[int(rng.integers(len(ALL_PAIRS)))]),), None)
    n_groups = {"count": 1, "conjunction": int(rng.integers(2, 4)), "relation": 2}[str(kind)]
    chosen: list[tuple[str, str]] = []
    if must:
        chosen.append(must[int(rng.integers(len(must)))])
    while len(chosen) < n_groups:
        pair = pairs[int(rng.integers(len(pairs)))]
        if pair not in chosen:
            chosen.append(pair)
    rng.shuffle(chosen)
    if kind == "count":
        counts = [int(rng.integers(2, MAX_OBJECTS + 1))]
    elif kind == "conjunction":
        counts = [1] * n_groups
        while sum(counts) < MAX_OBJECTS and rng.random() < 0.4:
            counts[int(rng.integers(n_groups))] += 1
    else:
        counts = [1] * n_groups
    groups = tuple(Group(n, c, s) for n, (c, s) in zip(counts, chosen))
    rel = str(rng.choice(RELATIONS)) if kind == "relation" else None
    return SceneSpec(groups, rel)


def generate_split(split: str, count: int, seed: int = 0) -> list[Scene]:
    """``count`` scenes of a split; the same (split, count, seed) always gives the same scenes."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, SPLITS[split]])
    seen = [p for p in ALL_PAIRS if p not in HELDOUT_PAIRS]
    if split == "heldout":
        pairs, must = list(ALL_PAIRS), sorted(HELDOUT_PAIRS)
    else:
        pairs, must = seen, None
    return [layout_for(_sample_spec(rng, pairs, must), rng) for _ in range(count)]
