"""Live previews while the model works: the image so far on the Generator's progress bar, the chain so far as
the Planner's progress text.

A preview costs a device sync and, for images, a VQ decode, so they are rationed by time: at most one every
``interval`` seconds, and never while previews have taken more than ``budget`` of the time since the stage
began (5 %: a preview that took 50 ms waits until the stage has run a second). Generation never waits for one.
"""

from __future__ import annotations

import time

import torch

from gotr1_core.generation import partial_image
from gotr1_core.images import to_pil
from gotr1_core.model.loading import GotModel

from . import services

PREVIEW_SIZE = 512  # the longest side ComfyUI shows a preview at
BUDGET = 0.05       # the most of a run's time previews may take
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
        self.sent = 0

    def __call__(self, stage: str, tokens: torch.Tensor, done: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.interval or self.spent > self.budget * (now - self.started):
            return
        if stage == "image" and self.bar is not None:
            picture = to_pil(partial_image(self.got, tokens[0, :done]))
            self.bar.update_absolute(self.bar.current, self.bar.total, preview=("JPEG", picture, PREVIEW_SIZE))
        elif stage == "reasoning":
            pad = self.got.token_ids.pad
            row = [t for t in tokens[0, :done].tolist() if t != pad]  # a finished row is padded after its end
            services.progress_text(self.got.tokenizer.decode(row, skip_special_tokens=False))
        else:
            return
        self.sent += 1
        self.last = time.perf_counter()
        self.spent += self.last - now
