"""The decoder's own Llama layer step against transformers' LlamaDecoderLayer."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaModel

from gotr1_core.decoding import SWAPPED_PRODUCT_ROWS, Decoder, image_logits, project


@pytest.fixture(scope="module")
def llama():
    """Grouped-query attention and biases on every projection: the variants the step must handle."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attention_bias=True, mlp_bias=True,
                         hidden_act="silu", max_position_embeddings=128)
    model = LlamaModel(config).eval()
    with torch.no_grad():  # non-zero biases and norm weights, so a dropped one shows
        for name, param in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model


@pytest.fixture
def two_threads():
    """The swapped product is only taken with several threads; make sure it runs here too."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(before, 2))
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("rows", [1, 5, SWAPPED_PRODUCT_ROWS[0], SWAPPED_PRODUCT_ROWS[1], 64])
def test_project_equals_the_linear_layer_for_any_row_count(llama, rows, two_threads):
    linear = llama.layers[0].mlp.gate_proj
    x = torch.randn(rows, 1, 64)
    torch.testing.assert_close(project(x, linear), linear(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows", [3, 16])
@torch.no_grad()
def test_own_step_equals_transformers_layers_through_prefill_and_steps(llama, rows, dtype, two_threads):
    """Same left-padded batch, prefill then 4 steps: own step vs calling the HF layers."""
    width, steps = 7, 4
    model = copy.deepcopy(llama).to(dtype)
    mask = torch.ones((rows, width), dtype=torch.long)
    mask[0, :3] = 0  # a left-padded row
    prompt = torch.randn(rows, width, 64, dtype=dtype)
    tokens = torch.randn(steps, rows, 1, 64, dtype=dtype)
    outputs = {}
    for fast in (True, False):
        decoder = Decoder(model, width + steps, mask)
        assert decoder.fast
        decoder.fast = fast
        states = [decoder.prefill(prompt)] + [decoder.step(t) for t in tokens]
        outputs[fast] = torch.stack(states).float()
    rtol, atol = (1e-5, 1e-5) if dtype == torch.float32 else (1.6e-2, 1e-2)  # bf16: one or two roundings apart
    torch.testing.assert_close(outputs[True], outputs[False], rtol=rtol, atol=atol)


@pytest.mark.parametrize("rows", [2, 16])
@torch.no_grad()
def test_image_logits_equal_the_generation_head(rows):
    from transformers import JanusVQVAEConfig
    from transformers.models.janus.modeling_janus import JanusVQVAEHead

    torch.manual_seed(0)
    head = JanusVQVAEHead(JanusVQVAEConfig(num_embeddings=300, projection_dim=48, image_token_embed_dim=64))
    hidden = torch.randn(rows, 64)
    torch.testing.assert_close(image_logits(head, hidden), head(hidden), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [[0, 1], [1, 0, 1, 1, 0]], ids=["one-row-each", "shared-prefixes"])
@torch.no_grad()
def test_decoder_matches_a_full_forward_of_each_row(llama, rows):
    """A padded row's hidden states equal the plain model on that row alone (no padding, no cache)."""
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    embeds = torch.randn(2, 5, 64)
    steps = torch.randn(2, len(rows), 1, 64)
    decoder = Decoder(llama, 7, mask)
    decoder.prefill(embeds)
    decoder.expand(torch.tensor(rows))
    assert (decoder.kv.prefix is not None) == (len(rows) >= 4)  # shared once rows repeat enough
    got = [decoder.step(step) for step in steps]
    for i, prefill_row in enumerate(rows):
        real = embeds[prefill_row, mask[prefill_row].bool()]
        full = torch.cat([real, steps[0, i], steps[1, i]])[None]
        want = llama(inputs_embeds=full).last_hidden_state[0, -2:]
        torch.testing.assert_close(torch.stack([got[0][i], got[1][i]]), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.no_grad()
def test_shared_prefix_equals_copying_the_prefix_into_every_row(llama, dtype):
    """Prefill two distinct rows (one left-padded), continue them as six rows, drop some rows mid-way."""
    model = copy.deepcopy(llama).to(dtype)
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    prompt = torch.randn(2, 5, 64, dtype=dtype)
    rows = torch.tensor([0, 1, 0, 0, 1, 0])
    survivors = torch.tensor([0, 2, 4, 5])
    tokens = torch.randn(4, 6, 1, 64, dtype=dtype)
    outputs = {}
    for shared in (True, False):
        decoder = Decoder(model, 9, mask)
        decoder.prefill(prompt)
        if shared:
            decoder.expand(rows)
        else:
            decoder.keep(rows)
        assert (decoder.kv.prefix is not None) == shared
        states = [decoder.step(tokens[0]), decoder.step(tokens[1])]
        decoder.keep(survivors)
        states += [decoder.step(tokens[2][survivors]), decoder.step(tokens[3][survivors])]
        outputs[shared] = torch.cat(states).float()
    rtol, atol = (1e-5, 1e-5) if dtype == torch.float32 else (1.6e-2, 1e-2)
    torch.testing.assert_close(outputs[True], outputs[False], rtol=rtol, atol=atol)


@torch.no_grad()
def test_prefix_is_copied_when_few_rows_repeat(llama):
    """Three distinct prefills for four rows: sharing would read almost as much and compute more."""
    decoder = Decoder(llama, 5, torch.ones((3, 3), dtype=torch.long))
    decoder.prefill(torch.randn(3, 3, 64))
    decoder.expand(torch.tensor([0, 1, 2, 2]))
    assert decoder.kv.prefix is None and decoder.kv.keys[0].shape[0] == 4
