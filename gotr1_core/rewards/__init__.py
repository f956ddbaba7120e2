"""GoT-R1 rewards behind one :class:`Judge` interface."""

from .base import Judge, Rewards
from .shapeworld_judge import ShapeWorldJudge

__all__ = ["Judge", "Rewards", "ShapeWorldJudge"]
