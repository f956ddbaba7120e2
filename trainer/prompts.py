"""Where training and evaluation prompts come from.

A source is either ``shapeworld:<split>`` (the embedded world's generator, a
deterministic list from the seed) or a file: ``.txt`` with one prompt per line
(blank lines and ``#`` comments skipped) or ``.jsonl`` with a ``prompt`` field
per line (other fields are kept as metadata). ``a+b`` joins sources.
"""

from __future__ import annotations

import json
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
    """Records with at least a ``prompt`` key; ``count`` caps a file and sizes a ShapeWorld split.

    ``a+b`` joins sources (``count`` each), e.g. ``shapeworld:train+prompts.jsonl``.
    """
    if (problem := source_problem(source)) is not None:
        raise ValueError(problem)
    if "+" in source:
        return [r for part in source.split("+") for r in load_prompts(part, count, seed)]
    if source.startswith(SHAPEWORLD):
        from gotr1_core.shapeworld import generate_split

        split = source[len(SHAPEWORLD):]
        return [{"prompt": s.prompt, "split": split} for s in generate_split(split, count, seed)]
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
