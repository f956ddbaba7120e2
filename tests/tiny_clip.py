"""A tiny random CLIP folder with the files of a real HPS v2.1 conversion: config, safetensors, CLIP tokenizer."""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

IMAGE_SIZE = 28


def write_clip_tokenizer(folder: Path, placeholder: bool = False, context: int = 77) -> dict[str, int]:
    """CLIP's byte-pair vocabulary in miniature (each character, alone and word-final, no merges) and its
    tokenizer config; returns the vocabulary. ``placeholder`` puts a filler at id 0, which OWL reads as
    padding when a query starts with it (the real start token is 49406)."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = [c for c in string.ascii_lowercase + string.digits + ".,-"]
    vocab = {"!": 0} if placeholder else {}
    for symbol in ["<|startoftext|>", "<|endoftext|>", *symbols, *(s + "</w>" for s in symbols)]:
        vocab[symbol] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>", "pad_token": "!" if placeholder else "<|endoftext|>",
        "model_max_length": context}), encoding="utf-8")
    return vocab


def make_tiny_clip(folder: Path, seed: int = 0) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel

    vocab = write_clip_tokenizer(folder)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1, "hidden_act": "gelu"},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": IMAGE_SIZE, "patch_size": 14, "hidden_act": "gelu"},
        projection_dim=16)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(str(folder))
    CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE},
                       crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(str(folder))
    return folder
