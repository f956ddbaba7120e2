"""Batches that fit: chunks sized by the memory plan, halved on out-of-memory, results independent of chunking."""

import pytest
import torch

from gotr1_core import generation
from gotr1_core.fitting import fitting_chunk, generate_fitting
from gotr1_core.generation import GenerationConfig, encode_prompt, generate
from gotr1_core.memory import plan_memory
from gotr1_core.model.loading import load_model

from tiny_janus import make_tiny_model

PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model(make_tiny_model(tmp_path_factory.mktemp("m") / "model", stop_bias=3.0), device="cpu")


def _same(a, b):
    assert a.chains == b.chains and a.streams == b.streams
    assert torch.equal(a.image_ids, b.image_ids)
    torch.testing.assert_close(a.images, b.images, atol=1e-5, rtol=0)


class OutOfMemoryAbove:
    """Makes the image stage raise torch.OutOfMemoryError for more than ``rows`` images at once."""

    def __init__(self, rows):
        self.rows, self.sizes = rows, []
        self.real = generation._draw

    def __call__(self, got, cond_ids, *args, **kwargs):
        self.sizes.append(len(cond_ids))
        if len(cond_ids) > self.rows:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return self.real(got, cond_ids, *args, **kwargs)


def test_out_of_memory_halves_the_chunk_and_the_images_are_the_unchunked_ones(tiny, monkeypatch, capsys):
    config = GenerationConfig(num_samples=7, seed=3, cfg_scale=2.0)
    whole = generate(tiny, PROMPT, config)
    hook = OutOfMemoryAbove(2)
    monkeypatch.setattr(generation, "_draw", hook)
    fitted = generate_fitting(tiny, PROMPT, config, chunk=7)
    _same(fitted, whole)
    assert hook.sizes == [7, 3] + [1] * 7  # 7 fails, 3 fails, then one at a time
    assert "out of memory with 7 images" in capsys.readouterr().out


def test_one_image_that_does_not_fit_names_model_mode_and_memory(tiny, monkeypatch):
    monkeypatch.setattr(generation, "_draw", OutOfMemoryAbove(0))
    with pytest.raises(torch.OutOfMemoryError, match=r"model \(fp32 weights, .*\) ran out of memory on cpu.*"
                                                     r"planned peak .* free now"):
        generate_fitting(tiny, PROMPT, GenerationConfig(num_samples=3, seed=0), chunk=2)


def test_chunks_come_from_the_plan_and_the_free_memory(tiny):
    config = GenerationConfig(num_samples=12, seed=0, cfg_scale=2.0)
    tokens = len(encode_prompt(tiny, PROMPT))
    options = dict(weights="fp32", device="cpu", cfg=True, prompt_tokens=tokens,
                   reason_tokens=tiny.spec.max_reason_tokens, chain_given=False)
    five = plan_memory(tiny.model.config, 12, chunk=5, **options)
    free = five.peak - five.weights  # room for exactly a chunk of 5 beside the loaded weights
    assert fitting_chunk(tiny, 12, config, False, tokens, free) == 5
    assert fitting_chunk(tiny, 12, config, False, tokens, None) == 12  # unknown: config.max_batch (16) caps
    assert fitting_chunk(tiny, 12, config, False, tokens, 10) == 1  # nothing fits: one at a time, then report
    _same(generate_fitting(tiny, PROMPT, config, free_bytes=free), generate(tiny, PROMPT, config))
