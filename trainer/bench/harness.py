"""Drawing a benchmark's images where its official evaluator looks for them, resumably.

Image *i* of a prompt comes from the sampling stream (seed, *i*) — the
generator promises the same image whatever the batch — so the images a
resumed run draws are the ones an uninterrupted run would have drawn, and a
run only ever draws the files that are missing. Each image is written to a
temporary name and renamed (a kill never leaves half a PNG), and its chain is
appended to ``chains.jsonl`` first (the last line for a file wins).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.images import to_pil

from ..checkpoint import _write_atomic_text
from .sources import sha256

CHAINS = "chains.jsonl"
DRAWN_BY = "drawn_by.json"


def weights_identity(folder: Path, **settings) -> dict:
    """What decides a benchmark folder's images besides prompt and index: the sha256 of every ``*.safetensors``
    file of the model folder, and ``settings`` (seed, quantization). Hashing reads the weights once (seconds for
    the built-in model, about half a minute for a 7B one), small next to drawing a benchmark's images."""
    digests = {path.name: sha256(path) for path in sorted(Path(folder).glob("*.safetensors"))}
    return {"weights_sha256": digests, **settings}


def claim(folder: Path, identity: dict) -> None:
    """Mark ``folder`` as holding images of ``identity`` (:func:`weights_identity`), or refuse: a resumed run keeps
    the images already there, so images of other weights or another seed would be mixed in silently."""
    record = Path(folder) / DRAWN_BY
    if record.exists():
        try:
            before = json.loads(record.read_text(encoding="utf-8"))
        except ValueError:
            before = None
        if before != identity:
            raise ValueError(f"{folder} holds images drawn by other weights or settings ({record}: {before}; this "
                             f"run: {identity}); give another --out, or delete the folder to draw them again")
        return
    if next(Path(folder).rglob("*.png"), None) is not None:
        raise ValueError(f"{folder} holds images but no record of the weights that drew them ({DRAWN_BY}); give "
                         "another --out, or delete the folder to draw them again")
    Path(folder).mkdir(parents=True, exist_ok=True)
    _write_atomic_text(record, json.dumps(identity, indent=1) + "\n")


def image_name(prompt: str, index: int) -> str:
    """T2I-CompBench's file name: the prompt itself, then the image's index (path separators replaced)."""
    return f"{prompt.replace(os.sep, '_').replace(chr(0), '')}_{index:06d}.png"


def missing_runs(indices: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs ``(first, count)`` of sorted ``indices``: each run is one generation call."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][0] + runs[-1][1] == i:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


def draw(got, prompts: list[str], folder: Path, images_per_prompt: int, seed: int = 0, max_batch: int = 16,
         progress: Callable[[int, int], None] | None = None,
         name: Callable[[int, str, int], str] = lambda _, prompt, i: image_name(prompt, i)) -> int:
    """Write ``images_per_prompt`` images of each prompt into ``folder`` (skipping those already there); returns
    how many were drawn. ``name(prompt number, prompt, image index)`` is an image's path inside ``folder`` (default
    T2I-CompBench's); ``progress(done, total)`` after each prompt."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = 0
    for done, prompt in enumerate(prompts, 1):
        missing = [i for i in range(images_per_prompt) if not (folder / name(done - 1, prompt, i)).exists()]
        for first, count in missing_runs(missing):
            result = generate(got, [prompt], GenerationConfig(num_samples=count, seed=seed, first_index=first,
                                                              max_batch=max_batch))
            for j in range(count):
                relative = name(done - 1, prompt, first + j)
                with open(folder / CHAINS, "a", encoding="utf-8") as log:
                    log.write(json.dumps({"file": relative, "prompt": prompt, "index": first + j,
                                          "chain": result.chains[j]}, ensure_ascii=False) + "\n")
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.partial.png")
                to_pil(result.images[j]).save(partial)
                os.replace(partial, target)
                drawn += 1
        if progress is not None:
            progress(done, len(prompts))
    return drawn


def read_chains(folder: Path) -> dict[str, str]:
    """File name -> the chain its image was drawn from (the last record of a file wins)."""
    chains: dict[str, str] = {}
    path = folder / CHAINS
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                chains[record["file"]] = record["chain"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill: its image is drawn again
    return chains
