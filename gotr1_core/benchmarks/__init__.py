"""The paper's benchmarks' scoring, usable without the trainer: T2I-CompBench and GenEval.

* :mod:`.scorers` — the models, through transformers from local folders: BLIP
  VQA, an open-vocabulary detector (OWLv2 / OWL-ViT), Mask2Former; CLIP is
  :class:`gotr1_core.rewards.quality.ClipScorer`.
* :mod:`.phrases` — reading the prompts (noun phrases, related objects,
  adjectives) with written rules where the official code runs spaCy.
* :mod:`.compbench` and :mod:`.geneval` — each benchmark's official rules.

``gotr1-train bench`` (:mod:`trainer.bench`) draws and scores whole runs with
them; the Benchmark Scorer node scores a batch of images in a graph.
"""
