"""A bench's results as a table (markdown), JSON and a bar chart with the intervals."""

from __future__ import annotations

import json
from pathlib import Path


def table(report: dict, title: str) -> str:
    k = report["images_per_prompt"]
    lines = [f"{title} — {k} image(s) per prompt; fully correct by the render-back judge, 95 % interval over "
             "scenes; exact judge (the reward) beside; variety among a prompt's images",
             "",
             f"| category | scenes | render-back correct | exact judge | distinct images of {k} | distinct plans of {k} |",
             "|---|---|---|---|---|---|"]
    for name, row in report["categories"].items():
        low, high = row["ci"]
        lines.append(f"| {name} | {row['scenes']} | {row['renderback_correct']:.1%} [{low:.1%}, {high:.1%}] | "
                     f"{row['exact_correct']:.1%} | {row['distinct_images']:.1f} | {row['distinct_plans']:.1f} |")
    lines.append(f"| **mean of categories** | | {report['overall']:.1%} | | | |")
    return "\n".join(lines)


def chart(report: dict, path: Path, title: str) -> Path:
    """Bars per category (render-back correct, with its interval) beside the exact judge's share."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["categories"])
    rows = [report["categories"][n] for n in names]
    means = [100 * r["renderback_correct"] for r in rows]
    errors = [[100 * (r["renderback_correct"] - r["ci"][0]) for r in rows],
              [100 * (r["ci"][1] - r["renderback_correct"]) for r in rows]]
    x = range(len(names))
    fig, ax = plt.subplots(figsize=(7, 4.4), dpi=120)
    ax.bar([i - 0.2 for i in x], means, width=0.4, yerr=errors, capsize=4, label="render-back judge (95 % CI)",
           color="#3b6fb6")
    ax.bar([i + 0.2 for i in x], [100 * r["exact_correct"] for r in rows], width=0.4, label="exact judge (reward)",
           color="#bbbbbb")
    k = report["images_per_prompt"]
    ax.set_xticks(list(x), [f"{n}\n{r['scenes']} scenes\n{r['distinct_images']:.1f} of {k} images distinct"
                            for n, r in zip(names, rows)], fontsize=8)
    ax.set_ylabel("fully correct images (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write(report: dict, folder: Path, title: str) -> str:
    """``results.json``, ``results.md`` and ``chart.png`` in ``folder``; returns the table."""
    text = table(report, title)
    (folder / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (folder / "results.md").write_text(text + "\n", encoding="utf-8")
    chart(report, folder / "chart.png", title)
    return text


def score_table(report: dict, title: str, columns: dict[str, str], published: dict[str, dict], source: str,
                model: str) -> str:
    """A benchmark table in the paper's column order: our row measured (mean over images, 95 % interval over
    prompts), the published rows beside it, marked as such."""
    names = [key for key in columns if key in report["categories"]]
    k = report["images_per_prompt"]
    counts = ", ".join(f"{columns[n]} {report['categories'][n]['prompts']}" for n in names)
    lines = [f"{title} — {k} image(s) per prompt; prompts: {counts}; 95 % interval over prompts", "",
             "| model | " + " | ".join(columns[n] for n in names) + " | mean |",
             "|---" * (len(names) + 2) + "|"]
    cells = []
    for name in names:
        row = report["categories"][name]
        cells.append(f"{row['score']:.4f} [{row['ci'][0]:.3f}, {row['ci'][1]:.3f}]")
    lines.append(f"| **{model}** (measured here) | " + " | ".join(cells) + f" | {report['overall']:.4f} |")
    for other, values in published.items():
        shown = [values.get(n) for n in names]
        known = [v for v in shown if v is not None]
        complete = len(known) == len(shown) and known
        overall = values.get("overall") if len(names) == len(columns) else None  # a published overall, as printed
        mean = f"{overall:.4f}" if overall is not None else f"{sum(known) / len(known):.4f}" if complete else "—"
        lines.append(f"| {other} (published) | " + " | ".join("—" if v is None else f"{v:.4f}" for v in shown)
                     + f" | {mean} |")
    lines += ["", f"Published rows: {source}."]
    return "\n".join(lines)


def score_chart(report: dict, path: Path, title: str, columns: dict[str, str], published: dict[str, dict],
                model: str) -> Path:
    """Our score per category as bars with their intervals; the published rows as markers on the same axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [key for key in columns if key in report["categories"]]
    rows = [report["categories"][n] for n in names]
    means = [r["score"] for r in rows]
    errors = [[max(0.0, r["score"] - r["ci"][0]) for r in rows], [max(0.0, r["ci"][1] - r["score"]) for r in rows]]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 3.2, 4.4), dpi=120)
    x = list(range(len(names)))
    ax.bar(x, means, width=0.55, yerr=errors, capsize=4, color="#3b6fb6", label=f"{model} (measured, 95 % CI)")
    markers = "os^DvP*X"
    for i, (other, values) in enumerate(published.items()):
        points = [(j, values[n]) for j, n in enumerate(names) if values.get(n) is not None]
        if points:
            ax.scatter(*zip(*points), marker=markers[i % len(markers)], s=36, zorder=3, label=f"{other} (published)")
    ax.set_xticks(x, [columns[n] for n in names], fontsize=9)
    ax.set_ylabel("score")
    ax.set_ylim(0, max(1.0, max(means + [0]) * 1.1))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_scores(report: dict, folder: Path, title: str, columns: dict[str, str], published: dict[str, dict],
                 source: str, model: str) -> str:
    """``results.json``, ``results.md`` and ``chart.png`` of a benchmark with published rows; returns the table."""
    text = score_table(report, title, columns, published, source, model)
    (folder / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (folder / "results.md").write_text(text + "\n", encoding="utf-8")
    score_chart(report, folder / "chart.png", title, columns, published, model)
    return text
