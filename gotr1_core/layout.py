"""Layouts: labelled boxes on the 0-1000 grid, as data, pixels, masks and pictures.

A :class:`Layout` is what a reasoning chain plans, with the prose removed. It is
independent of resolution; :func:`to_pixel_box` maps it onto any ``width x height``.

Pixel convention (used everywhere: masks, drawing, rewards): a box edge at grid
value ``v`` lands on pixel boundary ``round_half_up(v * size / 1000)``, and the
pixel box is half-open ``[x1, x2) x [y1, y2)``, widened to at least one pixel.
So ``(0,0),(1000,1000)`` covers the whole image at every size, and two boxes that
share an edge on the grid share it in pixels too.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .images import to_pil
from .reasoning import GRID, Box, ChainObject, ParsedChain, format_chain, parse_chain, raise_if_invalid

Relation = Literal["left of", "right of", "above", "below", "overlapping"]
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below", "overlapping")
OVERLAP_FRACTION = 0.5
"""Boxes whose intersection covers more than this share of the smaller box are 'overlapping'."""


@dataclass(frozen=True)
class ObjectBox:
    """One planned object: its label and one box on the 0-1000 grid."""

    label: str
    box: Box

    @classmethod
    def of(cls, label: str, x1: int, y1: int, x2: int, y2: int) -> "ObjectBox":
        return cls(label, Box(x1, y1, x2, y2))


@dataclass(frozen=True)
class Layout:
    """The plan of a chain: labelled boxes in chain order.

    An object with several boxes appears once per box; ``unplaced`` keeps the
    labels the chain named without any box (rewards still need them).
    """

    objects: tuple[ObjectBox, ...] = ()
    unplaced: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def labels(self) -> list[str]:
        return [o.label for o in self.objects]

    @classmethod
    def from_chain(cls, chain: ParsedChain | str) -> "Layout":
        """Layout of a parsed chain, or of chain text (parsed tolerantly)."""
        parsed = parse_chain(chain) if isinstance(chain, str) else chain
        objects, unplaced = [], []
        for obj in parsed.objects:
            if not obj.boxes:
                unplaced.append(obj.label)
            objects.extend(ObjectBox(obj.label, box) for box in obj.boxes)
        return cls(tuple(objects), tuple(unplaced))

    def to_chain(self, separator: str = ", ", image_start: bool = True) -> str:
        """A minimal well-formed chain that plans exactly this layout.

        Consecutive boxes with the same label become one object with several boxes.
        """
        groups: list[tuple[str, list[Box]]] = []
        for obj in self.objects:
            if groups and groups[-1][0] == obj.label:
                groups[-1][1].append(obj.box)
            else:
                groups.append((obj.label, [obj.box]))
        groups += [(label, []) for label in self.unplaced]
        n = len(groups)
        texts = ("",) + tuple(separator for _ in range(n - 1)) + (("",) if n else ())
        objects = tuple(ChainObject(label, tuple(boxes), tuple(" " for _ in boxes)) for label, boxes in groups)
        return format_chain(ParsedChain(texts, objects, image_start))

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_dict(self) -> dict:
        return {
            "objects": [{"label": o.label, "box": list(o.box.as_tuple())} for o in self.objects],
            "unplaced": list(self.unplaced),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Layout":
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming the bad entry."""
        try:
            objects = tuple(ObjectBox(str(o["label"]), Box(*[int(v) for v in o["box"]])) for o in data["objects"])
            unplaced = tuple(str(x) for x in data.get("unplaced", ()))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a layout dict ({{'objects': [{{'label', 'box': [x1,y1,x2,y2]}}]}}): {exc}") from exc
        return cls(objects, unplaced)


def layout_from_text(text: str, strict: bool = False) -> Layout:
    """Layout from chain text; ``strict`` raises ``ChainSyntaxError`` on repairs."""
    parsed = parse_chain(text)
    if strict:
        raise_if_invalid(parsed)
    return Layout.from_chain(parsed)


# -- geometry on the grid --------------------------------------------------

def _scale(value: int, size: int) -> int:
    """Grid value -> pixel boundary, rounding half up, in exact integer arithmetic."""
    return (2 * value * size + GRID) // (2 * GRID)


