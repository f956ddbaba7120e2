"""Matching planned boxes to boxes found in an image, shared by every judge."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ..layout import iou
from ..reasoning import Box


def count_match(expected: Counter, found: Counter) -> float:
    """Shared items over the larger multiset: missing and extra items both cost (1.0 for two empty sets)."""
    total = max(sum(expected.values()), sum(found.values()))
    return sum((expected & found).values()) / total if total else 1.0


def matched_iou(planned: list[tuple[str, Box]], found: list[tuple[str, Box]]) -> list[float]:
    """For each planned box, the IoU of its partner among found boxes of the same label (0 if none).

    Within a label, partners are chosen to maximise the total IoU (Hungarian matching).
    """
    scores = [0.0] * len(planned)
    for label in {lbl for lbl, _ in planned}:
        mine = [i for i, (lbl, _) in enumerate(planned) if lbl == label]
        theirs = [box for lbl, box in found if lbl == label]
        if not theirs:
            continue
        from scipy.optimize import linear_sum_assignment  # here: scipy.optimize costs ComfyUI's start 0.5 s

        matrix = np.array([[iou(planned[i][1], box) for box in theirs] for i in mine])
        rows, cols = linear_sum_assignment(matrix, maximize=True)
        for r, c in zip(rows, cols):
            scores[mine[r]] = float(matrix[r, c])
    return scores
