"""Where training and evaluation prompts come from.

A source is either ``shapeworld:<split>`` (the embedded world's generator: for
``train`` / ``rl_heldout`` a list drawn from the seed, for an evaluation split
its fixed list of distinct scenes, the same for every seed) or a file: ``.txt``
with one prompt per line (blank lines and ``#`` comments skipped) or ``.jsonl``
with a ``prompt`` field per line (other fields are kept as metadata). ``a+b``
joins sources.

Training never sees an evaluation scene in any wording (:func:`training_records`):
a prompt is compared by what it asks for (:func:`prompt_identity`), not by its text.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

SHAPEWORLD = "shapeworld:"


def source_problem(source: str) -> str | None:
    """Why ``source`` cannot be read (for config validation), or None."""
    if "+" in source:
        problems = [p for p in map(source_problem, source.split("+")) if p]
        return "; ".join(problems) or None
    if source.startswith(SHAPEWORLD):
        from gotr1_core.shapeworld.scenes import SPLITS

        split = source[len(SHAPEWORLD):]
        return None if split in SPLITS else f"unknown ShapeWorld split {split!r}; use one of {', '.join(SPLITS)}"
    path = Path(source)
    if path.suffix not in (".txt", ".jsonl"):
        return f"{source}: use shapeworld:<split>, a .txt file (one prompt per line) or a .jsonl file"
    if not path.is_file():
        return f"prompt file not found: {source}"
    return None


def load_prompts(source: str, count: int, seed: int = 0) -> list[dict]:
    """Records with at least a ``prompt`` key; ``count`` caps a file and sizes a ShapeWorld split (an evaluation
    split's fixed list: ``seed`` does not change it).

    ``a+b`` joins sources (``count`` each), e.g. ``shapeworld:train+prompts.jsonl``.
    """
    if (problem := source_problem(source)) is not None:
        raise ValueError(problem)
    if "+" in source:
        return [r for part in source.split("+") for r in load_prompts(part, count, seed)]
    if source.startswith(SHAPEWORLD):
        from gotr1_core.shapeworld.scenes import EVALUATION_SPLITS, evaluation_scenes, generate_split

        split = source[len(SHAPEWORLD):]
        scenes = evaluation_scenes(split, count) if split in EVALUATION_SPLITS else generate_split(split, count, seed)
        return [{"prompt": s.prompt, "split": split} for s in scenes]
    path = Path(source)
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or (path.suffix == ".txt" and line.lstrip().startswith("#")):
            continue
        if path.suffix == ".txt":
            records.append({"prompt": line.strip()})
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict) or not isinstance(record.get("prompt"), str) or not record["prompt"].strip():
            raise ValueError(f"{path}:{number}: each line needs a non-empty string field \"prompt\"")
        records.append(record)
    if not records:
        raise ValueError(f"{path} holds no prompts")
    return records[:count]


def prompt_identity(prompt: str) -> str:
    """What a prompt asks for, for comparing prompts: a ShapeWorld prompt's scene key (the same for every wording
    of one scene); any other prompt's text, lower case, spacing and final punctuation dropped."""
    from gotr1_core.shapeworld.world import ShapeWorldPromptError, prompt_scene_key

    try:
        return prompt_scene_key(prompt)
    except ShapeWorldPromptError:
        return re.sub(r"\s+", " ", prompt.lower()).strip().rstrip(".!?").strip()


def is_evaluation_scene(prompt: str) -> bool:
    """Whether a ShapeWorld prompt, in any wording, is a scene of an evaluation split (never trained on)."""
    from gotr1_core.shapeworld.scenes import EVALUATION_SPLITS, split_of
    from gotr1_core.shapeworld.world import ShapeWorldPromptError, parse_prompt

    try:
        return split_of(parse_prompt(prompt)) in EVALUATION_SPLITS
    except ShapeWorldPromptError:
        return False


def training_records(source: str, count: int, seed: int, evaluation: list[str] = ()) -> list[dict]:
    """The training prompts of ``source`` with every evaluation scene removed, whatever its wording: any ShapeWorld
    prompt of an evaluation split (:data:`~gotr1_core.shapeworld.scenes.EVALUATION_SPLITS`) and any prompt
    asking for what one of ``evaluation`` asks for (:func:`prompt_identity`). Raises when nothing is left."""
    held_out = {prompt_identity(p) for p in evaluation}
    records = load_prompts(source, count, seed)
    kept = [r for r in records if prompt_identity(r["prompt"]) not in held_out and not is_evaluation_scene(r["prompt"])]
    if not kept:
        raise ValueError(f"every training prompt of {source} is also an evaluation prompt (same scene in some "
                         "wording); train on shapeworld:train, shapeworld:rl_heldout or prompts of your own")
    return kept


def batch_for_step(records: list, step: int, size: int, seed: int) -> list:
    """The ``size`` records of a step: epochs over a seeded shuffle, so (seed, step) fixes the batch.

    A resumed run therefore sees exactly the prompts the interrupted one would have.
    """
    orders: dict[int, np.ndarray] = {}  # a step spans at most two epochs: shuffle each once
    out = []
    for position in range(step * size, (step + 1) * size):
        epoch, index = divmod(position, len(records))
        if epoch not in orders:
            orders[epoch] = np.random.default_rng([seed, epoch]).permutation(len(records))
        out.append(records[int(orders[epoch][index])])
    return out