def to_pixel_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    """Half-open pixel box ``(x1, y1, x2, y2)`` for a ``width x height`` image (at least 1 px)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    x1, y1 = _scale(box.x1, width), _scale(box.y1, height)
    x2, y2 = _scale(box.x2, width), _scale(box.y2, height)
    x1, y1 = min(x1, width - 1), min(y1, height - 1)
    return x1, y1, max(x2, x1 + 1), max(y2, y1 + 1)


def from_pixel_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
    """Grid box for a pixel box (clamped to the image, at least one grid unit)."""
    def grid(v: float, size: int) -> int:
        return int(min(max(math.floor(v * GRID / size + 0.5), 0), GRID))  # half up, as to_pixel_box

    gx1, gx2 = sorted((grid(x1, width), grid(x2, width)))
    gy1, gy2 = sorted((grid(y1, height), grid(y2, height)))
    if gx1 == gx2:
        gx1, gx2 = (gx1 - 1, gx2) if gx2 == GRID else (gx1, gx2 + 1)
    if gy1 == gy2:
        gy1, gy2 = (gy1 - 1, gy2) if gy2 == GRID else (gy1, gy2 + 1)
    return Box(gx1, gy1, gx2, gy2)


def masks(layout: Layout, width: int, height: int) -> torch.Tensor:
    """Per-object masks ``[N, H, W]`` float32 (1 inside the pixel box, 0 outside)."""
    out = torch.zeros((len(layout), height, width), dtype=torch.float32)
    for i, obj in enumerate(layout.objects):
        x1, y1, x2, y2 = to_pixel_box(obj.box, width, height)
        out[i, y1:y2, x1:x2] = 1.0
    return out


def area(box: Box) -> int:
    return (box.x2 - box.x1) * (box.y2 - box.y1)


def intersection(a: Box, b: Box) -> int:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    return max(w, 0) * max(h, 0)


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two grid boxes, in [0, 1]."""
    inter = intersection(a, b)
    return inter / (area(a) + area(b) - inter)


def relation(a: Box, b: Box) -> Relation:
    """Where ``a`` is relative to ``b``.

    'overlapping' when their intersection covers more than
    :data:`OVERLAP_FRACTION` of the smaller box; otherwise the direction of the
    larger centre displacement (ties count as horizontal). Image y grows
    downwards, so 'above' means a smaller y.
    """
    if intersection(a, b) > OVERLAP_FRACTION * min(area(a), area(b)):
        return "overlapping"
    dx = (a.x1 + a.x2) - (b.x1 + b.x2)  # twice the centre displacement
    dy = (a.y1 + a.y2) - (b.y1 + b.y2)
    if abs(dx) >= abs(dy):
        return "left of" if dx < 0 else "right of" if dx > 0 else "overlapping"
    return "above" if dy < 0 else "below"


# -- drawing -----------------------------------------------------------------

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75), (67, 99, 216), (46, 160, 67), (232, 113, 22), (165, 70, 205),
    (0, 150, 180), (214, 40, 200), (154, 99, 36), (128, 128, 0), (0, 128, 128),
)
"""Object colours, each readable on white and on ComfyUI's dark canvas (contrast >= 3 against both) and under
white label text. The Plan Editor (``web/gotr1/plan_layout.js``) holds the same list; a test keeps them equal."""


def _colour_key(label: str) -> bytes:
    """A label as the palette sees it: runs of spaces, tabs and newlines made one space, trimmed, ASCII lowercase
    (the same in JS, where Unicode case rules differ)."""
    folded = re.sub(r"[ \t\r\n]+", " ", label).strip(" ")
    return re.sub(r"[A-Z]", lambda m: m.group().lower(), folded).encode("utf-8")


