"""Layout To Conditioning: a GoT-R1 plan steering any Stable Diffusion model.

Each planned object becomes one regional condition built the way ComfyUI's own
conditioning nodes build them, so every sampler that honours
``Conditioning (Set Area)``, ``Conditioning (Set Mask)`` or ``GLIGEN Textbox
Apply`` honours the plan:

* ``area`` — the object's label, encoded by CLIP, limited to its box as a
  fraction of the image (``("percentage", h, w, y, x)``), so it follows any
  latent size;
* ``mask`` — the same condition with a pixel mask of the box;
* ``gligen`` — GLIGEN text boxes (the label's unprojected pooled CLIP vector
  and the box in latent cells of 8 pixels) added to the base conditioning.

The base conditioning (the whole prompt) is kept first, for the scene as a whole.
"""

from __future__ import annotations

from gotr1_core.layout import Layout, masks, to_pixel_box
from gotr1_core.reasoning import GRID

from .layout_nodes import GOT_LAYOUT

CATEGORY = "GoT-R1/Conditioning"
LATENT_CELL = 8  # pixels per latent cell in Stable Diffusion VAEs
MODES = ("area", "mask", "gligen")


def _encode(clip, text: str, pooled: bool | str = True):
    return clip.encode_from_tokens(clip.tokenize(text), return_pooled=pooled)


def regional_conditioning(layout: Layout, clip, base: list, mode: str = "area", strength: float = 1.0,
                          width: int = 512, height: int = 512) -> list:
    """``base`` followed by one condition per object, limited to its box (``area`` or ``mask``)."""
    out = [[cond, dict(extra)] for cond, extra in base]
    for obj in layout.objects:
        cond, pooled = _encode(clip, obj.label)
        box = obj.box
        extra = {"pooled_output": pooled, "set_area_to_bounds": False}
        if mode == "area":  # as Conditioning (Set Area with Percentage): the weight is "strength"
            extra["area"] = ("percentage", (box.y2 - box.y1) / GRID, (box.x2 - box.x1) / GRID,
                             box.y1 / GRID, box.x1 / GRID)
            extra["strength"] = strength
        else:  # as Conditioning (Set Mask): the weight is "mask_strength" alone (ComfyUI multiplies the two)
            extra["mask"] = masks(Layout((obj,)), width, height)  # [1, H, W]
            extra["mask_strength"] = strength
        out.append([cond, extra])
    return out


def gligen_conditioning(layout: Layout, clip, base: list, gligen, width: int, height: int) -> list:
    """``base`` with one GLIGEN text box per object (kept after any boxes it already had)."""
    positions = []
    for obj in layout.objects:
        _, pooled = _encode(clip, obj.label, pooled="unprojected")
        x1, y1, x2, y2 = to_pixel_box(obj.box, width, height)
        positions.append((pooled, max(1, (y2 - y1) // LATENT_CELL), max(1, (x2 - x1) // LATENT_CELL),
                          y1 // LATENT_CELL, x1 // LATENT_CELL))
    out = []
    for cond, extra in base:
        extra = dict(extra)
        previous = list(extra["gligen"][2]) if "gligen" in extra else []
        extra["gligen"] = ("position", gligen, previous + positions)
        out.append([cond, extra])
    return out


class LayoutToConditioning:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING",)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "apply"
    DESCRIPTION = ("Turns a GoT-R1 layout into regional conditioning (area, mask or GLIGEN boxes) so the plan "
                   "steers a Stable Diffusion model.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "layout": (GOT_LAYOUT, {"tooltip": "From Reasoning Planner or Parse Chain."}),
                "clip": ("CLIP", {"tooltip": "The CLIP of the Stable Diffusion checkpoint; encodes each label."}),
                "conditioning": ("CONDITIONING", {"tooltip": "The whole prompt's conditioning (CLIP Text Encode); "
                                                             "kept for the scene as a whole."}),
                "mode": (list(MODES), {"default": "area",
                                       "tooltip": "area: each label limited to its box. mask: the same with a "
                                                  "pixel mask. gligen: GLIGEN text boxes (connect a GLIGEN model)."}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                                       "tooltip": "Weight of each object's condition (area and mask modes)."}),
                "width": ("INT", {"default": 512, "min": 64, "max": 16384, "step": 8,
                                  "tooltip": "Width of the image being generated (mask and gligen modes)."}),
                "height": ("INT", {"default": 512, "min": 64, "max": 16384, "step": 8,
                                   "tooltip": "Height of the image being generated (mask and gligen modes)."}),
            },
            "optional": {
                "gligen": ("GLIGEN", {"tooltip": "From GLIGEN Loader; needed in gligen mode."}),
            },
        }

    def apply(self, layout, clip, conditioning, mode: str, strength: float, width: int, height: int, gligen=None):
        if not isinstance(layout, Layout):
            raise ValueError("layout: connect a GoT-R1 layout (Reasoning Planner or Parse Chain)")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "gligen":
            if gligen is None:
                raise ValueError("gligen mode needs a GLIGEN model: connect GLIGEN Loader to 'gligen', "
                                 "or choose the area or mask mode")
            return (gligen_conditioning(layout, clip, conditioning, gligen, width, height),)
        return (regional_conditioning(layout, clip, conditioning, mode, strength, width, height),)


NODE_CLASS_MAPPINGS = {"GoTR1LayoutToConditioning": LayoutToConditioning}
NODE_DISPLAY_NAME_MAPPINGS = {"GoTR1LayoutToConditioning": "GoT-R1 Layout To Conditioning"}
