"""The Plan Editor: a plan shown as boxes on the canvas and edited with the mouse.

The drawing and the mouse live in the frontend extension (``web/gotr1/plan_editor.js``,
logic in ``web/gotr1/plan_layout.js``). The node's ``plan`` widget holds the edited
chain text — saved in the workflow file, travelling with it when it is shared — or
nothing, and then the incoming plan passes through unchanged. After each run the
node sends the incoming plan (repaired the way the Generator would draw it) and an
optional background picture to the widget.
"""

from __future__ import annotations

import torch

from gotr1_core.layout import Layout
from gotr1_core.reasoning import ChainSyntaxError, format_chain, parse_chain, well_formed

from . import services
from .layout_nodes import GOT_LAYOUT

ASPECT_RATIOS = ["1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16"]


class PlanEditor:
    CATEGORY = "GoT-R1/Layout"
    RETURN_TYPES = ("STRING", GOT_LAYOUT)
    RETURN_NAMES = ("chain", "layout")
    FUNCTION = "edit"
    DESCRIPTION = ("Shows a plan as labelled boxes: drag to move, drag corners and edges to resize, double-click "
                   "to rename, Add / Delete, Ctrl+Z / Ctrl+Y, arrow keys to nudge. Until you edit, the incoming "
                   "plan passes through unchanged; 'Reset' returns to it.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "plan": ("STRING", {
                    "multiline": True, "default": "",
                    "tooltip": "The edited plan as chain text, written by the canvas (you may also type it). "
                               "Empty: the incoming plan passes through unchanged."}),
                "aspect_ratio": (ASPECT_RATIOS, {
                    "default": "1:1", "tooltip": "The canvas' shape (the plan's grid is 0-1000 on both sides); "
                                                 "a background image sets its own."}),
            },
            "optional": {
                "chain": ("STRING", {"forceInput": True, "tooltip": "A plan to start from, e.g. the Reasoning "
                                                                    "Planner's chain."}),
                "layout": (GOT_LAYOUT, {"tooltip": "Or a layout to start from (used when no chain is connected)."}),
                "background": ("IMAGE", {"tooltip": "Drawn under the boxes, e.g. a previous generation."}),
            },
        }

    def edit(self, plan: str, aspect_ratio: str, chain: str | None = None, layout: Layout | None = None,
             background: torch.Tensor | None = None):
        if chain is not None and chain.strip():
            incoming = chain
        elif isinstance(layout, Layout):
            incoming = layout.to_chain()
        else:
            incoming = ""
        shown = format_chain(well_formed(parse_chain(incoming)))  # repaired, and strict-valid for the canvas
        if plan.strip():
            try:
                parsed = parse_chain(plan, strict=True)
            except ChainSyntaxError as exc:
                raise ValueError(f"the Plan Editor's plan is not a valid chain: {exc}. Fix it in the text box, "
                                 "or press Reset to pass the incoming plan through") from None
            out_chain, out_layout = plan, Layout.from_chain(parsed)
        else:
            out_chain = incoming
            out_layout = layout if isinstance(layout, Layout) else Layout.from_chain(incoming)
        picture = services.temp_image(background[0]) if background is not None and len(background) else None
        ui = {"gotr1_plan": [{"incoming": shown, "edited": bool(plan.strip()), "background": picture}]}
        return {"ui": ui, "result": (out_chain, out_layout)}


NODE_CLASS_MAPPINGS = {"GoTR1PlanEditor": PlanEditor}
NODE_DISPLAY_NAME_MAPPINGS = {"GoTR1PlanEditor": "GoT-R1 Plan Editor"}
