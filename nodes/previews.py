"""Live previews while the model works: the image so far on the Generator's progress bar, the chain so far as
the Planner's progress text.

A preview costs a device sync and, for images, a VQ decode, so they are rationed by time: at most one every
``INTERVAL`` seconds, and never while previews have taken more than ``BUDGET`` (1 %) of the time since the
run began — a preview that took 10 ms waits until the run has gone on a second. What a preview costs around
it (caches, threads) is not timed: 1 % measured +1.0 % in all, 2 % measured +4.5 % (docs/generation.md).
Generation never waits for one.
"""

from __future__ import annotations

import time

import torch

from gotr1_core.generation import partial_image
from gotr1_core.images import to_pil
from gotr1_core.model.loading import GotModel

from . import services

PREVIEW_SIZE = 512  # the longest side ComfyUI shows a preview at
BUDGET = 0.01       # of a run's time for previews (what they cost around them roughly doubles it)
INTERVAL = 0.25     # seconds between previews, at least


class LivePreview:
    """A :data:`~gotr1_core.generation.PreviewCallback` that sends previews of the first row to ComfyUI."""

    def __init__(self, got: GotModel, bar=None, budget: float | None = None, interval: float | None = None):
        self.got, self.bar = got, bar
        self.budget = BUDGET if budget is None else budget
        self.interval = INTERVAL if interval is None else interval
        self.started = time.perf_counter()
        self.last = self.started
        self.spent = 0.0
        self.images = self.texts = 0  # previews sent of each kind

    @property
    def sent(self) -> int:
        return self.images + self.texts

    def __call__(self, stage: str, tokens: torch.Tensor, done: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.interval or self.spent > self.budget * (now - self.started):
            return
        if stage == "image" and self.bar is not None:
            picture = to_pil(partial_image(self.got, tokens[0, :done]))
            self.bar.update_absolute(self.bar.current, self.bar.total, preview=("JPEG", picture, PREVIEW_SIZE))
            self.images += 1
        elif stage == "reasoning":
            pad = self.got.token_ids.pad
            row = [t for t in tokens[0, :done].tolist() if t != pad]  # a finished row is padded after its end
            services.progress_text(self.got.tokenizer.decode(row, skip_special_tokens=False))
            self.texts += 1
        else:
            return
        self.last = time.perf_counter()
        self.spent += self.last - now

    def finish(self, chain: str | None = None, image: torch.Tensor | None = None) -> None:
        """Leave the finished work on the node, not the last partial preview: the first chain (as progress text)
        and the first image (``[H, W, 3]`` in 0..1), each if a preview of it was shown."""
        if chain is not None and self.texts:
            services.progress_text(chain)
        if image is not None and self.images and self.bar is not None:
            self.bar.update_absolute(self.bar.total, self.bar.total, preview=("JPEG", to_pil(image), PREVIEW_SIZE))
