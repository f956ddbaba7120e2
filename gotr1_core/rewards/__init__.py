"""GoT-R1 rewards behind one :class:`Judge` interface."""

from .base import Judge, Rewards
from .mllm_judge import MLLMJudge
from .shapeworld_judge import ShapeWorldJudge

__all__ = ["Judge", "MLLMJudge", "Rewards", "ShapeWorldJudge"]
