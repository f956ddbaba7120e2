"""Quantized weights: what each mode stores, that loading quantizes as it reads, and that generation runs them."""

import pytest
import torch

from gotr1_core.decoding import project
from gotr1_core.demo import builtin_model_path
from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.logprobs import sequence_logprobs
from gotr1_core.model.loading import CheckpointError, load_model, save_model
from gotr1_core.reasoning import GRID
from gotr1_core.shapeworld.scenes import CANVAS, STEP
from gotr1_core.model.quantize import (PROJECTIONS, ScaledLinear, is_quantized_layer, split_weights_mode,
                                       stored_bytes)

from tiny_janus import make_tiny_model

PROMPT = "a red circle left of a blue square"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("q") / "model", hidden_size=64, num_heads=4)


def _weights(rows=48, cols=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=generator)
    weight[0] *= 50  # rows of very different size: each keeps its own scale
    weight[1] *= 1e-3
    return weight


def test_int8_rounds_every_weight_to_its_rows_grid():
    weight = _weights()
    layer = ScaledLinear.quantize(weight, None, "int8")
    assert layer.weight.dtype == torch.int8 and layer.scale.dtype == torch.float32
    scale = weight.abs().amax(dim=1) / 127
    assert torch.allclose(layer.scale, scale)
    assert ((layer.dequantized() - weight).abs() <= scale[:, None] / 2 * 1.0001).all()
    assert (layer.weight.abs().amax(dim=1) == 127).all()  # each row uses the whole range


def test_fp8_keeps_three_mantissa_bits_of_every_weight():
    weight = _weights()
    layer = ScaledLinear.quantize(weight, None, "fp8")
    assert layer.weight.dtype == torch.float8_e4m3fn
    scale = weight.abs().amax(dim=1, keepdim=True) / 448
    error = (layer.dequantized() - weight).abs()
    # normal e4m3 numbers: relative error <= 2^-4; subnormals (below 2^-6): absolute error <= 2^-10 of the scale
    assert (error <= torch.maximum(weight.abs() / 16, scale * 2 ** -10) * 1.0001).all()


@pytest.mark.parametrize("mode", ["int8", "fp8"])
def test_the_product_is_the_one_with_the_stored_weight(mode):
    weight, bias = _weights(), torch.nn.Parameter(torch.randn(48))
    layer = ScaledLinear.quantize(weight, bias, mode)
    x = torch.randn(5, 96)
    assert torch.allclose(layer(x), x @ layer.dequantized().T + bias, rtol=1e-5, atol=1e-4)
    assert torch.allclose(layer(x.double()), (x.double() @ layer.dequantized(torch.float64).T + bias.double()),
                          rtol=1e-5, atol=1e-4)


def test_casting_a_model_keeps_the_quantized_storage():
    layer = ScaledLinear.quantize(_weights(), None, "fp8")
    bits = layer.weight.view(torch.uint8).clone()
    model = torch.nn.Sequential(layer, torch.nn.Linear(48, 4))
    model.to(torch.bfloat16)
    assert layer.weight.dtype == torch.float8_e4m3fn and layer.scale.dtype == torch.float32
    assert torch.equal(layer.weight.view(torch.uint8), bits)
    assert model[1].weight.dtype == torch.bfloat16  # the rest is cast as asked
    model.float().to("cpu")
    assert torch.equal(layer.weight.view(torch.uint8), bits)


@pytest.mark.parametrize("mode", ["fp8", "int8", "int4"])
def test_loading_quantizes_the_decoder_projections_and_nothing_else(folder, mode):
    full = load_model(folder, device="cpu")
    got = load_model(folder, device="cpu", quantize=mode)
    assert got.extra["quantize"] == mode and got.dtype == torch.float32
    assert "model.vision_model" in got.extra["not_loaded"]  # still generation-only
    kinds = {name: type(module) for name, module in got.model.named_modules()}
    quantized = [name for name in kinds if is_quantized_layer(name)]
    assert len(quantized) == len(PROJECTIONS) * got.model.config.text_config.num_hidden_layers
    for name in quantized:
        assert kinds[name] is not torch.nn.Linear and kinds[name].__name__ in ("ScaledLinear", "Linear4bit")
    for name, param in got.model.named_parameters():
        if not is_quantized_layer(name.rpartition(".")[0]):
            assert torch.equal(param, full.model.get_parameter(name)), name  # everything else as stored
    assert stored_bytes(got.model) < stored_bytes(full.model)


