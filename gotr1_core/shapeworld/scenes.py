"""ShapeWorld scenes: layouts that satisfy a spec, ground-truth chains, pictures, splits.

Scenes live on a ``CANVAS`` x ``CANVAS`` pixel canvas with a white background,
read by the image tokenizer as 8x8 patches of ``CELL`` = 8 pixels. A shape
fills a box whose edges sit on a ``STEP`` = 2 pixel lattice (a quarter patch),
``MIN_SIDE_PX``-``MAX_SIDE_PX`` pixels wide and high (circles may be ellipses,
squares rectangles), ``GAP_PX`` (a patch) or more pixels from any other shape, and a stated
relation holds for the boxes under :func:`gotr1_core.layout.relation`. Every
scene is a valid plan (:func:`~gotr1_core.shapeworld.plans.valid_plan`), and
every valid plan draws with its shapes 6 px or more apart: with edges on even
pixels, two shapes then never share a patch.

Any plan box is drawn: :func:`drawn_box` puts each edge on the nearest lattice
line (at most 1 px, an eighth of a patch, from where the plan says) and gives
a side the world does not draw the nearest one it does, about the same centre.
A lattice rather than any pixel keeps the picture pieces a patch can hold to a
few thousand, which a VQ codebook of 1024 reproduces closely; the plan-vs-
image IoU this costs a box is about 0.1 (1.0 for a box on the lattice, which is
what ground-truth chains give: their boxes are the drawn pixel boxes exactly).
:func:`any_plan_box` goes the other way: a random integer box the world draws as
a given pixel box, the kind of plan a person writes.

Splits (:func:`split_of`) partition the scenes by what they are, not by how
a prompt words them (:func:`~gotr1_core.shapeworld.world.scene_key`), so no
evaluation scene can reach training in another wording, whatever the seed:

* ``train`` — scenes of the :data:`TRAIN_PAIRS`, plus every single object of
  the :data:`HELDOUT_PAIRS` alone ("a red triangle"); SFT images, VQ images and
  RL prompts come from here.
* ``test`` — scenes of the same kind as ``train`` that a fixed hash of the key
  reserves for evaluation (:data:`EVAL_SHARE` of the multi-object ones).
* ``rl_heldout`` — compositions with a held-out pair (no SFT image shows one):
  RL prompts and VQ images only.
* ``heldout`` — the compositions with a held-out pair the hash reserves: never
  trained on; RL may see *other* scenes with those pairs as prompts.
* ``zeroshot`` — every scene with a :data:`ZEROSHOT_PAIRS` pair: in no
  training data at all (no SFT image, no RL prompt, no VQ image).

Single objects are never reserved (the world has only 18), so ``test`` and
``heldout`` measure multi-object scenes. Each held-out pair is seen once on
its own so that its picture pieces are in the generator's vocabulary: an
image token is a colour-and-shape piece, and a piece never emitted in training
cannot be composed from others. A zero-shot pair is not even that.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from PIL import Image, ImageDraw

from ..layout import Layout, ObjectBox, from_pixel_box, relation
from ..reasoning import BOX_END, BOX_START, GRID, IMAGE_START, OBJ_END, OBJ_START, Box
from .world import COLOURS, MAX_OBJECTS, RELATIONS, SHAPES, Group, SceneSpec, format_prompt, parse_prompt, scene_key

CANVAS = 64
BACKGROUND = (255, 255, 255)
CELL = 8                   # pixels per image token side (64 px -> 8x8 tokens)
STEP = 2                   # box edges sit on even pixels
MIN_SIDE_PX, MAX_SIDE_PX = 16, 24
GAP_PX = 8                 # background pixels between two shapes: one patch, a plan's MIN_GAP
HELDOUT_PAIRS = frozenset({("red", "triangle"), ("green", "square"), ("blue", "circle")})
ZEROSHOT_PAIRS = frozenset({("yellow", "square"), ("cyan", "triangle"), ("purple", "circle")})
"""Each colour misses one shape in each set, and each shape one colour per set of three: every colour and shape is
still trained, in four of its pairs."""
ALL_PAIRS = tuple((c, s) for c in COLOURS for s in SHAPES)
TRAIN_PAIRS = tuple(p for p in ALL_PAIRS if p not in HELDOUT_PAIRS | ZEROSHOT_PAIRS)
SPLITS = {"train": 0, "test": 1, "heldout": 2, "zeroshot": 3, "rl_heldout": 4}
EVALUATION_SPLITS = ("test", "heldout", "zeroshot")
TRAINING_SPLITS = ("train", "rl_heldout")
EVAL_SHARE = 0.3
"""Share of multi-object scene keys reserved for evaluation (``test`` / ``heldout``), by a fixed hash of the key."""
EVAL_SCENE_SEED = 20261206
"""The one seed of the fixed evaluation lists (:func:`evaluation_scenes`): a run's seed changes samples, not scenes."""


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


def model_wording(objects: list[ObjectBox], spec: SceneSpec | None) -> str:
    """The chain in the world's own template (what the ground-truth chains look like); the relation word
    is ``spec``'s (none without a spec)."""
    tagged = [f"{OBJ_START}{o.label}{OBJ_END} {BOX_START}{o.box.format()}{BOX_END}" for o in objects]
    if spec is not None and spec.relation is not None and len(tagged) == 2:
        body = f"{tagged[0]} {spec.relation} {tagged[1]}"
    else:
        body = tagged[0] if len(tagged) == 1 else ", ".join(tagged[:-1]) + " and " + tagged[-1]
    return body + IMAGE_START


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

