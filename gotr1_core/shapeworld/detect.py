"""Read ShapeWorld objects back from an image: colour segmentation + shape features.

Each pixel takes the nearest of the world's colours or the white background
(pixels far from all of them are ignored); connected regions of one colour
become objects. The shape follows from how much of its bounding box a region
fills — a square fills all of it, a circle about pi/4, an upward triangle about
half — and, for triangles, from a top row much narrower than the bottom row.
Works on any image size; boxes are returned on the 0-1000 grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..images import to_uint8
from ..layout import from_pixel_box
from ..reasoning import Box
from .scenes import BACKGROUND
from .world import COLOURS

MAX_COLOUR_DISTANCE = 110.0
"""A pixel farther than this (RGB Euclidean) from every colour and white is noise."""
MIN_AREA_FRACTION = 0.008
"""Regions smaller than this share of the image (~33 px at 64 x 64) are noise."""

_NAMES = list(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _NAMES] + [BACKGROUND], dtype=np.float32)


@dataclass(frozen=True)
class Detection:
    colour: str
    shape: str
    box: Box
    fill: float  # share of the bounding box the region covers
    area: int  # pixels

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


def classify_shape(mask: np.ndarray) -> tuple[str, float]:
    """Shape of a region cropped to its bounding box, and the fill ratio used."""
    fill = float(mask.mean())
    rows = mask.sum(axis=1)
    top, bottom = rows[: max(1, len(rows) // 4)].mean(), rows[-max(1, len(rows) // 4):].mean()
    if fill >= 0.9:
        return "square", fill
    if fill <= 0.66 or (fill < 0.75 and top < 0.45 * bottom):
        return "triangle", fill
    return "circle", fill


def detect_objects(image) -> list[Detection]:
    """Objects found in an image, largest first."""
    from scipy import ndimage  # here, not at import: scipy.ndimage adds 0.4 s to ComfyUI's start

    pixels = to_uint8(image).astype(np.float32)
    height, width = pixels.shape[:2]
    distance = np.linalg.norm(pixels[:, :, None, :] - _PALETTE[None, None], axis=-1)
    nearest = distance.argmin(axis=-1)
    close = distance.min(axis=-1) <= MAX_COLOUR_DISTANCE
    min_area = max(4, int(MIN_AREA_FRACTION * height * width))
    found = []
    for index, colour in enumerate(_NAMES):
        labels, count = ndimage.label((nearest == index) & close)
        for region, slices in enumerate(ndimage.find_objects(labels), start=1):
            if slices is None:
                continue
            mask = labels[slices] == region
            area = int(mask.sum())
            if area < min_area:
                continue
            shape, fill = classify_shape(mask)
            ys, xs = slices
            box = from_pixel_box(xs.start, ys.start, xs.stop, ys.stop, width, height)
            found.append(Detection(colour, shape, box, fill, area))
    return sorted(found, key=lambda d: -d.area)
