"""OpenCLIP weights (HPS v2.1) to a transformers CLIP folder, the form :class:`~.quality.HPSScorer` loads.

The two layouts hold the same tensors under other names: OpenCLIP's fused
attention input projection (``in_proj_weight``) is transformers' q, k and v
projections stacked, and its projections (``visual.proj``, ``text_projection``)
are applied as ``x @ P`` where transformers' linear layers compute ``x @ W.T``.
Sizes are read from the tensors; head counts are not in the tensors, so they
are arguments (ViT-H/14's 16 and 16 by default). The source must be
safetensors: the pack never unpickles a file.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from ..model.loading import CheckpointError

VIT_H_14_HEADS = (16, 16)
"""(vision, text) attention heads of OpenCLIP's ViT-H-14, the tower HPS v2.1 fine-tunes."""

_BLOCK = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
          "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}


def _blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    found = {int(m.group(1)) for k in state if (m := re.match(rf"{re.escape(prefix)}(\d+)\.", k))}
    if not found:
        raise CheckpointError(f"no {prefix}N.* tensors: not an OpenCLIP CLIP state dict")
    return max(found) + 1


def _tower(state: dict[str, torch.Tensor], source: str, target: str, layers: int) -> dict[str, torch.Tensor]:
    out = {}
    for i in range(layers):
        src, dst = f"{source}{i}.", f"{target}{i}."
        q, k, v = state[src + "attn.in_proj_weight"].chunk(3)
        qb, kb, vb = state[src + "attn.in_proj_bias"].chunk(3)
        for name, weight, bias in (("q_proj", q, qb), ("k_proj", k, kb), ("v_proj", v, vb)):
            out[f"{dst}self_attn.{name}.weight"], out[f"{dst}self_attn.{name}.bias"] = weight, bias
        for old, new in _BLOCK.items():
            for kind in ("weight", "bias"):
                out[f"{dst}{new}.{kind}"] = state[f"{src}{old}.{kind}"]
    return out


def open_clip_to_transformers(state: dict[str, torch.Tensor], vision_heads: int = VIT_H_14_HEADS[0],
                              text_heads: int = VIT_H_14_HEADS[1], eos_token_id: int | None = None
                              ) -> tuple[dict, dict[str, torch.Tensor]]:
    """(CLIPConfig as a dict, transformers state dict) for an OpenCLIP state dict (``module.`` prefixes
    from a distributed run stripped)."""
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        conv = state["visual.conv1.weight"]
        width, patch = conv.shape[0], conv.shape[-1]
        grid = int(round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5))
        vision_layers = _blocks(state, "visual.transformer.resblocks.")
        text_layers = _blocks(state, "transformer.resblocks.")
        vocab, text_width = state["token_embedding.weight"].shape
        out = {
            "logit_scale": state["logit_scale"].reshape(()),
            "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
            "vision_model.embeddings.patch_embedding.weight": conv,
            "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
            "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
            "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
            "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
            "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
            "visual_projection.weight": state["visual.proj"].T.contiguous(),
            "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
            "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
            "text_model.final_layer_norm.weight": state["ln_final.weight"],
            "text_model.final_layer_norm.bias": state["ln_final.bias"],
            "text_projection.weight": state["text_projection"].T.contiguous(),
            **_tower(state, "visual.transformer.resblocks.", "vision_model.encoder.layers.", vision_layers),
            **_tower(state, "transformer.resblocks.", "text_model.encoder.layers.", text_layers),
        }
        vision_mlp = state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
        text_mlp = state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0]
    except KeyError as exc:
        raise CheckpointError(f"tensor {exc.args[0]} missing: not an OpenCLIP CLIP state dict") from None
    eos = vocab - 1 if eos_token_id is None else eos_token_id  # CLIP's <|endoftext|> is its last token
    config = {
        "model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": int(state["visual.proj"].shape[1]),
        "logit_scale_init_value": float(out["logit_scale"]),
        "vision_config": {"hidden_size": width, "intermediate_size": vision_mlp, "num_hidden_layers": vision_layers,
                          "num_attention_heads": vision_heads, "patch_size": patch, "image_size": grid * patch,
                          "hidden_act": "gelu", "layer_norm_eps": 1e-5},
        "text_config": {"vocab_size": vocab, "hidden_size": text_width, "intermediate_size": text_mlp,
                        "num_hidden_layers": text_layers, "num_attention_heads": text_heads,
                        "max_position_embeddings": state["positional_embedding"].shape[0], "hidden_act": "gelu",
                        "layer_norm_eps": 1e-5, "bos_token_id": eos - 1, "eos_token_id": eos, "pad_token_id": eos},
    }
    return config, out


def convert_hps(source: str | Path, tokenizer_folder: str | Path, output: str | Path,
                vision_heads: int = VIT_H_14_HEADS[0], text_heads: int = VIT_H_14_HEADS[1]) -> Path:
    """Write ``output``: config.json, model.safetensors, the tokenizer files of ``tokenizer_folder`` (any local
    CLIP folder, e.g. the ViT-H-14 HPS was tuned from), and CLIP's preprocessing at the model's image size."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessorPil, CLIPModel

    source, output = Path(source).expanduser(), Path(output).expanduser()
    if source.suffix != ".safetensors":
        raise CheckpointError(f"{source}: the source must be a .safetensors file (pickled .pt/.bin files are "
                              "never opened; docs/rewards.md shows how to save HPS v2.1 as safetensors)")
    if not source.is_file():
        raise CheckpointError(f"{source}: no such file")
    if output.exists():
        raise CheckpointError(f"{output} exists; choose a new folder (nothing is overwritten)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(Path(tokenizer_folder).expanduser()), local_files_only=True,
                                                  trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"--tokenizer {tokenizer_folder}: no CLIP tokenizer there ({exc})") from None
    config, state = open_clip_to_transformers(load_file(str(source)), vision_heads, text_heads,
                                              eos_token_id=tokenizer.eos_token_id)
    model = CLIPModel(CLIPConfig(**{k: v for k, v in config.items() if k != "model_type"}))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{source}: tensors do not fit a CLIP model (missing {sorted(missing)[:4]}, "
                              f"unexpected {sorted(unexpected)[:4]})")
    staging = output.with_name(output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging))  # safetensors
    tokenizer.save_pretrained(str(staging))
    size = config["vision_config"]["image_size"]
    CLIPImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size}
                          ).save_pretrained(str(staging))
    (staging / "gotr1_quality.json").write_text(json.dumps({"source": source.name, "kind": "hps"}), encoding="utf-8")
    staging.rename(output)
    return output
