"""Which evaluation scenes the shipped built-in model saw in training, and its figures on the rest.

The built-in model was trained at commit 40884c9, before the splits were made
clean. This script reads that commit's scene generator out of the repository's
own history (``git archive``), replays the training data its configs drew —
SFT scenes (``shapeworld_sft.yaml``: 50,000 ``train`` scenes, seed 0) and the
prompts each GRPO stage drew (its prompt list minus that commit's evaluation
strings, as its trainer removed them, batched by seed and step as
``trainer.prompts.batch_for_step`` still does) — and compares them by scene key
with today's evaluation lists. Given
``gotr1-train eval --output`` files, it splits their per-scene figures into
scenes the model saw and scenes it never saw, with intervals.

    python docs/scripts/builtin_seen_scenes.py [eval.json ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from gotr1_core.shapeworld import evaluation_scenes, prompt_scene_key  # noqa: E402
from trainer.intervals import bootstrap_interval  # noqa: E402
from trainer.prompts import batch_for_step  # noqa: E402

TRAINED_AT = "40884c9"
REPLAY = """
import json, sys
from gotr1_core.shapeworld import generate_split
held_out = {s.prompt for split in ("test", "heldout") for s in generate_split(split, 300, 0 + 101)}
def records(*splits):
    return [s.prompt for split in splits for s in generate_split(split, 10000, 0) if s.prompt not in held_out]
json.dump({"sft": sorted({s.prompt for s in generate_split("train", 50000, 0)}),
           "stage1": records("train", "heldout"), "stage23": records("heldout", "heldout", "train")}, sys.stdout)
"""
STAGES = (("stage1", 400, 8, 0), ("stage23", 240, 8, 0), ("stage23", 200, 8, 0), ("stage23", 200, 8, 7919))
"""(prompt list, steps, prompts per step, seed offset) of each GRPO stage: stage 2 ran twice and stage 3 twice, each
run drawing the same batches from the same seed; stage 3's plan prompts came from their own shuffle (seed + 7919)."""


def trained_prompts() -> dict[str, list[str]]:
    """The shipped model's SFT prompts and each GRPO stage's prompt list, from the commit it was trained at."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", TRAINED_AT, "gotr1_core"], check=True,
                             capture_output=True).stdout
    with tempfile.TemporaryDirectory() as folder:
        tarfile.open(fileobj=BytesIO(archive)).extractall(folder, filter="data")
        out = subprocess.run([sys.executable, "-c", REPLAY], cwd=folder, check=True, capture_output=True, text=True,
                             env={"PYTHONPATH": folder, "PATH": ""}).stdout
    return json.loads(out)


def main(paths: list[str]) -> None:
    trained = trained_prompts()
    sft = {prompt_scene_key(p) for p in trained["sft"]}
    grpo = {prompt_scene_key(p) for name, steps, size, offset in STAGES
            for step in range(steps) for p in batch_for_step(trained[name], step, size, offset)}
    seen = sft | grpo
    for split in ("test", "heldout", "zeroshot"):
        keys = [prompt_scene_key(s.prompt) for s in evaluation_scenes(split, 300)]
        print(f"{split}: of 300 scenes, {sum(k in sft for k in keys)} were SFT scenes, "
              f"{sum(k in grpo for k in keys)} GRPO prompts drawn, {sum(k not in seen for k in keys)} never seen")
    for path in paths:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
        print(f"\n{path} ({report['prompts']}, {report['samples']} samples per scene)")
        if "per_scene" not in report:
            print("  no per-scene rows: write it with gotr1-train eval ... --output FILE (a ShapeWorld split)")
            continue
        for name, keep in (("seen", lambda k: k in seen), ("never seen", lambda k: k not in seen)):
            rows = [r for r in report["per_scene"] if keep(prompt_scene_key(r["prompt"]))]
            if not rows:
                continue
            for key in ("renderback_correct", "correct", "distinct_layouts"):
                values = [r[key] for r in rows]
                low, high = bootstrap_interval(values)
                print(f"  {name:<10} {len(rows):>3} scenes  {key:<18} {np.mean(values):6.3f}  [{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main(sys.argv[1:])
