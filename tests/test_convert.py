"""Original DeepSeek / GoT-R1 layout -> HF Janus: a tiny twin pair, converted and compared."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from gotr1_core.cli import main
from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.model.configs import small_janus_config
from gotr1_core.model.convert import UPSTREAM_ADDED_TOKENS, convert_key
from gotr1_core.model.loading import CheckpointError, convert_checkpoint, load_model
from gotr1_core.model.tokenizer import BOS, EOS, IMAGE_PLACEHOLDER, PAD

CORPUS = ["User: Follow the caption to generate an image: a red circle\n\nAssistant: a red circle"] * 20



def load_whole(folder):
    """Conversion covers every weight: load the understanding path too."""
    return load_model(folder, device="cpu", understanding=True)

def janus_style_tokenizer(bos_post_processor: bool = True):
    """Like Janus-Pro's own tokenizer: image tokens and pad, but no chain tokens.

    Without ``bos_post_processor`` BOS is left to ``add_bos_token`` in tokenizer_config.json, the other
    shape checkpoints come in.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    specials = [BOS, EOS, PAD, "<begin_of_image>", "<end_of_image>", IMAGE_PLACEHOLDER]
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if bos_post_processor:
        core.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, 0)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   additional_special_tokens=specials[3:])


# HF name -> original name, written from the upstream module structure (MultiModalityCausalLM:
# timm SigLIP ViT, MlpProjector, LlamaGen VQ-16, vision_head), independently of the converter's table.
TO_ORIGINAL = [
    (r"model\.language_model\.(.+)", r"language_model.model.\1"),
    (r"lm_head\.weight", "language_model.lm_head.weight"),
    (r"model\.vision_model\.embeddings\.patch_embedding\.(.+)", r"vision_model.vision_tower.patch_embed.proj.\1"),
    (r"model\.vision_model\.encoder\.layers\.(\d+)\.self_attn\.projection_layer\.(.+)",
     r"vision_model.vision_tower.blocks.\1.attn.proj.\2"),
    (r"model\.vision_model\.encoder\.layers\.(\d+)\.layer_norm(\d)\.(.+)", r"vision_model.vision_tower.blocks.\1.norm\2.\3"),
    (r"model\.vision_model\.encoder\.layers\.(\d+)\.mlp\.(.+)", r"vision_model.vision_tower.blocks.\1.mlp.\2"),
    (r"model\.vision_model\.post_layernorm\.(.+)", r"vision_model.vision_tower.norm.\1"),
    (r"model\.aligner\.fc1\.(.+)", r"aligner.layers.0.\1"),
    (r"model\.generation_aligner\.fc1\.(.+)", r"gen_aligner.layers.0.\1"),
    (r"model\.generation_head\.proj_out\.(.+)", r"gen_head.output_mlp_projector.\1"),
    (r"model\.generation_head\.vision_head\.(.+)", r"gen_head.vision_head.\1"),
    (r"model\.generation_embeddings\.weight", "gen_embed.weight"),
    (r"model\.vqmodel\.encoder\.down\.(\d+)\.block\.(\d+)\.(.+)", r"gen_vision_model.encoder.conv_blocks.\1.res.\2.\3"),
    (r"model\.vqmodel\.encoder\.down\.(\d+)\.attn\.(\d+)\.(.+)", r"gen_vision_model.encoder.conv_blocks.\1.attn.\2.\3"),
    (r"model\.vqmodel\.encoder\.down\.(\d+)\.downsample\.(.+)", r"gen_vision_model.encoder.conv_blocks.\1.downsample.\2"),
    (r"model\.vqmodel\.decoder\.up\.(\d+)\.block\.(\d+)\.(.+)", r"gen_vision_model.decoder.conv_blocks.\1.res.\2.\3"),
    (r"model\.vqmodel\.decoder\.up\.(\d+)\.attn\.(\d+)\.(.+)", r"gen_vision_model.decoder.conv_blocks.\1.attn.\2.\3"),
    (r"model\.vqmodel\.decoder\.up\.(\d+)\.upsample\.(.+)", r"gen_vision_model.decoder.conv_blocks.\1.upsample.\2"),
    (r"model\.vqmodel\.(\w+)\.mid\.block_1\.(.+)", r"gen_vision_model.\1.mid.0.\2"),
    (r"model\.vqmodel\.(\w+)\.mid\.attn_1\.(.+)", r"gen_vision_model.\1.mid.1.\2"),
    (r"model\.vqmodel\.(\w+)\.mid\.block_2\.(.+)", r"gen_vision_model.\1.mid.2.\2"),
    (r"model\.vqmodel\.(.+)", r"gen_vision_model.\1"),
]


