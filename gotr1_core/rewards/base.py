"""The GoT-R1 reward interface: four rewards per sample and their product.

| reward | judges |
|---|---|
| ``r_sem`` | the chain covers the prompt's objects and attributes, nothing contradictory |
| ``r_spa`` | the planned boxes satisfy the prompt's spatial relations |
| ``r_ri``  | the image follows the plan (planned box vs the same object found in the image) |
| ``r_pi``  | the image follows the prompt |

``total = r_pi * (r_sem + r_spa) * r_ri``: a product, so every stage matters
and any zero factor zeroes the sample. Totals lie in [0, 2].
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from ..layout import Layout


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

    def __post_init__(self) -> None:
        n = len(self.r_sem)
        if not (len(self.r_spa) == len(self.r_ri) == len(self.r_pi) == n):
            raise ValueError("every reward needs one value per sample")
        for name in ("r_sem", "r_spa", "r_ri", "r_pi"):
            for value in getattr(self, name):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{name} value {value} is outside [0, 1]")
        if not self.explanations:
            self.explanations = [[] for _ in range(n)]

    def __len__(self) -> int:
        return len(self.r_sem)

    @property
    def total(self) -> list[float]:
        return [pi * (sem + spa) * ri for sem, spa, ri, pi in zip(self.r_sem, self.r_spa, self.r_ri, self.r_pi)]

    def best(self) -> int:
        """Index of the sample with the highest total (the first on ties)."""
        totals = self.total
        return max(range(len(totals)), key=lambda i: (totals[i], -i))

    def to_list(self) -> list[dict]:
        rows = []
        for i, total in enumerate(self.total):
            row = {"index": i, "total": total, "r_sem": self.r_sem[i], "r_spa": self.r_spa[i],
                   "r_ri": self.r_ri[i], "r_pi": self.r_pi[i], "explanation": self.explanations[i]}
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

        return Rewards(*(pick(name) for name in ("r_sem", "r_spa", "r_ri", "r_pi")),
                       explanations=pick("explanations"), correct=pick("correct"), detected=pick("detected"))

    @classmethod
    def concat(cls, parts: Sequence["Rewards"]) -> "Rewards":
        def joined(name):
            return None if any(getattr(p, name) is None for p in parts) else [v for p in parts for v in getattr(p, name)]

        return cls(*(joined(name) for name in ("r_sem", "r_spa", "r_ri", "r_pi")),
                   explanations=joined("explanations"), correct=joined("correct"), detected=joined("detected"))


class Judge(Protocol):
    """Scores a batch: one prompt, chain, layout and image per sample."""

    name: str

    def score(self, prompts: Sequence[str], chains: Sequence[str], layouts: Sequence[Layout] | None,
              images, callback: Callable[[str, int, int], None] | None = None) -> Rewards:
        """``images``: ``[B, H, W, 3]`` float in 0..1 (or a sequence of such arrays).
        ``layouts`` default to the chains' layouts. ``callback(stage, done, total)`` reports
        progress while scoring; raising inside it cancels."""
        ...
