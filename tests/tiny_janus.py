"""Tiny random-weight Janus checkpoints, written to disk like a user's model folder."""

from __future__ import annotations

from pathlib import Path

import torch

from gotr1_core.model.configs import small_janus_config
from gotr1_core.model.loading import GenerationSpec
from gotr1_core.model.tokenizer import IMAGE_PLACEHOLDER, train_tokenizer
from gotr1_core.reasoning import IMAGE_START

CORPUS = [
    "User: Follow the caption to generate an image through a chain of thought process: a red circle left of "
    "a blue square\n\nAssistant: a <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)"
    "<|box_end|> and a <|obj_start|>blue square<|obj_end|> <|box_start|>(500,200),(900,600)<|box_end|>",
    "two green triangles above a yellow circle, a cat on a sofa, mountains at sunset 0123456789",
] * 10


def make_tiny_model(folder: Path, seed: int = 0, stop_bias: float = 0.0, **overrides) -> Path:
    """Write a random Janus model folder (config, safetensors, tokenizer, gotr1.json).

    ``stop_bias`` scales the image-start row of the LM head so that random
    weights end their chains after a few tokens, at different steps per row.
    """
    tokenizer = train_tokenizer(CORPUS, vocab_size=320)
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id,
           "image_placeholder": tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)}
    options = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, grid_size=4, codebook_size=64,
                   vq_channels=32, vq_levels=2, special_ids=ids)
    options.update(overrides)
    config = small_janus_config(vocab_size=len(tokenizer), **options)
    from transformers import JanusForConditionalGeneration

    torch.manual_seed(seed)
    model = JanusForConditionalGeneration(config).eval()
    with torch.no_grad():
        # Random init gives near-flat logits, where sampling noise alone decides; sharpen both heads
        # so that tokens depend on the prompt like a trained model's do.
        model.lm_head.weight *= 40
        model.model.generation_head.vision_head.weight *= 40
        if stop_bias:
            model.lm_head.weight[tokenizer.convert_tokens_to_ids(IMAGE_START)] *= stop_bias
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    GenerationSpec(max_reason_tokens=24).write(folder)
    return folder