def to_original(hf: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for name, tensor in hf.items():
        if m := re.fullmatch(r"model\.vision_model\.encoder\.layers\.(\d+)\.self_attn\.(q|k|v)_proj\.(.+)", name):
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = tensor
            continue
        if name == "model.vision_model.embeddings.position_embedding.weight":
            out["vision_model.vision_tower.pos_embed"] = tensor[None]
            continue
        if m := re.fullmatch(r"model\.(aligner|generation_aligner)\.hidden_layers\.(\d+)\.(.+)", name):
            prefix = "aligner" if m.group(1) == "aligner" else "gen_aligner"
            out[f"{prefix}.layers.{2 * int(m.group(2)) + 2}.{m.group(3)}"] = tensor
            continue
        for pattern, target in TO_ORIGINAL:
            if m := re.fullmatch(pattern, name):
                out[m.expand(target)] = tensor
                break
        else:
            raise AssertionError(f"test mapping misses {name}")
    for (layer, kind), parts in qkv.items():
        out[f"vision_model.vision_tower.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"],
                                                                                      parts["v"]])
    # Present in real checkpoints, unused by generation.
    out["vision_model.vision_tower.attn_pool.latent"] = torch.zeros(1, 1, 32)
    out["vision_model.vision_tower.attn_pool.q.weight"] = torch.zeros(32, 32)
    out["gen_vision_model.quantize.codebook_used"] = torch.zeros(64)
    return out


def original_config(hf) -> dict:
    text = {k: v for k, v in hf.text_config.to_dict().items() if k in (
        "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "bos_token_id", "eos_token_id",
        "pad_token_id")}
    vq = hf.vq_config
    return {
        "model_type": "multi_modality",
        "language_config": text,
        "vision_config": {"cls": "CLIPVisionTower", "model_type": "vision", "params": {
            "image_size": hf.vision_config.image_size, "model_name": "siglip_large_patch16_384",
            "select_feature": "same", "select_layer": -1}},
        "aligner_config": {"cls": "MlpProjector", "model_type": "aligner", "params": {
            "depth": 2, "input_dim": hf.vision_config.hidden_size, "n_embed": hf.vision_config.projection_dim,
            "projector_type": "mlp_gelu"}},
        "gen_vision_config": {"cls": "VQ-16", "model_type": "gen_vision", "params": {
            "image_token_size": vq.num_embeddings, "n_embed": vq.embed_dim}},
        "gen_aligner_config": {"cls": "MlpProjector", "model_type": "gen_aligner", "params": {
            "depth": 2, "input_dim": vq.embed_dim, "n_embed": vq.projection_dim, "projector_type": "mlp_gelu"}},
        "gen_head_config": {"cls": "vision_head", "model_type": "gen_head", "params": {
            "image_token_embed": vq.image_token_embed_dim, "image_token_size": vq.num_embeddings,
            "n_embed": vq.image_token_embed_dim}},
    }


@pytest.fixture(scope="module")
def twins(tmp_path_factory):
    """(hf_folder, original_folder) holding the same random weights."""
    from transformers import JanusConfig, JanusForConditionalGeneration

    root = tmp_path_factory.mktemp("twins")
    tokenizer = janus_style_tokenizer(bos_post_processor=False)
    data = small_janus_config(vocab_size=400, hidden_size=32, num_layers=2, num_heads=4, grid_size=4,
                              codebook_size=64, vq_channels=32, vq_levels=2).to_dict()
    # SigLIP-large layout: 16 heads, 16 px patches (4x4 patches at 64 px, matching the 4x4 image tokens).
    data["vision_config"].update(num_attention_heads=16, patch_size=16, image_size=64)
    config = JanusConfig.from_dict(data)
    torch.manual_seed(0)
    model = JanusForConditionalGeneration(config).eval()
    hf_dir, orig_dir = root / "hf", root / "original"
    model.save_pretrained(str(hf_dir))
    prepared = janus_style_tokenizer()
    prepared.add_tokens(UPSTREAM_ADDED_TOKENS)
    prepared.save_pretrained(str(hf_dir))
    orig_dir.mkdir()
    tokenizer.save_pretrained(str(orig_dir))
    # As Janus-Pro / GoT-R1 ship it: a Llama class named for a byte-level tokenizer.json, BOS asked for here.
    tok_config = json.loads((orig_dir / "tokenizer_config.json").read_text())
    tok_config.update(tokenizer_class="LlamaTokenizerFast", add_bos_token=True, add_eos_token=False)
    (orig_dir / "tokenizer_config.json").write_text(json.dumps(tok_config))
    (orig_dir / "config.json").write_text(json.dumps(original_config(config)))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(to_original(state), str(orig_dir / "model.safetensors"))
    return hf_dir, orig_dir


