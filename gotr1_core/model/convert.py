"""Original DeepSeek / GoT-R1 checkpoints (``MultiModalityCausalLM``) -> transformers' Janus.

The original layout names its parts ``language_model``, ``vision_model``
(a timm-style SigLIP ViT), ``aligner``, ``gen_vision_model`` (the VQ-16
tokenizer), ``gen_aligner``, ``gen_head`` and ``gen_embed``. :data:`KEY_RULES`
maps every original parameter name to its ``JanusForConditionalGeneration``
name; a key no rule matches is an error that names it, and the loader then
checks every converted name and shape against the model.

The config is rebuilt from ``config.json`` plus the weights themselves (widths,
depths, channel multipliers and codebook size are read off tensor shapes), so
it fits any model size. Only the number of SigLIP attention heads cannot be
read off the weights; it comes from the SigLIP variant named in the config.

The upstream GoT-R1 code adds the four chain tokens to the tokenizer at load
time (``add_tokens``); a converted tokenizer gets them the same way, so their
ids are the ones the model was trained with.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterator

import torch

from .files import CheckpointError, iter_safetensors, load_tokenizer, read_config_json

# Heads of the SigLIP variants Janus / GoT-R1 configs name (not recoverable from weights).
SIGLIP_HEADS = {
    "siglip_large_patch16_384": 16,
    "siglip_so400m_patch14_384": 16,
    "siglip_so400m_patch14_224": 16,
}
# Upstream adds these at load time, in this order.
UPSTREAM_ADDED_TOKENS = ["<|box_start|>", "<|box_end|>", "<|obj_start|>", "<|obj_end|>"]

DROP = None
Rule = tuple[re.Pattern, "str | None | Callable[[re.Match, torch.Tensor], list[tuple[str, torch.Tensor]]]"]


def _split_qkv(match: re.Match, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """timm's fused ``qkv`` projection -> separate q/k/v projections (rows are q, then k, then v)."""
    layer, kind = match.group(1), match.group(2)
    q, k, v = tensor.chunk(3, dim=0)
    base = f"model.vision_model.encoder.layers.{layer}.self_attn"
    return [(f"{base}.q_proj.{kind}", q), (f"{base}.k_proj.{kind}", k), (f"{base}.v_proj.{kind}", v)]


