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