def outputs(got):
    ids = torch.tensor([[0, 5, 9, 40, 77]])
    with torch.no_grad():
        text = got.model(input_ids=ids).logits
        hidden = got.model.model.language_model(input_ids=ids).last_hidden_state[:, -1]
        image = got.model.model.generation_head(hidden)
        pixels = got.model.decode_image_tokens(torch.arange(16)[None] * 3)
        vision = got.model.model.get_image_features(torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    return text, image, pixels, vision.pooler_output


def assert_same_outputs(a, b):
    """Equal weights promise equal values, not equal kernel paths: outputs agree to float32 rounding.

    A wrong mapping (two tensors swapped, one transposed) moves them by 1e-2 or more on these random
    weights; see test_a_wrong_mapping_is_caught.
    """
    for x, y in zip(outputs(a), outputs(b)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_original_layout_loads_to_identical_model(twins):
    hf_dir, orig_dir = twins
    hf, orig = load_whole(hf_dir), load_whole(orig_dir)
    assert set(hf.model.state_dict()) == set(orig.model.state_dict())
    for name, tensor in hf.model.state_dict().items():
        assert torch.equal(tensor, orig.model.state_dict()[name]), name  # weights: exact
    assert_same_outputs(hf, orig)


@pytest.mark.parametrize("mutation", ["swap", "transpose"])
def test_a_wrong_mapping_is_caught(twins, monkeypatch, mutation):
    """The tolerance above still fails a conversion that maps one tensor wrongly."""
    from gotr1_core.model import convert

    hf_dir, orig_dir = twins
    layer = "model.language_model.layers.{}.self_attn.{}.weight"
    swap = {layer.format(0, "q_proj"): layer.format(0, "k_proj"), layer.format(0, "k_proj"): layer.format(0, "q_proj")}
    transposed = layer.format(1, "o_proj")  # square: loads without a shape error
    real = convert.convert_key

    def wrong(name, tensor):
        out = real(name, tensor)
        if mutation == "swap":
            return [(swap.get(n, n), t) for n, t in out]
        return [(n, t.T.contiguous() if n == transposed else t) for n, t in out]

    monkeypatch.setattr(convert, "convert_key", wrong)
    with pytest.raises(AssertionError):
        assert_same_outputs(load_whole(hf_dir), load_whole(orig_dir))


def test_loaded_weights_are_owned_and_aligned(twins):
    """Independent of where a tensor sat in its file (and so of the kernel path that picks)."""
    from gotr1_core.model.loading import ALIGNMENT

    for folder in twins:
        for name, tensor in load_whole(folder).model.state_dict().items():
            assert tensor.data_ptr() % ALIGNMENT == 0, name


def test_both_tokenizer_shapes_give_one_bos(twins):
    """BOS from the tokenizer.json post-processor (HF folder) or from add_bos_token (original folder): the
    prompt starts with exactly one BOS either way, and both folders encode it to the same ids."""
    from gotr1_core.generation import encode_prompt

    hf_dir, orig_dir = twins
    hf, orig = load_whole(hf_dir), load_whole(orig_dir)
    for prompt in ("a red circle", "  a red circle "):
        a, b = encode_prompt(hf, prompt), encode_prompt(orig, prompt)
        assert a == b and a[0] == hf.tokenizer.bos_token_id, prompt
        assert a.count(hf.tokenizer.bos_token_id) == 1, prompt


def test_original_folder_loads_without_warnings(twins, caplog, recwarn):
    import logging

    _, orig_dir = twins
    with caplog.at_level(logging.WARNING):
        load_whole(orig_dir)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [str(w.message) for w in recwarn]


def test_tokenizer_gets_chain_tokens_like_upstream(twins):
    _, orig_dir = twins
    got = load_whole(orig_dir)
    base = len(janus_style_tokenizer())
    ids = [got.tokenizer.convert_tokens_to_ids(t) for t in UPSTREAM_ADDED_TOKENS]
    assert ids == [base, base + 1, base + 2, base + 3]  # upstream's add_tokens order and ids
    result = generate(got, "a red circle", GenerationConfig(max_reason_tokens=4, num_samples=2))
    assert result.images.shape == (2, 8, 8, 3)


def test_convert_command_writes_an_hf_folder(twins, tmp_path, capsys):
    hf_dir, orig_dir = twins
    out = tmp_path / "converted"
    assert main(["convert", str(orig_dir), str(out), "--max-shard-size", "200KB"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(list(out.glob("model-*.safetensors"))) > 1 and (out / "gotr1.json").exists()
    converted = json.loads((out / "config.json").read_text())
    assert converted["model_type"] == "janus"
    assert_same_outputs(load_whole(hf_dir), load_whole(out))
    assert main(["convert", str(orig_dir), str(out)]) == 1  # never overwrites
    assert "not empty" in capsys.readouterr().err


def test_legacy_bin_only_through_convert(twins, tmp_path):
    hf_dir, orig_dir = twins
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (legacy / name).write_bytes((orig_dir / name).read_bytes())
    torch.save(load_file(str(orig_dir / "model.safetensors")), str(legacy / "pytorch_model.bin"))
    with pytest.raises(CheckpointError, match="gotr1 convert"):
        load_whole(legacy)  # the loader (and so every node) never unpickles
    out = convert_checkpoint(legacy, tmp_path / "from-bin")
    assert_same_outputs(load_whole(hf_dir), load_whole(out))


def test_bin_with_code_is_refused(tmp_path, twins):
    _, orig_dir = twins
    evil = tmp_path / "evil"
    evil.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (evil / name).write_bytes((orig_dir / name).read_bytes())
    torch.save({"weights": torch.zeros(1), "payload": ValueError("not a tensor")}, str(evil / "pytorch_model.bin"))
    with pytest.raises(CheckpointError, match="weights_only=True"):
        convert_checkpoint(evil, tmp_path / "out")


def _edit_original(orig_dir, tmp_path, edit):
    target = tmp_path / "edited"
    target.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (target / name).write_bytes((orig_dir / name).read_bytes())
    tensors = load_file(str(orig_dir / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(target / "model.safetensors"))
    return target


def test_unknown_missing_and_misshaped_keys_are_named(twins, tmp_path):
    _, orig_dir = twins
    folder = _edit_original(orig_dir, tmp_path, lambda t: t.update({"gen_head.extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match="'gen_head.extra.weight' matches no conversion rule"):
        load_whole(folder)
    (folder / "model.safetensors").unlink()
    tensors = load_file(str(orig_dir / "model.safetensors"))
    del tensors["gen_vision_model.decoder.conv_blocks.1.res.0.conv2.weight"]
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing from the checkpoint: model.vqmodel.decoder.up.1.block.0.conv2"):
        load_whole(folder)
    tensors = load_file(str(orig_dir / "model.safetensors"))
    tensors["gen_embed.weight"] = torch.zeros(64, 9)
    save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"model.generation_embeddings.weight has shape \(64, 9\)"):
        load_whole(folder)


def test_unknown_vision_variant_is_named(twins, tmp_path):
    _, orig_dir = twins
    folder = _edit_original(orig_dir, tmp_path, lambda t: None)
    data = json.loads((folder / "config.json").read_text())
    data["vision_config"]["params"]["model_name"] = "siglip_tiny"
    (folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="'siglip_tiny' is not a known SigLIP variant"):
        load_whole(folder)


def test_key_rules_on_real_names():
    """Names as they appear in a Janus-Pro-7B checkpoint."""
    t = torch.zeros(3, 2)
    assert convert_key("language_model.model.layers.29.self_attn.o_proj.weight", t)[0][0] == \
        "model.language_model.layers.29.self_attn.o_proj.weight"
    assert [n for n, _ in convert_key("vision_model.vision_tower.blocks.23.attn.qkv.weight", t)] == [
        "model.vision_model.encoder.layers.23.self_attn.q_proj.weight",
        "model.vision_model.encoder.layers.23.self_attn.k_proj.weight",
        "model.vision_model.encoder.layers.23.self_attn.v_proj.weight"]
    assert convert_key("gen_vision_model.decoder.conv_blocks.4.upsample.conv.bias", t)[0][0] == \
        "model.vqmodel.decoder.up.4.upsample.conv.bias"
    assert convert_key("aligner.layers.2.weight", t)[0][0] == "model.aligner.hidden_layers.0.weight"
    assert convert_key("vision_model.vision_tower.attn_pool.kv.weight", t) == []
    with pytest.raises(CheckpointError, match="odd index"):
        convert_key("gen_aligner.layers.1.weight", t)
