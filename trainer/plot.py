"""``gotr1-train plot``: curves of a run's ``metrics.jsonl`` as a PNG, drawn with matplotlib.

One panel per metric, stacked over a shared step axis: the raw values faint,
a moving average over them, ticks and a grid on both axes, and a log scale for
the keys asked for (a KL spike would flatten a linear panel).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PANEL_WIDTH, PANEL_HEIGHT = 8.0, 2.2   # inches per panel; 110 dpi
RAW, SMOOTH = "#9db4e6", "#143ca0"


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


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` values (the first ones average what there is so far)."""
    if window < 2 or len(values) < 2:
        return values
    sums = np.cumsum(np.insert(values.astype(float), 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def figure_for(run_dir: str | Path, keys: list[str], title: str | None = None, window: int = 10,
               log_keys: tuple[str, ...] | list[str] = ()):
    """The matplotlib figure :func:`plot_run` saves: one axes per key, in order."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(keys), 1, sharex=True, squeeze=False,
                                figsize=(PANEL_WIDTH, PANEL_HEIGHT * len(keys) + 0.6), dpi=110)
    for ax, key in zip(axes[:, 0], keys):
        steps, values = read_series(run_dir, key)
        log = key in log_keys and len(values) and values.max() > 0
        ax.set_title(key + (" (log scale)" if log else ""), loc="left", fontsize=10)
        ax.grid(True, which="major", alpha=0.35)
        if not len(steps):
            ax.text(0.5, 0.5, "no values logged", transform=ax.transAxes, ha="center", va="center", color="#960000")
            continue
        if log:
            ax.set_yscale("log")
            values = np.where(values > 0, values, values[values > 0].min())  # drawn at the smallest positive one
            ax.grid(True, which="minor", alpha=0.12)
        marker = "o" if len(steps) == 1 else None
        ax.plot(steps, values, color=RAW, linewidth=1, marker=marker, label="logged")
        if len(steps) >= window:  # on a log panel the average of the logs: one spike does not lift a whole window
            trend = 10 ** smooth(np.log10(values), window) if log else smooth(values, window)
            ax.plot(steps, trend, color=SMOOTH, linewidth=2, label=f"mean of {window}")
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("step")
    figure.suptitle(title or str(run_dir), x=0.01, ha="left", fontsize=11)
    figure.tight_layout()
    return figure


def plot_run(run_dir: str | Path, keys: list[str], output: str | Path, title: str | None = None,
             window: int = 10, log_keys: tuple[str, ...] | list[str] = ()) -> Path:
    """Draw ``keys`` of a run (``log_keys`` on a log scale) into the PNG ``output``."""
    import matplotlib.pyplot as plt

    figure = figure_for(run_dir, keys, title, window, log_keys)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out
