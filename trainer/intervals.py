"""Confidence intervals over distinct scenes.

The images of one scene are not independent evidence: a layout the model
draws wrong it tends to draw wrong every time, so K images of a scene count
as one observation (the scene's mean), and intervals come from resampling
scenes, not images (the percentile bootstrap). Two models compared on the
same scenes resample the scenes' differences together (paired), which is
much tighter than two separate intervals; a difference whose interval holds
0 is a tie.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 4000
LEVEL = 0.95


def per_scene(values, group: int) -> np.ndarray:
    """Means of consecutive runs of ``group`` values (one run per scene: results are prompt-major)."""
    values = np.asarray(values, dtype=np.float64)
    if group < 1 or values.size % group:
        raise ValueError(f"{values.size} values do not split into scenes of {group}")
    return values.reshape(-1, group).mean(axis=1)


def bootstrap_interval(scene_values, level: float = LEVEL, resamples: int = RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``scene_values`` (one value per scene)."""
    values = np.asarray(scene_values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no scenes to bootstrap")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def paired_difference(a, b, level: float = LEVEL, resamples: int = RESAMPLES, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over the same scenes, its paired-bootstrap interval, and whether it is a tie (holds 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scenes differ in number: {a.size} and {b.size}")
    low, high = bootstrap_interval(a - b, level, resamples, seed)
    return {"difference": float(np.mean(a - b)), "low": low, "high": high, "tie": bool(low <= 0 <= high)}
