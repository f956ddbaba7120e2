"""Which scorer models the benchmarks use, by key: each one's folder, accepted model types and needed files.

Torch-free on purpose: the command line builds its options (and help) from it
without importing torch; :mod:`.scorers` checks and loads the models.
"""

from __future__ import annotations

from dataclasses import dataclass

CLIP_TOKENIZER = (("vocab.json", "merges.txt"), ("tokenizer.json",))
"""A CLIP folder's tokenizer files, one set or the other (the quality model's CLIP reads the same)."""


@dataclass(frozen=True)
class ScorerKind:
    """One scorer: its folder's name (the checkpoint the official evaluator uses), the model types it may hold,
    how messages name it, and the tokenizer files one of which it needs (none: no tokenizer)."""

    folder: str
    model_types: tuple[str, ...]
    what: str
    tokenizers: tuple[tuple[str, ...], ...] = ()


# The scorers, by key. Their folders are looked for under `gotr1-train bench --scorers`, or in models/gotr1/bench/
# for the Benchmark Scorer node.
SCORERS = {
    "vqa": ScorerKind("blip-vqa-capfilt-large", ("blip",), "BLIP VQA model", (("tokenizer.json",), ("vocab.txt",))),
    "clip": ScorerKind("clip-vit-base-patch32", ("clip",), "CLIP ViT-B/32", CLIP_TOKENIZER),
    "detector": ScorerKind("owlv2-base-patch16-ensemble", ("owlv2", "owlvit"), "open-vocabulary detector",
                           CLIP_TOKENIZER),
    "segmenter": ScorerKind("mask2former-swin-small-coco-instance", ("mask2former",), "Mask2Former instance model"),
    "color_clip": ScorerKind("clip-vit-large-patch14", ("clip",), "CLIP ViT-L/14", CLIP_TOKENIZER),
}
