"""Janus configs for small models: tests, benchmarks and the embedded ShapeWorld model.

Only the parts GoT-R1 uses are sized by the arguments (text model, generation
VQ, generation head); the understanding tower that the Janus class always
builds is kept minimal.
"""

from __future__ import annotations


def small_janus_config(
    vocab_size: int,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    grid_size: int = 8,
    codebook_size: int = 256,
    codebook_dim: int = 8,
    vq_channels: int = 32,
    vq_levels: int = 4,
    vq_multipliers: list[int] | None = None,
    max_positions: int = 2048,
    special_ids: dict[str, int] | None = None,
    tie_word_embeddings: bool = False,
):
    """A ``JanusConfig`` whose images are ``grid_size**2`` tokens of ``codebook_size`` codes.

    The decoded image side is ``grid_size * 2**(vq_levels - 1)`` pixels (64 px
    for the defaults). ``vq_channels`` must be a multiple of 32 (GroupNorm);
    ``vq_multipliers`` (one per level, default ``[1, 2, 2, ...]``) scale it per level.
    """
    from transformers import JanusConfig

    if vq_channels % 32:
        raise ValueError(f"vq_channels must be a multiple of 32 (GroupNorm groups), got {vq_channels}")
    multipliers = list(vq_multipliers or [1] + [2] * (vq_levels - 1))
    if len(multipliers) != vq_levels:
        raise ValueError(f"vq_multipliers needs one entry per level ({vq_levels}), got {multipliers}")
    ids = special_ids or {}
    text_config = {
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": hidden_size,
        "intermediate_size": intermediate_size or 4 * hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "num_key_value_heads": num_kv_heads or num_heads,
        "max_position_embeddings": max_positions,
        "tie_word_embeddings": tie_word_embeddings,
        **{f"{k}_token_id": v for k, v in ids.items() if k in ("bos", "eos", "pad")},
    }
    vision_config = {  # understanding tower: required by the class, unused by generation
        "hidden_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "image_size": grid_size * 8,
        "patch_size": 8,
        "mlp_ratio": 2.0,
        "projection_dim": hidden_size,
        "depth": 1,
        "num_image_tokens": grid_size * grid_size,
    }
    vq_config = {
        "embed_dim": codebook_dim,
        "num_embeddings": codebook_size,
        "latent_channels": vq_channels,
        "base_channels": vq_channels,
        "channel_multiplier": multipliers,
        "num_res_blocks": 1,
        "projection_dim": hidden_size,
        "image_token_embed_dim": hidden_size,
        "num_hidden_layers": 2,
    }
    return JanusConfig(
        text_config=text_config,
        vision_config=vision_config,
        vq_config=vq_config,
        image_token_id=ids.get("image_placeholder", 0),
        tie_word_embeddings=tie_word_embeddings,
    )
