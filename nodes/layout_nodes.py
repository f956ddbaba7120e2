"""Nodes that turn chains into layouts and layouts into pictures and masks."""

from __future__ import annotations

import torch

from gotr1_core.layout import Layout, masks, render_layout
from gotr1_core.reasoning import diagnostics_text, parse_chain, raise_if_invalid

GOT_LAYOUT = "GOT_LAYOUT"
CATEGORY = "GoT-R1/Layout"


class ParseChain:
    """Chain text -> GOT_LAYOUT, with a report of everything that was repaired."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (GOT_LAYOUT, "STRING")
    RETURN_NAMES = ("layout", "diagnostics")
    FUNCTION = "parse"
    DESCRIPTION = "Reads the objects and boxes of a GoT-R1 reasoning chain."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "chain": ("STRING", {
                    "multiline": True,
                    "default": "",
                    "tooltip": "Reasoning chain: text with <|obj_start|>name<|obj_end|>"
                               "<|box_start|>(x1,y1),(x2,y2)<|box_end|> on a 0-1000 grid.",
                }),
                "strict": ("BOOLEAN", {
                    "default": False,
                    "tooltip": "On: stop with an error listing every problem (for chains you typed). "
                               "Off: repair what can be repaired and list it in 'diagnostics'.",
                }),
            }
        }

    def parse(self, chain: str, strict: bool):
        parsed = parse_chain(chain)
        if strict:
            raise_if_invalid(parsed)
        return (Layout.from_chain(parsed), diagnostics_text(parsed))


class LayoutViewer:
    """Draw a layout (or a chain's layout) and output per-object masks."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "masks")
    FUNCTION = "view"
    DESCRIPTION = "Draws the planned boxes with labels, on a blank canvas or over images."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "width": ("INT", {"default": 512, "min": 16, "max": 8192, "step": 8,
                                  "tooltip": "Canvas width when no background image is connected."}),
                "height": ("INT", {"default": 512, "min": 16, "max": 8192, "step": 8,
                                   "tooltip": "Canvas height when no background image is connected."}),
            },
            "optional": {
                "layout": (GOT_LAYOUT, {"tooltip": "Layout to draw; wins over 'chain' when both are given."}),
                "chain": ("STRING", {"multiline": True, "default": "",
                                     "tooltip": "Chain text to draw when no layout is connected."}),
                "image": ("IMAGE", {"tooltip": "Draw over these images (their size replaces width/height)."}),
            },
        }

    def view(self, width: int, height: int, layout: Layout | None = None, chain: str = "",
             image: torch.Tensor | None = None):
        if layout is None:
            if not chain or not chain.strip():
                raise ValueError("Layout Viewer needs a layout: connect a GOT_LAYOUT or type a chain")
            layout = Layout.from_chain(chain)
        if not isinstance(layout, Layout):
            raise TypeError(f"'layout' must be a GOT_LAYOUT, got {type(layout).__name__}")
        if image is not None:
            if image.ndim != 4 or image.shape[-1] not in (1, 3, 4):
                raise ValueError(f"'image' must be an IMAGE batch [B,H,W,C], got shape {tuple(image.shape)}")
            height, width = int(image.shape[1]), int(image.shape[2])
            drawn = torch.stack([render_layout(layout, background=frame) for frame in image])
        else:
            drawn = render_layout(layout, width, height).unsqueeze(0)
        object_masks = masks(layout, width, height)
        if len(layout) == 0:  # MASK consumers expect at least one mask
            object_masks = torch.zeros((1, height, width), dtype=torch.float32)
        return (drawn, object_masks)


NODE_CLASS_MAPPINGS = {
    "GoTR1ParseChain": ParseChain,
    "GoTR1LayoutViewer": LayoutViewer,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GoTR1ParseChain": "GoT-R1 Parse Chain",
    "GoTR1LayoutViewer": "GoT-R1 Layout Viewer",
}
