"""ShapeWorld: the embedded default domain — coloured shapes, prompts, ground-truth plans."""

from .scenes import (
    CANVAS,
    EVALUATION_SPLITS,
    HELDOUT_PAIRS,
    SPLITS,
    ZEROSHOT_PAIRS,
    Scene,
    SceneObject,
    evaluation_scenes,
    generate_split,
    ground_truth_chain,
    layout_for,
    render,
    scene_for_prompt,
    split_of,
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
    prompt_scene_key,
    scene_key,
    suggest_prompt,
)

__all__ = [
    "CANVAS", "COLOURS", "EVALUATION_SPLITS", "HELDOUT_PAIRS", "RELATIONS", "SHAPES", "SPLITS", "ZEROSHOT_PAIRS",
    "Group", "Scene", "SceneObject", "SceneSpec", "ShapeWorldPromptError", "canonical_prompt", "evaluation_scenes",
    "format_prompt", "generate_split", "ground_truth_chain", "layout_for", "parse_prompt", "prompt_scene_key",
    "render", "scene_for_prompt", "scene_key", "split_of", "suggest_prompt",
]
