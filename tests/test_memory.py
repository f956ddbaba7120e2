"""The memory plan: its weight and key/value bytes are the bytes the loader and the decoder allocate."""

import pytest
import torch

from gotr1_core import generation
from gotr1_core.generation import GenerationConfig, encode_chain, encode_prompt, generate
from gotr1_core.memory import human, largest_chunk, parse_bytes, plan_memory, weight_bytes
from gotr1_core.model.loading import load_model
from gotr1_core.model.quantize import stored_bytes

from tiny_janus import make_tiny_model

PROMPT = "a red circle left of a blue square"
CHAIN = ("a <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)<|box_end|> left of a "
         "<|obj_start|>blue square<|obj_end|> <|box_start|>(500,200),(900,600)<|box_end|>")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # 64 wide: int4 (NF4) stores rows in blocks of 64
    return load_model(make_tiny_model(tmp_path_factory.mktemp("m") / "model", hidden_size=64, num_kv_heads=2),
                      device="cpu")


class RecordingDecoder(generation.Decoder):
    """Records the key/value bytes each decoder holds once decoding runs (after its first step)."""

    held: list[int] = []

    def step(self, embeds):
        if self.width == self.positions.shape[1]:  # the first step: every buffer of the stage exists after it
            out = super().step(embeds)
            buffers = [t for t in self.kv.keys + self.kv.values if t is not None]
            if self.kv.prefix is not None:
                buffers += self.kv.prefix.keys + self.kv.prefix.values
            RecordingDecoder.held.append(sum(t.numel() * t.element_size() for t in buffers))
            return out
        return super().step(embeds)


@pytest.mark.parametrize("images, cfg, chain_given", [(4, 3.0, True), (1, 1.0, True), (3, 2.0, False)])
def test_planned_key_value_bytes_are_the_decoders(tiny, monkeypatch, images, cfg, chain_given):
    monkeypatch.setattr(generation, "Decoder", RecordingDecoder)
    RecordingDecoder.held = []
    prompt_tokens = len(encode_prompt(tiny, PROMPT))
    config = GenerationConfig(num_samples=images, seed=1, cfg_scale=cfg)
    generate(tiny, PROMPT, config, chains=CHAIN if chain_given else None, decode=False)
    reason = len(encode_chain(tiny, CHAIN)) - 1 if chain_given else tiny.spec.max_reason_tokens
    plan = plan_memory(tiny.model.config, images, weights="fp32", device="cpu", cfg=cfg != 1.0,
                       prompt_tokens=prompt_tokens, reason_tokens=reason, chain_given=chain_given)
    if chain_given:
        assert RecordingDecoder.held == [plan.kv_cache]
    else:  # the chains stage is planned exactly; its images stage is the worst case (chains of any length)
        from gotr1_core.memory import Stage, kv_cache_bytes

        text = tiny.model.config.text_config
        head_dim = text.hidden_size // text.num_attention_heads
        chains, _ = kv_cache_bytes(Stage(images, 1, prompt_tokens, reason), text.num_hidden_layers,
                                   text.num_key_value_heads, head_dim, 4)
        assert RecordingDecoder.held[0] == chains
        assert RecordingDecoder.held[1] <= plan.kv_cache


@pytest.mark.parametrize("dtype, quantize, mode", [("fp32", None, "fp32"), ("bf16", None, "bf16"),
                                                   ("fp16", None, "fp16"), ("auto", "fp8", "fp8"),
                                                   ("auto", "int8", "int8"), ("auto", "int4", "int4")])
def test_planned_weight_bytes_are_the_loaded_parameters(tiny, dtype, quantize, mode):
    got = load_model(tiny.path, device="cpu", dtype=dtype, quantize=quantize)
    assert weight_bytes(got.model.config, mode, "cpu") == stored_bytes(got.model)
    whole = load_model(tiny.path, device="cpu", dtype=dtype, understanding=True, quantize=quantize)
    assert weight_bytes(got.model.config, mode, "cpu", understanding=True) == stored_bytes(whole.model)


def test_stored_bytes_counts_every_tensor_once(tiny):
    held = sum(t.numel() * t.element_size() for t in [*tiny.model.parameters(), *tiny.model.buffers()])
    assert stored_bytes(tiny.model) == held


def test_quantized_modes_store_the_linear_layers_smaller(tiny):
    sizes = {m: weight_bytes(tiny.model.config, m, "cuda") for m in ("fp32", "bf16", "fp8", "int8", "int4")}
    assert sizes["fp32"] > sizes["bf16"] > sizes["int8"] > sizes["int4"] and sizes["fp8"] == sizes["int8"]


def test_largest_chunk_fits_the_budget_and_one_more_does_not(tiny):
    config = tiny.model.config
    options = dict(weights="fp32", device="cpu", reason_tokens=24)
    budget = plan_memory(config, 16, chunk=5, **options).peak + 1
    chunk = largest_chunk(config, budget, 16, **options)
    assert chunk == 5
    assert plan_memory(config, 16, chunk=6, **options).peak > budget
    with pytest.raises(ValueError, match="needs .* for one image.*budget is"):
        largest_chunk(config, 1000, 16, **options)


def test_sizes_and_modes_are_checked():
    assert parse_bytes("12GB") == 12 * 1024 ** 3 and parse_bytes("800 MB") == 800 * 1024 ** 2
    assert parse_bytes("1.5GiB") == int(1.5 * 1024 ** 3) and parse_bytes("2048") == 2048
    for bad in ("", "-1GB", "lots", "12XB"):
        with pytest.raises(ValueError, match="12GB or 800MB"):
            parse_bytes(bad)
    with pytest.raises(ValueError, match="unknown weights mode 'int3'"):
        plan_memory(torch.nn.Module(), 1, weights="int3")
    assert human(1536) == "1.5 KB"


@pytest.mark.parametrize("what, mode", [("decode", "fp32"), ("tokens", "fp32"), ("tokens", "int8")])
def test_planned_peak_is_within_ten_percent_of_the_measured_one(tmp_path_factory, what, mode):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path_factory.getbasetemp() / "peak-model"
    if not folder.exists():  # 8 layers x 256, 24 x 24 image tokens: the key/value cache is tens of MB
        make_tiny_model(folder, hidden_size=256, num_layers=8, num_heads=4, grid_size=24, codebook_size=1024,
                        vq_channels=64, vq_levels=3)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "memory_peak_driver.py"), str(folder), "8",
                           what, mode], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["measured"] > 100 * 2 ** 20  # a real load, not noise
    assert abs(result["planned"] - result["measured"]) <= 0.1 * result["measured"], result
