"""``gotr1-train plot``: curves of a run's ``metrics.jsonl`` as a PNG, drawn with pillow.

Enough to put a reward curve in a README or an issue without TensorBoard or
matplotlib: one panel per metric, raw values faint, a moving average on top.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H, MARGIN = 560, 220, 48


def read_series(run_dir: str | Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one metric; a step logged twice (a resumed run) keeps its last value."""
    by_step: dict[int, float] = {}
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} a gotr1-train run folder?")
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if key in row:
                by_step[int(row["step"])] = float(row[key])
    steps = np.array(sorted(by_step))
    return steps, np.array([by_step[s] for s in steps])


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def _scaled(values: np.ndarray, log: bool) -> tuple[np.ndarray, float, float, bool]:
    """(values as drawn, labelled bottom, labelled top, drawn on a log scale): log10 of the values for a
    log panel, whose values at or below 0 are drawn at the smallest positive one; a series with nothing
    above 0 (or nothing at all) stays linear."""
    if log and len(values) and values.max() > 0:
        lo = float(values[values > 0].min())
        return np.log10(np.maximum(values, lo)), lo, float(values.max()), True
    if not len(values):
        return values, 0.0, 0.0, False
    return values, float(values.min()), float(values.max()), False


def plot_run(run_dir: str | Path, keys: list[str], output: str | Path, title: str | None = None,
             window: int = 10, log_keys: tuple[str, ...] | list[str] = ()) -> Path:
    """One panel per key, keys in ``log_keys`` on a log scale so one spike does not flatten the rest."""
    font = ImageFont.load_default(size=13)
    panels = []
    for key in keys:
        steps, values = read_series(run_dir, key)
        panels.append((key, steps, *_scaled(values, key in log_keys)))
    right = max([MARGIN] + [int(font.getlength(f"{v:.3g}")) + 10 for *_, lo, hi, _ in panels for v in (lo, hi)])
    sheet = Image.new("RGB", (MARGIN + PANEL_W + right, 36 + len(keys) * (PANEL_H + MARGIN)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, 10), title or str(run_dir), fill="black", font=font)
    for row, (key, steps, values, lo, hi, log) in enumerate(panels):
        top = 36 + row * (PANEL_H + MARGIN)
        box = (MARGIN, top + 18, MARGIN + PANEL_W, top + 18 + PANEL_H - 30)
        draw.rectangle(box, outline=(160, 160, 160))
        draw.text((MARGIN, top), key + (" (log scale)" if log else ""), fill="black", font=font)
        if len(steps) == 0:
            draw.text((box[0] + 8, box[1] + 8), "no values logged", fill=(150, 0, 0), font=font)
            continue
        bottom, ceiling = float(values.min()), float(values.max())
        if ceiling - bottom < 1e-9:  # a flat line sits mid-panel
            bottom, ceiling = bottom - 0.5, ceiling + 0.5
        s0, s1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))

        def xy(s, v):
            return (box[0] + (s - s0) / (s1 - s0) * (box[2] - box[0]),
                    box[3] - (v - bottom) / (ceiling - bottom) * (box[3] - box[1]))

        for curve, colour, width in ((values, (170, 190, 230), 1), (_smooth(values, window), (20, 60, 160), 2)):
            points = [xy(s, v) for s, v in zip(steps, curve)]
            if len(points) > 1:
                draw.line(points, fill=colour, width=width)
            else:
                draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=colour)
        draw.text((box[2] + 4, box[1] - 6), f"{hi:.3g}", fill="black", font=font)
        draw.text((box[2] + 4, box[3] - 8), f"{lo:.3g}", fill="black", font=font)
        draw.text((box[0], box[3] + 4), f"step {int(s0)}", fill="black", font=font)
        last = f"step {int(s1)}"
        draw.text((box[2] - font.getlength(last), box[3] + 4), last, fill="black", font=font)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
