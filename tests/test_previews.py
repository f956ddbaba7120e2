"""Live previews: the partial image, what the nodes send while they work, and the time they may take."""

import time

import numpy as np
import pytest
import torch

from gotr1_core.demo import builtin_model_path
from gotr1_core.generation import GenerationConfig, decode_images, generate, partial_image
from gotr1_core.model.loading import load_model
from nodes import previews, services
from nodes.model_nodes import Generator, ModelLoader, ReasoningPlanner

PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module")
def got():
    return load_model(builtin_model_path(), device="cpu")


class RecordingBar:
    def __init__(self):
        self.current, self.total, self.previews = 3, 10, []

    def update_absolute(self, value, total=None, preview=None):
        if preview is not None:
            self.previews.append((value, total, preview))


def test_the_partial_image_is_the_drawn_patches_and_grey_for_the_rest(got):
    tokens = generate(got, PROMPT, GenerationConfig(seed=1), decode=False).image_ids[0]
    whole = decode_images(got, tokens[None])[0]
    torch.testing.assert_close(partial_image(got, tokens), whole)
    grid, patch = got.grid_size, got.image_size // got.grid_size
    half = partial_image(got, tokens[:20])
    for t in range(grid * grid):
        r, c = divmod(t, grid)
        cell = half[r * patch:(r + 1) * patch, c * patch:(c + 1) * patch]
        assert torch.all(cell == 0.5) == (t >= 20), t
    assert torch.all(partial_image(got, tokens[:0]) == 0.5)


def test_previews_reach_the_progress_bar_with_the_image_so_far(got):
    bar = RecordingBar()
    preview = previews.LivePreview(got, bar, budget=1.0, interval=0.0)
    config = GenerationConfig(num_samples=2, seed=1, check_every=16)
    result = generate(got, PROMPT, config, preview=preview)
    assert len(bar.previews) == got.num_image_tokens // 16 - 1  # every block but the last (the image is done)
    value, total, (kind, picture, size) = bar.previews[-1]
    assert (value, total, kind, size) == (3, 10, "JPEG", previews.PREVIEW_SIZE)
    assert picture.size == (got.image_size, got.image_size)
    drawn = partial_image(got, result.image_ids[0][:got.num_image_tokens - 16])
    assert abs(np.asarray(picture, dtype=np.float32).mean() / 255 - drawn.mean()) < 0.02


def test_previews_take_at_most_their_share_of_the_time(got, monkeypatch):
    """A preview that is slow (50 ms) is sent only while previews have taken <= their budget of the run so far."""
    real = previews.partial_image

    def slow(*args):
        time.sleep(0.05)
        return real(*args)

    monkeypatch.setattr(previews, "partial_image", slow)
    preview = previews.LivePreview(got, RecordingBar(), budget=0.05, interval=0.0)
    start = time.perf_counter()
    generate(got, PROMPT, GenerationConfig(num_samples=8, seed=1, check_every=1), preview=preview)
    elapsed = time.perf_counter() - start
    assert preview.sent >= 1 and preview.spent <= 0.05 * elapsed + 0.06, (preview.sent, preview.spent, elapsed)


def test_the_nodes_show_their_work_and_not_when_turned_off(monkeypatch):
    monkeypatch.setattr(previews, "INTERVAL", 0.0)
    monkeypatch.setattr(previews, "BUDGET", 1.0)
    texts, bars = [], []
    monkeypatch.setattr(services, "progress_text", texts.append)
    real_bar = services.progress_bar

    def recording_bar(total):
        bars.append(real_bar(total))
        bars[-1].previews = []
        update = bars[-1].update_absolute
        bars[-1].update_absolute = lambda v, t=None, preview=None: (
            bars[-1].previews.append(preview) if preview else None, update(v, t))
        return bars[-1]

    monkeypatch.setattr(services, "progress_bar", recording_bar)
    (model,) = ModelLoader().load("shapeworld-tiny (built in)", "auto", "cpu")
    chain, _ = ReasoningPlanner().plan(model, PROMPT, seed=0, temperature=-1.0, max_tokens=-1)
    assert texts and all(chain.startswith(t) for t in texts)  # the chain as it grew
    assert [len(t) for t in texts] == sorted(len(t) for t in texts) and len(texts[0]) < len(chain)
    assert texts[-1] == chain  # and the node is left showing it whole
    images, _, _ = Generator().generate(model, PROMPT, batch_size=2, cfg=-1.0, seed=0, text_temperature=-1.0,
                                        image_temperature=-1.0, chain=chain)
    assert bars[-1].previews and bars[-1].previews[0][0] == "JPEG"
    last = np.asarray(bars[-1].previews[-1][1], dtype=np.float32) / 255  # the node is left showing image 0, whole
    assert np.abs(last - images[0].numpy()).mean() < 0.03
    texts.clear()
    ReasoningPlanner().plan(model, PROMPT, seed=0, temperature=-1.0, max_tokens=-1, live_preview=False)
    Generator().generate(model, PROMPT, batch_size=2, cfg=-1.0, seed=0, text_temperature=-1.0,
                         image_temperature=-1.0, chain=chain, live_preview=False)
    assert texts == [] and bars[-1].previews == []
