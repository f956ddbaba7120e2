"""ComfyUI nodes of the GoT-R1 pack: thin adapters over ``gotr1_core``.

Each family lives in its own module and exports ``NODE_CLASS_MAPPINGS`` /
``NODE_DISPLAY_NAME_MAPPINGS``; this package merges them.
"""

from . import conditioning_nodes, judge_nodes, layout_nodes, model_nodes, plan_editor_nodes, services

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _module in (layout_nodes, plan_editor_nodes, model_nodes, judge_nodes, conditioning_nodes):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)

services.register_model_folder()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