def _position_table(match: re.Match, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """timm keeps positions as a ``[1, N, D]`` parameter, transformers as an ``[N, D]`` embedding."""
    return [("model.vision_model.embeddings.position_embedding.weight", tensor.reshape(tensor.shape[-2:]))]


def _mlp_layer(target: str) -> Callable:
    """``MlpProjector.layers`` is Linear, GELU, Linear, ...: index 0 -> fc1, index 2k -> hidden_layers.{k-1}."""

    def rename(match: re.Match, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
        index, kind = int(match.group(1)), match.group(2)
        if index % 2:
            raise CheckpointError(f"{match.group(0)}: MlpProjector has no weights at odd index {index} (activation)")
        name = "fc1" if index == 0 else f"hidden_layers.{index // 2 - 1}"
        return [(f"{target}.{name}.{kind}", tensor)]

    return rename


_VIT = r"vision_model\.vision_tower"
_VQ = r"gen_vision_model"
KEY_RULES: list[Rule] = [
    # Language model (Llama): same inner names, different prefix.
    (re.compile(r"language_model\.model\.(.+)"), r"model.language_model.\1"),
    (re.compile(r"language_model\.lm_head\.weight"), "lm_head.weight"),
    # Understanding tower (SigLIP ViT, timm names).
    (re.compile(rf"{_VIT}\.patch_embed\.proj\.(weight|bias)"), r"model.vision_model.embeddings.patch_embedding.\1"),
    (re.compile(rf"{_VIT}\.pos_embed"), _position_table),
    (re.compile(rf"{_VIT}\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)"), _split_qkv),
    (re.compile(rf"{_VIT}\.blocks\.(\d+)\.attn\.proj\.(weight|bias)"),
     r"model.vision_model.encoder.layers.\1.self_attn.projection_layer.\2"),
    (re.compile(rf"{_VIT}\.blocks\.(\d+)\.norm(1|2)\.(weight|bias)"),
     r"model.vision_model.encoder.layers.\1.layer_norm\2.\3"),
    (re.compile(rf"{_VIT}\.blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)"),
     r"model.vision_model.encoder.layers.\1.mlp.\2.\3"),
    (re.compile(rf"{_VIT}\.norm\.(weight|bias)"), r"model.vision_model.post_layernorm.\1"),
    (re.compile(rf"{_VIT}\.attn_pool\..+"), DROP),  # pooling head: Janus takes patch features (ignore_head)
    # Projections between towers and the language model.
    (re.compile(r"aligner\.layers\.(\d+)\.(weight|bias)"), _mlp_layer("model.aligner")),
    (re.compile(r"gen_aligner\.layers\.(\d+)\.(weight|bias)"), _mlp_layer("model.generation_aligner")),
    (re.compile(r"gen_head\.output_mlp_projector\.(weight|bias)"), r"model.generation_head.proj_out.\1"),
    (re.compile(r"gen_head\.vision_head\.(weight|bias)"), r"model.generation_head.vision_head.\1"),
    (re.compile(r"gen_embed\.weight"), "model.generation_embeddings.weight"),
    # VQ-16 image tokenizer (LlamaGen names -> taming-style names).
    (re.compile(rf"{_VQ}\.encoder\.conv_blocks\.(\d+)\.res\.(\d+)\.(.+)"), r"model.vqmodel.encoder.down.\1.block.\2.\3"),
    (re.compile(rf"{_VQ}\.encoder\.conv_blocks\.(\d+)\.attn\.(\d+)\.(.+)"), r"model.vqmodel.encoder.down.\1.attn.\2.\3"),
    (re.compile(rf"{_VQ}\.encoder\.conv_blocks\.(\d+)\.downsample\.(.+)"), r"model.vqmodel.encoder.down.\1.downsample.\2"),
    (re.compile(rf"{_VQ}\.decoder\.conv_blocks\.(\d+)\.res\.(\d+)\.(.+)"), r"model.vqmodel.decoder.up.\1.block.\2.\3"),
    (re.compile(rf"{_VQ}\.decoder\.conv_blocks\.(\d+)\.attn\.(\d+)\.(.+)"), r"model.vqmodel.decoder.up.\1.attn.\2.\3"),
    (re.compile(rf"{_VQ}\.decoder\.conv_blocks\.(\d+)\.upsample\.(.+)"), r"model.vqmodel.decoder.up.\1.upsample.\2"),
    (re.compile(rf"{_VQ}\.(encoder|decoder)\.mid\.0\.(.+)"), r"model.vqmodel.\1.mid.block_1.\2"),
    (re.compile(rf"{_VQ}\.(encoder|decoder)\.mid\.1\.(.+)"), r"model.vqmodel.\1.mid.attn_1.\2"),
    (re.compile(rf"{_VQ}\.(encoder|decoder)\.mid\.2\.(.+)"), r"model.vqmodel.\1.mid.block_2.\2"),
    (re.compile(rf"{_VQ}\.quantize\.codebook_used"), DROP),  # usage statistics from VQ training
    (re.compile(rf"{_VQ}\.((?:encoder|decoder)\.(?:conv_in|conv_out|norm_out)\..+)"), r"model.vqmodel.\1"),
    (re.compile(rf"{_VQ}\.(quantize\.embedding\.weight|quant_conv\..+|post_quant_conv\..+)"), r"model.vqmodel.\1"),
]


def convert_key(name: str, tensor: torch.Tensor) -> list[tuple[str, torch.Tensor]]:
    """HF names and tensors for one original parameter ([] for known-unused ones)."""
    for pattern, target in KEY_RULES:
        match = pattern.fullmatch(name)
        if match is None:
            continue
        if target is DROP:
            return []
        if callable(target):
            return target(match, tensor)
        return [(match.expand(target), tensor)]
    raise CheckpointError(f"original checkpoint key {name!r} matches no conversion rule; this is not a "
                          "Janus-Pro / GoT-R1 MultiModalityCausalLM checkpoint, or a new variant")


def convert_tensors(tensors: Iterator[tuple[str, torch.Tensor, Path]]) -> Iterator[tuple[str, torch.Tensor, Path]]:
    for name, tensor, path in tensors:
        for new_name, new_tensor in convert_key(name, tensor):
            yield new_name, new_tensor, path


# -- config -----------------------------------------------------------------------------

def is_original_config(data: dict) -> bool:
    return data.get("model_type") == "multi_modality" or "language_config" in data


def _params(data: dict, section: str) -> dict:
    part = data.get(section)
    if not isinstance(part, dict):
        raise CheckpointError(f"original config lacks '{section}'")
    return part.get("params", {}) or {}


def _mlp_depth(shapes: dict, prefix: str) -> int:
    indices = [int(m.group(1)) for k in shapes if (m := re.fullmatch(rf"{prefix}\.layers\.(\d+)\.weight", k))]
    if not indices:
        raise CheckpointError(f"no {prefix}.layers.*.weight in the checkpoint")
    return max(indices) // 2 + 1


def convert_config(data: dict, shapes: dict[str, tuple[int, ...]], image_token_id: int):
    """A ``JanusConfig`` for an original config plus the weights' shapes."""
    from transformers import JanusConfig

    def shape(key: str) -> tuple[int, ...]:
        if key not in shapes:
            raise CheckpointError(f"original checkpoint lacks {key}, needed to rebuild the config")
        return shapes[key]

    text = dict(data["language_config"])
    text.update(model_type="llama")
    for stale in ("_name_or_path", "architectures", "torch_dtype", "dtype", "transformers_version"):
        text.pop(stale, None)

    vision = _params(data, "vision_config")
    name = vision.get("model_name", "")
    if name not in SIGLIP_HEADS:
        raise CheckpointError(f"vision_config.params.model_name {name!r} is not a known SigLIP variant "
                              f"({', '.join(sorted(SIGLIP_HEADS))})")
    width, _, patch, _ = shape("vision_model.vision_tower.patch_embed.proj.weight")
    depth = 1 + max(int(m.group(1)) for k in shapes
                    if (m := re.fullmatch(r"vision_model\.vision_tower\.blocks\.(\d+)\..+", k)))
    image_size = int(vision.get("image_size", 384))
    aligner = _params(data, "aligner_config")
    vision_config = {
        "hidden_size": width, "num_hidden_layers": depth, "num_attention_heads": SIGLIP_HEADS[name],
        "image_size": image_size, "patch_size": patch,
        "mlp_ratio": shape("vision_model.vision_tower.blocks.0.mlp.fc1.weight")[0] / width,
        "projection_dim": int(aligner.get("n_embed", shape("aligner.layers.0.weight")[0])),
        "depth": _mlp_depth(shapes, "aligner"),
        "num_image_tokens": (image_size // patch) ** 2,
    }

    base = shape("gen_vision_model.encoder.conv_in.weight")[0]
    levels = 1 + max(int(m.group(1)) for k in shapes
                     if (m := re.fullmatch(r"gen_vision_model\.encoder\.conv_blocks\.(\d+)\..+", k)))
    multipliers = [shape(f"gen_vision_model.encoder.conv_blocks.{i}.res.0.conv1.weight")[0] // base
                   for i in range(levels)]
    res_blocks = 1 + max(int(m.group(1)) for k in shapes
                         if (m := re.fullmatch(r"gen_vision_model\.encoder\.conv_blocks\.0\.res\.(\d+)\..+", k)))
    codebook, code_dim = shape("gen_vision_model.quantize.embedding.weight")
    vq_config = {
        "embed_dim": code_dim, "num_embeddings": codebook,
        "latent_channels": shape("gen_vision_model.encoder.conv_out.weight")[0],
        "base_channels": base, "channel_multiplier": multipliers, "num_res_blocks": res_blocks,
        "projection_dim": shape("gen_aligner.layers.0.weight")[0],
        "num_hidden_layers": _mlp_depth(shapes, "gen_aligner"),
        "image_token_embed_dim": shape("gen_head.output_mlp_projector.weight")[1],
    }
    return JanusConfig(text_config=text, vision_config=vision_config, vq_config=vq_config,
                       image_token_id=image_token_id, tie_word_embeddings=False)


# -- reading an original folder ----------------------------------------------------------------

def original_weight_files(folder: Path, allow_pickle: bool) -> tuple[list[Path], str]:
    """Weight files and their format ('safetensors' or 'bin')."""
    safetensors = sorted(folder.glob("*.safetensors"))
    if safetensors:
        return safetensors, "safetensors"
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins and not allow_pickle:
        raise CheckpointError(f"{folder} holds legacy .bin weights; convert them once with "
                              f"`gotr1 convert {folder} OUT_DIR` (loaded with weights_only=True) and load OUT_DIR")
    if bins:
        return bins, "bin"
    raise CheckpointError(f"no *.safetensors or pytorch_model*.bin weights in {folder}")


def iter_bin(files: list[Path]) -> Iterator[tuple[str, torch.Tensor, Path]]:
    """Legacy ``.bin`` state dicts through ``torch.load(weights_only=True)``: tensors only, no code."""
    for path in files:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated archives and refused objects both land here
            raise CheckpointError(f"{path}: cannot read with torch.load(weights_only=True) ({exc})") from None
        for name, tensor in state.items():
            yield name, tensor, path


def tensor_shapes(files: list[Path], fmt: str) -> dict[str, tuple[int, ...]]:
    if fmt == "safetensors":
        from safetensors import safe_open

        shapes = {}
        for path in files:
            try:
                with safe_open(str(path), framework="pt") as handle:
                    for name in handle.keys():
                        shapes[name] = tuple(handle.get_slice(name).get_shape())
            except Exception as exc:  # damaged header
                raise CheckpointError(f"{path}: cannot read safetensors file ({exc})") from None
        return shapes
    return {name: tuple(t.shape) for name, t, _ in iter_bin(files)}


def prepare_tokenizer(tokenizer):
    """Add the chain tokens the way upstream does at load time, if the saved tokenizer lacks them."""
    missing = [t for t in UPSTREAM_ADDED_TOKENS if len(tokenizer.encode(t, add_special_tokens=False)) != 1]
    if missing:
        tokenizer.add_tokens(missing)
    return tokenizer


def open_original(folder: Path, allow_pickle: bool = False):
    """Config, tokenizer and a tensor stream (HF names) for an original-format folder."""
    if not folder.is_dir():
        raise CheckpointError(f"folder not found: {folder}")
    data = read_config_json(folder)
    if not is_original_config(data):
        hint = (f"it is already an HF Janus folder: load it as it is (--model {folder})"
                if data.get("model_type") == "janus" else
                "give the folder of an original DeepSeek Janus-Pro / GoT-R1 release (its config.json has "
                "language_config, vision_config and gen_vision_config)")
        raise CheckpointError(f"{folder} is not an original-format checkpoint (config.json has model_type "
                              f"{data.get('model_type')!r} and no language_config): {hint}")
    files, fmt = original_weight_files(folder, allow_pickle)
    tokenizer = prepare_tokenizer(load_tokenizer(folder))
    image_token_id = tokenizer.convert_tokens_to_ids("<image_placeholder>")
    config = convert_config(data, tensor_shapes(files, fmt), image_token_id if image_token_id is not None else 0)
    if config.text_config.vocab_size < len(tokenizer):
        raise CheckpointError(f"{folder}: tokenizer has {len(tokenizer)} tokens but the model only "
                              f"{config.text_config.vocab_size} embeddings")

    def tensors(device: torch.device):
        source = iter_safetensors(files, device) if fmt == "safetensors" else iter_bin(files)
        return convert_tensors(source)

    return config, tokenizer, tensors


__all__ = ["KEY_RULES", "convert_config", "convert_key", "is_original_config",
           "open_original"]
