"""ShapeWorld: the embedded default domain — coloured shapes, prompts, ground-truth plans."""

from .scenes import (
    CANVAS,
    HELDOUT_PAIRS,
    SPLITS,
    Scene,
    SceneObject,
    generate_split,
    ground_truth_chain,
    layout_for,
    render,
    scene_for_prompt,
)
from .world import (
    COLOURS,
    RELATIONS,
    SHAPES,
    Group,
    SceneSpec,
    ShapeWorldPromptError,
    canonical_prompt,
    format_prompt,
    parse_prompt,
    suggest_prompt,
)

__all__ = [
    "CANVAS", "COLOURS", "HELDOUT_PAIRS", "RELATIONS", "SHAPES", "SPLITS", "Group", "Scene", "SceneObject",
    "SceneSpec", "ShapeWorldPromptError", "canonical_prompt", "format_prompt", "generate_split",
    "ground_truth_chain", "layout_for", "parse_prompt", "render", "scene_for_prompt", "suggest_prompt",
]
