"""The GoT-R1 reward interface: the rewards of each sample and the formula that combines them.

| reward | judges |
|---|---|
| ``r_sem`` | the chain covers the prompt's objects and attributes, nothing contradictory |
| ``r_spa`` | the planned boxes satisfy the prompt's spatial relations |
| ``r_ri``  | the image follows the plan (planned box vs the same object found in the image) |
| ``r_pi``  | the image follows the prompt |
| ``r_hps`` | visual quality: a Human Preference Score, where a quality model is loaded |

By default ``total = r_pi * (r_sem + r_spa) * r_ri`` (the ``v1`` formula): a product, so every stage
matters and any zero factor zeroes the sample; totals lie in [0, 2]. Other formulas are in ``formula.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from ..layout import Layout
from .formula import RewardFormula

REWARD_FIELDS = ("r_sem", "r_spa", "r_ri", "r_pi")


@dataclass
class Rewards:
    """Per-sample rewards in [0, 1], with what was checked for each sample."""

    r_sem: list[float]
    r_spa: list[float]
    r_ri: list[float]
    r_pi: list[float]
    explanations: list[list[str]] = field(default_factory=list)
    correct: list[bool] | None = None
    """Fully correct samples (every object right, every relation true), where the judge can tell."""
    detected: list[Layout] | None = None
    """What the judge found in each image (the boxes R_RI compares with the plan)."""
    r_hps: list[float] | None = None
    """Visual quality per sample, where a quality model scored the images."""
    formula: RewardFormula = field(default_factory=RewardFormula)

    def __post_init__(self) -> None:
        n = len(self.r_sem)
        named = REWARD_FIELDS + (("r_hps",) if self.r_hps is not None else ())
        if any(len(getattr(self, name)) != n for name in named):
            raise ValueError("every reward needs one value per sample")
        for name in named:
            for value in getattr(self, name):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} value {value} is outside [0, 1]")
        if "r_hps" in self.formula.needs and self.r_hps is None:
            raise ValueError(f"reward formula {self.formula.describe()} multiplies by R_HPS, visual quality, but "
                             "no quality model scored the images: give one (quality_model / --quality / the "
                             "Judge Loader's quality_model) or use reward_formula v1")
        if not self.explanations:
            self.explanations = [[] for _ in range(n)]

    def __len__(self) -> int:
        return len(self.r_sem)

    def values(self, i: int) -> dict[str, float]:
        """Sample ``i``'s rewards by name (``r_hps`` where scored)."""
        names = REWARD_FIELDS + (("r_hps",) if self.r_hps is not None else ())
        return {name: getattr(self, name)[i] for name in names}

    @property
    def total(self) -> list[float]:
        return [self.formula(**self.values(i)) for i in range(len(self))]

    def best(self) -> int:
        """Index of the sample with the highest total (the first on ties)."""
        totals = self.total
        return max(range(len(totals)), key=lambda i: (totals[i], -i))

    def to_list(self) -> list[dict]:
        rows = []
        for i, total in enumerate(self.total):
            row = {"index": i, "total": total, **self.values(i), "formula": self.formula.describe(),
                   "explanation": self.explanations[i]}
            if self.correct is not None:
                row["correct"] = self.correct[i]
            if self.detected is not None:
                row["detected"] = self.detected[i].to_dict()["objects"]
            rows.append(row)
        return rows

    def to_json(self) -> str:
        return json.dumps(self.to_list(), indent=2, ensure_ascii=False)

    def select(self, rows: Sequence[int]) -> "Rewards":
        """The rewards of ``rows`` only (one prompt's group, say)."""
        def pick(name):
            values = getattr(self, name)
            return None if values is None else [values[i] for i in rows]

        return Rewards(*(pick(name) for name in REWARD_FIELDS), explanations=pick("explanations"),
                       correct=pick("correct"), detected=pick("detected"), r_hps=pick("r_hps"), formula=self.formula)

    @classmethod
    def concat(cls, parts: Sequence["Rewards"]) -> "Rewards":
        def joined(name):
            return None if any(getattr(p, name) is None for p in parts) else [v for p in parts for v in getattr(p, name)]

        if len({p.formula for p in parts}) > 1:
            raise ValueError("cannot join rewards combined by different formulas")
        return cls(*(joined(name) for name in REWARD_FIELDS), explanations=joined("explanations"),
                   correct=joined("correct"), detected=joined("detected"), r_hps=joined("r_hps"),
                   formula=parts[0].formula)


class Judge(Protocol):
    """Scores a batch: one prompt, chain, layout and image per sample."""

    name: str

    def score(self, prompts: Sequence[str], chains: Sequence[str], layouts: Sequence[Layout] | None,
              images, callback: Callable[[str, int, int], None] | None = None) -> Rewards:
        """``images``: ``[B, H, W, 3]`` float in 0..1 (or a sequence of such arrays).
        ``layouts`` default to the chains' layouts. ``callback(stage, done, total)`` reports
        progress while scoring; raising inside it cancels."""
        ...
