"""ComfyUI entry point of the GoT-R1 node pack.

ComfyUI imports this folder from ``custom_nodes/``. The library packages
(``gotr1_core``) sit beside it; when the pack was cloned rather than
pip-installed they are found through this folder, appended (not prepended) to
``sys.path`` so nothing of ComfyUI's own is shadowed.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.append(_HERE)

WEB_DIRECTORY = "./web"
"""The Plan Editor's canvas widget: ES modules ComfyUI serves and loads as they are (no build step)."""

if __package__:  # imported as the pack (ComfyUI's custom_nodes/ loader, or Python by the folder's name)
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

    __all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
# else: read as a plain file, as pytest reads a test tree's top __init__.py when the folder's name is not a Python
# name (a clone called ComfyUI-GoT-R1): there is no package to register nodes from, and nothing to do.