def _fnv1a(data: bytes) -> int:
    """32-bit FNV-1a: a hash that JS computes to the same number (``Math.imul``), unlike Python's ``hash``."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def label_colours(labels: Sequence[str]) -> list[tuple[int, int, int]]:
    """One colour per label, the same wherever the plan is drawn — Layout Viewer, demo sheets, the Plan Editor.

    A label takes the palette colour its hash names; when another label of the
    same plan already has it, the next free one (so a plan's objects differ
    while there are colours left). The same label always shares its colour (two
    red squares are one kind of thing), and a label's colour does not depend on
    where in the plan it comes, only on the labels before it that collide.
    """
    chosen: dict[bytes, int] = {}
    out = []
    for label in labels:
        key = _colour_key(label)
        if key not in chosen:
            start, used = _fnv1a(key) % len(PALETTE), set(chosen.values())
            free = [i % len(PALETTE) for i in range(start, start + len(PALETTE)) if i % len(PALETTE) not in used]
            chosen[key] = free[0] if free else start
        out.append(PALETTE[chosen[key]])
    return out


def render_layout(
    layout: Layout,
    width: int = 512,
    height: int = 512,
    background: torch.Tensor | np.ndarray | None = None,
    labels: bool = True,
    fill_alpha: float = 0.18,
    colour: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """Draw the layout: box outlines, a light fill and the label inside each box.

    On a white canvas of ``width x height``, or over ``background`` (``[H,W,C]``
    in 0..1 or uint8, whose size then wins). Everything is drawn inside the
    boxes, so pixels outside every box keep the background. ``colour`` draws
    every box in one colour instead of one colour per object. Returns
    ``[H,W,3]`` float32 in 0..1.
    """
    if background is not None:
        base = to_pil(background)
        width, height = base.size
    else:
        if width <= 0 or height <= 0:
            raise ValueError(f"canvas size must be positive, got {width}x{height}")
        base = Image.new("RGB", (width, height), (255, 255, 255))
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    line = max(1, round(min(width, height) / 160))
    font_size = max(8, round(min(width, height) / 28))
    colours = [colour] * len(layout) if colour is not None else label_colours([o.label for o in layout.objects])
    for obj, colour in zip(layout.objects, colours):
        x1, y1, x2, y2 = to_pixel_box(obj.box, width, height)
        # PIL rectangles include their end pixel; our boxes are half-open.
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), fill=colour + (int(255 * fill_alpha),))
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=colour + (255,), width=line)
    if labels:
        for obj, colour in zip(layout.objects, colours):
            x1, y1, x2, y2 = to_pixel_box(obj.box, width, height)
            _draw_label(draw, obj.label, (x1, y1, x2, y2), colour, font_size, line)
    # Labels never spill outside their boxes: keep the overlay only inside the union of boxes.
    inside = masks(layout, width, height).amax(dim=0).numpy() if len(layout) else np.zeros((height, width))
    rgba = np.asarray(overlay).copy()
    rgba[..., 3] = (rgba[..., 3] * inside).astype(np.uint8)
    out = Image.alpha_composite(base.convert("RGBA"), Image.fromarray(rgba, "RGBA")).convert("RGB")
    return torch.from_numpy(np.asarray(out, dtype=np.float32) / 255.0)


MIN_LABEL_SIZE = 7  # px: smaller than this a label is not read, so it is shortened instead


def _wrapped(draw: ImageDraw.ImageDraw, words: list[str], font, width: int) -> list[str] | None:
    """``words`` in lines no wider than ``width`` (greedy), or None when a single word is wider."""
    lines: list[str] = []
    for word in words:
        if draw.textlength(word, font=font) + 4 > width:
            return None
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) + 4 <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines


def _fitted(draw: ImageDraw.ImageDraw, label: str, size: int, width: int, height: int):
    """``(lines, font)`` that show the whole label inside ``width x height``: on one line, else wrapped at spaces,
    at the largest size from ``size`` down to :data:`MIN_LABEL_SIZE`; if even that fails, one shortened line."""
    words = label.split()
    for font_size in range(size, MIN_LABEL_SIZE - 1, -1):
        font = ImageFont.load_default(size=font_size)
        lines = _wrapped(draw, words, font, width)
        if lines is not None and len(lines) * (font_size + 3) + 1 <= height:
            return lines, font
    font = ImageFont.load_default(size=MIN_LABEL_SIZE)
    text = " ".join(words)
    while len(text) > 1 and draw.textlength(text + "…", font=font) + 4 > width:
        text = text[:-1]
    return [text.rstrip() + "…"], font


def _draw_label(draw: ImageDraw.ImageDraw, label: str, box: tuple[int, int, int, int],
                colour: tuple[int, int, int], size: int, pad: int) -> None:
    """The whole label in the box's top-left corner (smaller or wrapped where the box is small), clipped to it."""
    x1, y1, x2, y2 = box
    inner_w, inner_h = x2 - x1 - 2 * pad, y2 - y1 - 2 * pad
    if inner_w < 6 or inner_h < MIN_LABEL_SIZE + 4 or not label.strip():
        return
    lines, font = _fitted(draw, label, size, inner_w, inner_h)
    text = "\n".join(lines)
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=3)
    bx, by = x1 + pad, y1 + pad
    draw.rectangle((bx, by, bx + right - left + 3, by + bottom - top + 3), fill=colour + (230,))
    draw.multiline_text((bx + 2 - left, by + 2 - top), text, font=font, fill=(255, 255, 255, 255), spacing=3)