@pytest.mark.parametrize("mode", ["fp8", "int8", "int4"])
def test_generation_runs_the_quantized_layers_as_the_transformers_forward_does(folder, mode):
    """The decoder's own layer step and transformers' forward (teacher forcing) give the same log-probs on the
    quantized model, and generation leaves no dequantized copy behind (bitsandbytes repacks 4-bit weights
    for CPUs with AVX-512 BF16 on their first use, its block statistics then a little larger)."""
    got = load_model(folder, device="cpu", quantize=mode)
    held = stored_bytes(got.model)
    result = generate(got, PROMPT, GenerationConfig(num_samples=3, seed=2, cfg_scale=2.0))
    assert result.images.shape[0] == 3
    reason_lp, image_lp = sequence_logprobs(got, result)
    assert torch.allclose(reason_lp, result.reason_logprobs, atol=2e-4)
    assert torch.allclose(image_lp, result.image_logprobs, atol=2e-4)
    assert stored_bytes(got.model) <= 1.05 * held


def test_the_decoders_product_calls_a_quantized_layer_itself():
    layer = ScaledLinear.quantize(_weights(rows=64, cols=64), None, "int8")
    x = torch.randn(2, 8, 64)  # 16 rows: the swapped product's range on the CPU
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert torch.equal(project(x, layer), layer(x))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("mode", ["fp8", "int8", "int4"])
def test_the_builtin_model_plans_and_draws_alike_in_every_mode(mode):
    """Greedy decoding on the shipped model: every mode names the same objects as full precision; fp8 and
    int8 put each box within two steps of the world's 2 px lattice of full precision's (a near-tie between
    neighbouring coordinates may flip) and draw mostly the same image tokens."""
    prompts = ["a red circle left of a blue square", "two green triangles above a yellow circle"]
    config = GenerationConfig(num_samples=2, seed=1, text_temperature=0, image_temperature=0)
    full = generate(load_model(builtin_model_path(), device="cpu"), prompts, config)
    quantized = generate(load_model(builtin_model_path(), device="cpu", quantize=mode), prompts, config)
    assert [[o.name for o in c.objects] for c in quantized.parsed] == [[o.name for o in c.objects] for c in full.parsed]
    if mode != "int4":
        step = GRID * STEP / CANVAS  # one lattice step (2 px of 64) in grid units
        for q, f in zip(quantized.parsed, full.parsed):
            for qo, fo in zip(q.objects, f.objects):
                assert all(abs(a - b) <= 2 * step for qb, fb in zip(qo.boxes, fo.boxes)
                           for a, b in zip(qb.as_tuple(), fb.as_tuple())), (q, f)
        assert (quantized.image_ids == full.image_ids).float().mean() >= 0.85


def test_modes_are_named_and_checked(folder, tmp_path):
    assert split_weights_mode("int8") == ("auto", "int8") and split_weights_mode("bf16") == ("bf16", None)
    with pytest.raises(ValueError, match="unknown weights mode 'int3'; use one of auto, bf16"):
        split_weights_mode("int3")
    with pytest.raises(ValueError, match="unknown quantization 'nf2'"):
        load_model(folder, device="cpu", quantize="nf2")
    got = load_model(folder, device="cpu", quantize="int8")
    with pytest.raises(CheckpointError, match="loaded with int8 weights.*load it without quantization"):
        save_model(got, tmp_path / "out")
    assert not (tmp_path / "out").exists()