def _edge(value: int) -> int:
    """Nearest lattice line (pixels) to a grid coordinate, in exact integer arithmetic (no ties occur)."""
    return STEP * ((value * CANVAS * 2 + GRID * STEP) // (2 * GRID * STEP))


def drawn_box(box: Box) -> tuple[int, int, int, int]:
    """The pixel box the world draws for a planned box: edges on the nearest lattice lines, a side outside
    what the world draws replaced by the nearest one it does (about the same centre), inside the canvas."""
    def axis(lo: int, hi: int) -> tuple[int, int]:
        a, b = _edge(lo), _edge(hi)
        side = min(max(b - a, MIN_SIDE_PX), MAX_SIDE_PX)
        if side != b - a:
            a = STEP * math.floor((a + b - side) / (2 * STEP) + 0.5)
        a = min(max(a, 0), CANVAS - side)
        return a, a + side

    (x1, x2), (y1, y2) = axis(box.x1, box.x2), axis(box.y1, box.y2)
    return x1, y1, x2, y2


def any_plan_box(pixel_box: tuple[int, int, int, int], rng: np.random.Generator) -> Box:
    """A random integer box that :func:`drawn_box` draws as ``pixel_box`` (a lattice box of the world):
    each coordinate uniform over the grid values whose nearest lattice line is that edge."""
    def coordinate(edge: int) -> int:
        low = math.ceil((edge - STEP / 2) * GRID / CANVAS)
        high = math.ceil((edge + STEP / 2) * GRID / CANVAS) - 1
        return int(rng.integers(max(low, 0), min(high, GRID) + 1))

    return Box(*(coordinate(v) for v in pixel_box))


def _separated(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    return (a[2] + GAP_PX <= b[0] or b[2] + GAP_PX <= a[0] or
            a[3] + GAP_PX <= b[1] or b[3] + GAP_PX <= a[1])


def _random_box(rng: np.random.Generator) -> tuple[int, int, int, int]:
    w, h = (int(v) for v in rng.integers(MIN_SIDE_PX // STEP, MAX_SIDE_PX // STEP + 1, size=2) * STEP)
    x, y = int(rng.integers(0, (CANVAS - w) // STEP + 1)) * STEP, int(rng.integers(0, (CANVAS - h) // STEP + 1)) * STEP
    return (x, y, x + w, y + h)


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


def reserved_for_evaluation(key: str) -> bool:
    """Whether a fixed hash of the scene key puts it in the evaluation share (the same in every version)."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < EVAL_SHARE


def split_of(spec: SceneSpec) -> str:
    """The split a scene belongs to, in any wording (see the module docstring): exactly one per scene."""
    pairs = spec.pairs
    if pairs & ZEROSHOT_PAIRS:
        return "zeroshot"
    if spec.num_objects == 1:
        return "train"
    reserved = reserved_for_evaluation(scene_key(spec))
    if pairs & HELDOUT_PAIRS:
        return "heldout" if reserved else "rl_heldout"
    return "test" if reserved else "train"


def _sample_spec(rng: np.random.Generator, pairs: list[tuple[str, str]], must: list[tuple[str, str]] | None,
                 singles: bool):
    """A random spec over ``pairs``; ``must`` forces one of its pairs into the scene (with ``singles``, as a single
    object sometimes); without ``must``, a single object is any pair of ``pairs`` or the held-out pairs."""
    kinds, weights = ["single", "count", "conjunction", "relation"], [0.2, 0.2, 0.25, 0.35]
    if not singles:
        kinds, weights = kinds[1:], [0.25, 0.3, 0.45]
    kind = rng.choice(kinds, p=weights)
    if kind == "single":
        options = list(must) if must else [*pairs, *sorted(HELDOUT_PAIRS)]
        return SceneSpec((Group(1, *options[int(rng.integers(len(options)))]),), None)
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


def _split_sampler(split: str):
    """(pairs, must, singles) of the sampler whose scenes :func:`split_of` sorts into ``split`` (others rejected)."""
    held = sorted(HELDOUT_PAIRS)
    return {"train": (list(TRAIN_PAIRS), None, True),
            "test": (list(TRAIN_PAIRS), None, False),
            "heldout": ([*TRAIN_PAIRS, *held], held, False),
            "rl_heldout": ([*TRAIN_PAIRS, *held], held, False),
            "zeroshot": ([*TRAIN_PAIRS, *sorted(ZEROSHOT_PAIRS)], sorted(ZEROSHOT_PAIRS), True)}[split]


def generate_split(split: str, count: int, seed: int = 0, distinct: bool = False,
                   fewer: bool = False) -> list[Scene]:
    """``count`` scenes of a split, each with a random layout; the same arguments always give the same scenes.

    Every scene satisfies ``split_of(scene.spec) == split``. With ``distinct``
    no two share a scene key (raises when the split has fewer than ``count``,
    or with ``fewer`` returns the ones it found).
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    rng = np.random.default_rng([seed, SPLITS[split]])
    pairs, must, singles = _split_sampler(split)
    scenes, keys, misses = [], set(), 0
    while len(scenes) < count:
        spec = _sample_spec(rng, pairs, must, singles)
        key = scene_key(spec)
        if split_of(spec) != split or (distinct and key in keys):
            misses += 1
            if misses > 2000 + 50 * count:
                if fewer:
                    return scenes
                raise ValueError(f"the {split} split has fewer than {count} distinct scenes "
                                 f"(found {len(keys)}); ask for fewer")
            continue
        keys.add(key)
        scenes.append(layout_for(spec, rng))
    return scenes


def evaluation_scenes(split: str, count: int, fewer: bool = False) -> list[Scene]:
    """The fixed evaluation list of a split: ``count`` distinct scenes, the same for every run and seed (a longer
    list starts with the shorter one); with ``fewer``, all of them where the split holds fewer."""
    return generate_split(split, count, EVAL_SCENE_SEED, distinct=True, fewer=fewer)
