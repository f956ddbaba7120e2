"""Regions drawn by hand on the world's canvas, for the judges' shape tests."""

import numpy as np
from PIL import Image, ImageDraw

from gotr1_core.shapeworld.scenes import COLOURS, render

TOMBSTONE = (("ellipse", (20, 20, 41, 41)), ("rectangle", (20, 31, 41, 41)))
"""A circle's top half on a square's bottom half (fills 89 % of its box): what GRPO learnt to draw when fill alone
decided a shape, and no shape the world draws."""


def drawn(*strokes, colour: str = "red") -> np.ndarray:
    """One region drawn with PIL strokes (``("ellipse", box)``, ``("rectangle", box)``) on the world's canvas."""
    image = Image.fromarray(render([]))
    draw = ImageDraw.Draw(image)
    for kind, box in strokes:
        getattr(draw, kind)(box, fill=COLOURS[colour])
    return np.asarray(image)
