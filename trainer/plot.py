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


def plot_run(run_dir: str | Path, keys: list[str], output: str | Path, title: str | None = None,
             window: int = 10) -> Path:
    font = ImageFont.load_default(size=13)
    sheet = Image.new("RGB", (PANEL_W + 2 * MARGIN, 36 + len(keys) * (PANEL_H + MARGIN)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, 10), title or str(run_dir), fill="black", font=font)
    for row, key in enumerate(keys):
        steps, values = read_series(run_dir, key)
        top = 36 + row * (PANEL_H + MARGIN)
        box = (MARGIN, top + 18, MARGIN + PANEL_W, top + 18 + PANEL_H - 30)
        draw.rectangle(box, outline=(160, 160, 160))
        draw.text((MARGIN, top), key, fill="black", font=font)
        if len(steps) == 0:
            draw.text((box[0] + 8, box[1] + 8), "no values logged", fill=(150, 0, 0), font=font)
            continue
        lo, hi = float(values.min()), float(values.max())
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        s0, s1 = float(steps.min()), float(max(steps.max(), steps.min() + 1))

        def xy(s, v):
            return (box[0] + (s - s0) / (s1 - s0) * (box[2] - box[0]),
                    box[3] - (v - lo) / (hi - lo) * (box[3] - box[1]))

        for series, colour, width in ((values, (170, 190, 230), 1), (_smooth(values, window), (20, 60, 160), 2)):
            points = [xy(s, v) for s, v in zip(steps, series)]
            if len(points) > 1:
                draw.line(points, fill=colour, width=width)
            else:
                draw.ellipse([points[0][0] - 2, points[0][1] - 2, points[0][0] + 2, points[0][1] + 2], fill=colour)
        draw.text((box[2] + 4, box[1] - 6), f"{hi:.3g}", fill="black", font=font)
        draw.text((box[2] + 4, box[3] - 8), f"{lo:.3g}", fill="black", font=font)
        draw.text((box[0], box[3] + 4), f"step {int(s0)}", fill="black", font=font)
        draw.text((box[2] - 60, box[3] + 4), f"step {int(s1)}", fill="black", font=font)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
