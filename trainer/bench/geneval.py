"""A GenEval run's folder: writing the layout GenEval's evaluator reads, and scoring it.

``OUT/{index:05d}/metadata.jsonl`` (the prompt's metadata line, as GenEval's
generation script writes it) and ``OUT/{index:05d}/samples/{i:05d}.png``; the
rules are :mod:`gotr1_core.benchmarks.geneval`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from gotr1_core.benchmarks import geneval
from gotr1_core.benchmarks.scorers import Detection

from ..intervals import bootstrap_interval

TASKS, COLUMNS = geneval.TASKS, geneval.COLUMNS


def folder_name(index: int) -> str:
    return f"{index:05d}"



def sample_name(index: int) -> str:
    return f"{index:05d}.png"



def read_metadata(path: Path) -> list[dict]:
    """GenEval's prompt list: one JSON object per line, each with ``tag``, ``prompt`` and ``include``."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or not {"tag", "prompt", "include"} <= set(row):
            raise ValueError(f"{path}:{number}: a GenEval metadata line needs tag, prompt and include")
        rows.append(row)
    return rows



def write_metadata(out: Path, rows: list[dict]) -> None:
    """Each prompt's folder with its ``metadata.jsonl`` (one line: the prompt's metadata, as GenEval writes it)."""
    for index, row in enumerate(rows):
        folder = out / folder_name(index)
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "metadata.jsonl").write_text(json.dumps(row), encoding="utf-8")



def score_folder(out: Path, rows: list[dict], images_per_prompt: int, segmenter, clip, object_names: list[str],
                 seed: int = 0, progress=None) -> dict:
    """Score every prompt folder: per image (correct, reasons), per task (share correct, bootstrap interval over
    prompts) and overall (the mean of the tasks, as GenEval's summary prints it)."""
    names = geneval.label_names(segmenter.labels, object_names)
    colors = geneval.ColorClassifier(clip)
    report: dict = {"images_per_prompt": images_per_prompt, "categories": {}, "images": []}
    per_task: dict[str, list[float]] = {}
    for index, row in enumerate(rows):
        verdicts = []
        for i in range(images_per_prompt):
            path = out / folder_name(index) / "samples" / sample_name(i)
            if not path.is_file():
                raise ValueError(f"{path}: missing; draw the images first (the bench resumes where it stopped)")
            image = Image.open(path).convert("RGB")
            found = [Detection(names.get(d.label, d.label), d.score, d.box, d.mask)
                     for d in segmenter.detect(image)]
            correct, reasons = geneval.evaluate(image, geneval.keep_objects(found, row["tag"]), row, colors)
            verdicts.append(correct)
            report["images"].append({"category": row["tag"], "file": f"{folder_name(index)}/samples/{sample_name(i)}",
                                     "prompt": row["prompt"], "correct": correct, "reasons": reasons})
        per_task.setdefault(row["tag"], []).append(float(np.mean(verdicts)))
        if progress is not None:
            progress()
    for tag in [t for t in geneval.TASKS if t in per_task] + [t for t in per_task if t not in geneval.TASKS]:
        low, high = bootstrap_interval(per_task[tag], seed=seed)
        report["categories"][tag] = {"prompts": len(per_task[tag]), "score": float(np.mean(per_task[tag])),
                                     "ci": [low, high]}
    report["overall"] = float(np.mean([row["score"] for row in report["categories"].values()]))
    return report
