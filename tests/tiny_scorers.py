"""Tiny random benchmark scorers of the real transformers classes, written as a user's folders are.

BLIP VQA (BERT word-piece tokenizer with "yes" and "no"), OWLv2 (CLIP tokenizer)
and Mask2Former (80 COCO-ordered labels, Swin backbone): a few hundred thousand
parameters each, saved with ``save_pretrained`` (safetensors) beside their
preprocessor configs, so the bench loads them through the same code as the
published checkpoints.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch
from tiny_clip import write_clip_tokenizer

WORDS = ("yes", "no", "a", "an", "the", "red", "blue", "green", "circle", "square", "bench", "bowl", "cat", "dog")


def make_tiny_blip(folder: Path, seed: int = 0) -> Path:
    from transformers import BlipConfig, BlipForQuestionAnswering, BlipImageProcessorPil

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", *WORDS, *string.ascii_lowercase,
             *(f"##{c}" for c in string.ascii_lowercase), "?", ".", ","]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 32,
        "bos_token": "[DEC]", "pad_token": "[PAD]", "sep_token": "[SEP]", "cls_token": "[CLS]",
        "unk_token": "[UNK]", "mask_token": "[MASK]"}), encoding="utf-8")
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 32, "encoder_hidden_size": 32,
            "bos_token_id": vocab.index("[DEC]"), "pad_token_id": 0, "sep_token_id": 3}
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 16}
    torch.manual_seed(seed)
    BlipForQuestionAnswering(BlipConfig(text_config=text, vision_config=vision)).save_pretrained(str(folder))
    BlipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder


def make_tiny_owlv2(folder: Path, seed: int = 0) -> Path:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessorPil

    vocab = write_clip_tokenizer(folder, placeholder=True, context=16)
    config = Owlv2Config(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 1, "eos_token_id": 2,
                     "pad_token_id": 0},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=32)  # OWL projects text to its own width: projection = text hidden size
    torch.manual_seed(seed)
    Owlv2ForObjectDetection(config).save_pretrained(str(folder))
    Owlv2ImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder


def make_tiny_mask2former(folder: Path, labels: list[str], seed: int = 0) -> Path:
    from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil,
                              SwinConfig)

    folder.mkdir(parents=True, exist_ok=True)
    backbone = SwinConfig(image_size=64, patch_size=4, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2],
                          window_size=4, out_features=["stage1", "stage2", "stage3", "stage4"])
    config = Mask2FormerConfig(
        backbone_config=backbone, feature_size=32, mask_feature_size=32, hidden_dim=32, encoder_layers=1,
        decoder_layers=2, num_attention_heads=2, dim_feedforward=64, encoder_feedforward_dim=64, num_queries=10,
        num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
    torch.manual_seed(seed)
    Mask2FormerForUniversalSegmentation(config).save_pretrained(str(folder))
    Mask2FormerImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 64}).save_pretrained(str(folder))
    return folder
