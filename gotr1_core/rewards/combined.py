"""A judge with the pieces GoT-R1's complete reward adds: the visual-quality score and the formula.

Every judge scores R_sem, R_spa, R_RI and R_PI; :class:`ScoredJudge` wraps one
so that ``score`` also fills ``r_hps`` from a quality model and combines the
rewards by the chosen formula. Everything that takes a judge (GRPO rollouts,
evaluation, the Reward Judge node, ``gotr1 judge``) takes it unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ..layout import Layout
from .base import Judge, Rewards
from .formula import RewardFormula


class ScoredJudge:
    """``judge``'s four rewards, ``quality``'s R_HPS (where given), combined by ``formula``."""

    def __init__(self, judge: Judge, quality=None, formula: RewardFormula | None = None):
        self.judge = judge
        self.quality = quality
        self.formula = formula or RewardFormula()
        if "r_hps" in self.formula.needs and quality is None:
            raise ValueError(f"reward formula {self.formula.describe()} multiplies by R_HPS: give a quality "
                             "model (quality_model / --quality) or use reward_formula v1")
        self.name = judge.name if quality is None else f"{judge.name}+{quality.name}"

    def __getattr__(self, name: str):
        return getattr(self.judge, name)  # the wrapped judge's own attributes (path, weights, ...)

    def offload(self) -> None:
        for part in (self.judge, self.quality):
            if hasattr(part, "offload"):
                part.offload()

    def score(self, prompts: Sequence[str], chains: Sequence[str], layouts: Sequence[Layout] | None,
              images, callback: Callable[[str, int, int], None] | None = None) -> Rewards:
        rewards = self.judge.score(prompts, chains, layouts, images, callback=callback)
        quality = None
        if self.quality is not None:
            if callback is not None:
                callback("quality", 0, len(prompts))
            quality = self.quality.score(prompts, images)
        return dataclasses.replace(rewards, r_hps=quality, formula=self.formula)
