"""The render-back judge: a second ShapeWorld evaluator, built another way than the reward.

GRPO optimises the exact judge (:mod:`gotr1_core.rewards.shapeworld_judge`),
whose shape test reads features of colour regions (fill ratio, narrow top rows, a circle's symmetry). A policy
learns whatever passes the judge it is trained on (before the symmetry test, circles on a square's base), so
the figures the pack reports come from this judge, which shares none of its decisions:

1. **Foreground, then colour.** A pixel is foreground when it is far from the
   white background (:data:`FOREGROUND_DISTANCE`); connected foreground
   regions are objects whatever their colour. A region's colour is the
   world colour nearest its median pixel, and at least :data:`MIN_PURITY` of
   its pixels must be nearest that colour (a region blending two colours is
   no world object).
2. **Shape by rendering back.** Each of the world's shapes is drawn with the
   world's own renderer (:func:`gotr1_core.shapeworld.scenes.render`) into the
   region's bounding box; the region must match the best of them with mask IoU
   at least :data:`MIN_SHAPE_IOU`, beat every other shape by
   :data:`MIN_MARGIN` (a blob halfway between two shapes — a circle on a
   square's base, a teardrop — matches both about equally, and is neither),
   and the box must have a size the world draws (within :data:`SIDE_SLACK_PX`).
3. **Nothing unexplained.** Foreground pixels outside every object's
   rendered shape (grown by one pixel for soft edges), small specks included,
   may cover at most :data:`MAX_UNEXPLAINED` of the image.

An image is *correct* when every region is a world object, the objects are
exactly the prompt's (colour, shape and count), the prompt's relation holds
between their boxes (:func:`gotr1_core.layout.relation`, the world's
definition) and nothing is unexplained. On the world's own pictures it is
right every time (tests); on generated pictures it disagrees with the exact
judge where a shape is not the world's shape, which is what it is for
(docs/shapeworld.md shows such images).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..images import to_uint8
from ..layout import from_pixel_box, relation
from .scenes import BACKGROUND, CANVAS, MAX_SIDE_PX, MIN_SIDE_PX, SceneObject, render
from .world import COLOURS, SHAPES, SceneSpec, parse_prompt

FOREGROUND_DISTANCE = 60.0
"""RGB distance from white beyond which a pixel belongs to a shape (the world's colours are 150+ away)."""
MIN_REGION_PX = 12
"""Smaller foreground regions are specks: not objects, but their pixels count as unexplained."""
MIN_PURITY = 0.85
MIN_SHAPE_IOU = 0.75
"""A triangle's thin tip loses most to soft edges: generated triangles that look right score 0.82 and up."""
MIN_MARGIN = 0.06
"""The world's own circle and square at the same box differ by 0.21 in IoU; generated round shapes by 0.07-0.2,
blobs between a circle and a square by less than 0.06 (docs/shapeworld.md shows both)."""
SIDE_SLACK_PX = 3
MAX_UNEXPLAINED = 0.01
"""Share of the image (41 px of 64 x 64) that may be foreground outside every object's shape."""

_NAMES = list(COLOURS)
_COLOURS = np.array([COLOURS[n] for n in _NAMES], dtype=np.float32)


@dataclass(frozen=True)
class FoundObject:
    colour: str | None          # None: no world colour (mixed region)
    shape: str | None           # None: matches no world shape well enough
    pixel_box: tuple[int, int, int, int]
    best_shape: str             # the world shape it matches best, accepted or not
    shape_iou: float            # mask IoU with that shape
    margin: float               # ... minus the IoU of the next best
    purity: float

    @property
    def name(self) -> str | None:
        return f"{self.colour} {self.shape}" if self.colour and self.shape else None


@dataclass
class Verdict:
    correct: bool
    objects: list[FoundObject]
    unexplained: float          # share of the image
    problems: list[str] = field(default_factory=list)


def _canvas_pixels(image) -> np.ndarray:
    pixels = to_uint8(image)
    if pixels.shape[:2] != (CANVAS, CANVAS):  # read at the world's scale, where its shapes are drawn
        pixels = np.asarray(Image.fromarray(pixels).resize((CANVAS, CANVAS), Image.BOX))
    return pixels.astype(np.float32)


def _template(shape: str, box: tuple[int, int, int, int]) -> np.ndarray:
    """The world's own drawing of ``shape`` filling ``box``, as a mask of the canvas."""
    return np.any(render([SceneObject(_NAMES[0], shape, box)]) != BACKGROUND, axis=-1)


def _read_region(pixels: np.ndarray, mask: np.ndarray,
                 box: tuple[int, int, int, int]) -> tuple[FoundObject, np.ndarray]:
    """The object a region is, and the pixels its rendered shape explains."""
    from scipy import ndimage  # here, not at import: scipy.ndimage adds 0.4 s to ComfyUI's start

    region = pixels[mask]
    nearest = np.linalg.norm(region[:, None, :] - _COLOURS[None], axis=-1).argmin(axis=1)
    colour_index = int(np.linalg.norm(np.median(region, axis=0) - _COLOURS, axis=-1).argmin())
    purity = float(np.mean(nearest == colour_index))
    colour = _NAMES[colour_index] if purity >= MIN_PURITY else None
    templates = {shape: _template(shape, box) for shape in SHAPES}
    scores = {shape: float((t & mask).sum() / (t | mask).sum()) for shape, t in templates.items()}
    best, runner_up = sorted(SHAPES, key=scores.get, reverse=True)[:2]
    x1, y1, x2, y2 = box
    sides_ok = all(MIN_SIDE_PX - SIDE_SLACK_PX <= side <= MAX_SIDE_PX + SIDE_SLACK_PX for side in (x2 - x1, y2 - y1))
    clear = scores[best] >= MIN_SHAPE_IOU and scores[best] - scores[runner_up] >= MIN_MARGIN
    shape = best if clear and sides_ok else None
    explained = ndimage.binary_dilation(templates[best]) if shape else np.zeros_like(mask)
    return FoundObject(colour, shape, box, best, scores[best], scores[best] - scores[runner_up], purity), explained


def read_image(image) -> tuple[list[FoundObject], float]:
    """The objects in an image (largest first) and the share of it that is foreground no object explains."""
    from scipy import ndimage  # here, not at import: scipy.ndimage adds 0.4 s to ComfyUI's start

    pixels = _canvas_pixels(image)
    foreground = np.linalg.norm(pixels - np.array(BACKGROUND, dtype=np.float32), axis=-1) > FOREGROUND_DISTANCE
    labels, _ = ndimage.label(foreground, structure=np.ones((3, 3)))
    found, explained = [], np.zeros_like(foreground)
    for index, slices in enumerate(ndimage.find_objects(labels), start=1):
        mask = labels == index
        if mask.sum() < MIN_REGION_PX:
            continue
        ys, xs = slices
        obj, covers = _read_region(pixels, mask, (xs.start, ys.start, xs.stop, ys.stop))
        found.append((int(mask.sum()), obj))
        explained |= covers
    unexplained = float((foreground & ~explained).sum() / foreground.size)
    return [obj for _, obj in sorted(found, key=lambda item: -item[0])], unexplained


def check_image(spec: SceneSpec, image) -> Verdict:
    """Whether ``image`` shows exactly the scene ``spec`` asks for (the module docstring says how it is read)."""
    objects, unexplained = read_image(image)
    problems = []
    for obj in objects:
        if obj.name is None:
            what = "no world colour" if obj.colour is None else (
                f"no world shape (IoU {obj.shape_iou:.2f} with a {obj.best_shape}, {obj.margin:.2f} above the next)")
            problems.append(f"object at {obj.pixel_box}: {what}")
    found = Counter(o.name for o in objects if o.name)
    expected = Counter(spec.object_names())
    if found != expected:
        problems.append(f"objects: missing {dict(expected - found) or 'nothing'}, "
                        f"extra {dict(found - expected) or 'nothing'}")
    if spec.relation and not problems:
        boxes = {o.name: from_pixel_box(*o.pixel_box, CANVAS, CANVAS) for o in objects}
        subject, other = (g.name for g in spec.groups)
        if subject == other:  # "a red circle left of a red circle": either may be the subject
            first, second = (from_pixel_box(*o.pixel_box, CANVAS, CANVAS) for o in objects)
            seen = relation(first, second) if relation(second, first) != spec.relation else spec.relation
        else:
            seen = relation(boxes[subject], boxes[other])
        if seen != spec.relation:
            problems.append(f"relation: '{subject}' is {seen} '{other}', the prompt says {spec.relation}")
    if unexplained > MAX_UNEXPLAINED:
        problems.append(f"unexplained foreground: {unexplained:.1%} of the image")
    return Verdict(not problems, objects, unexplained, problems)


class RenderBackJudge:
    """:func:`check_image` over a batch of prompts and images; the evaluation judge of ``gotr1-train eval``."""

    name = "render-back"

    def verdicts(self, prompts, images) -> list[Verdict]:
        if len(prompts) != len(images):
            raise ValueError("the render-back judge needs one prompt per image")
        specs = {p: parse_prompt(p) for p in set(prompts)}
        return [check_image(specs[p], image) for p, image in zip(prompts, images)]

    def correct(self, prompts, images) -> list[bool]:
        return [v.correct for v in self.verdicts(prompts, images)]
