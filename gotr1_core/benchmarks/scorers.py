"""The scorers' models, run through transformers from local folders (never downloaded while a bench runs).

* :class:`BlipVQA` — T2I-CompBench's attribute score: BLIP's VQA model
  (the official checkpoint is the CapFilt-large VQA one, ``BlipForQuestionAnswering``
  in transformers), read as the official scorer reads it: the answer decoder's
  first token from its start token, P(yes) / (P(yes) + P(no)).
* :class:`OpenVocabularyDetector` — boxes for named objects (2D-spatial):
  OWLv2 or OWL-ViT. The official detector, UniDet, has no transformers port; an
  open-vocabulary detector finds the prompt's own nouns instead of UniDet's
  fixed label list, and its confidences are not UniDet's (an approximation,
  stated where the results are).
* :class:`InstanceSegmenter` — GenEval's detector: Mask2Former trained on COCO
  instances, its per-query scores and masks post-processed the way GenEval's
  (mmdetection's) instance head does: the top ``max_per_image`` (query, class)
  pairs by class probability, each scored by its class probability times the
  mean mask probability inside its binary mask, with the mask's bounding box.
* CLIP is :class:`gotr1_core.rewards.quality.ClipScorer`.

:data:`SCORERS` names each one's folder and what it must hold; :func:`load_scorer` loads one by key.

Every folder is checked before loading (config.json's ``model_type``,
safetensors weights, the tokenizer) with an error that says what to put there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gotr1_core.images import to_pil
from gotr1_core.model.loading import CheckpointError, load_pretrained, pretrained_problem, resolve_device

from .scorer_kinds import SCORERS, ScorerKind  # noqa: F401  (the table lives torch-free for the command line)


def scorer_problem(key: str, folder: str | Path) -> str | None:
    """Why ``folder`` cannot be loaded as the scorer ``key``, or None (checked before a bench draws anything)."""
    kind = SCORERS[key]
    return pretrained_problem(
        folder, kind.model_types, kind.what, kind.tokenizers,
        expected=f"expected a transformers folder ({' or '.join(kind.model_types)}: config.json, *.safetensors, "
                 "tokenizer and preprocessor files) — docs/benchmarks.md says which")


def load_scorer(key: str, folder: str | Path, device: str | torch.device = "auto"):
    """The scorer ``key`` from ``folder``: BLIP VQA, CLIP (:class:`~gotr1_core.rewards.quality.ClipScorer`), the
    open-vocabulary detector or the instance segmenter."""
    if key in ("clip", "color_clip"):
        from ..rewards.quality import ClipScorer

        return ClipScorer(folder, device=device, what=SCORERS[key].what, hint="docs/benchmarks.md says where to get it")
    return {"vqa": BlipVQA, "detector": OpenVocabularyDetector, "segmenter": InstanceSegmenter}[key](folder, device)


def _checked(key: str, folder: str | Path) -> Path:
    if (problem := scorer_problem(key, folder)) is not None:
        raise CheckpointError(problem)
    return Path(folder).expanduser()


def _processor(cls, folder: Path, what: str):
    try:
        if (folder / "preprocessor_config.json").is_file():
            return cls.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the {what}'s preprocessor_config.json in {folder}: {exc}") from None
    return cls()


def _tokenizer(folder: Path, what: str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the {what}'s tokenizer from {folder}: {exc}") from None


def pre_question(question: str, max_words: int = 50) -> str:
    """A question as the official BLIP VQA reads it: lower case, ``.!"()*#:;~`` removed, at most 50 words."""
    text = "".join(c for c in question.lower() if c not in '.!"()*#:;~').rstrip(" ")
    return " ".join(text.split(" ")[:max_words])


class BlipVQA:
    """P(yes) of BLIP's VQA answer decoder for (image, question) pairs."""

    what = SCORERS["vqa"].what

    def __init__(self, path: str | Path, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                 max_batch: int = 16):
        from transformers import BlipForQuestionAnswering, BlipImageProcessorPil

        folder = _checked("vqa", path)
        self.device = resolve_device(device)
        self.max_batch = max_batch
        self.tokenizer = _tokenizer(folder, self.what)
        self.images = _processor(BlipImageProcessorPil, folder, self.what)
        vocab = self.tokenizer.get_vocab()
        if "yes" not in vocab or "no" not in vocab:
            raise CheckpointError(f"{folder}: the {self.what}'s tokenizer has no 'yes' or 'no' token to read P(yes) by")
        self.yes, self.no = vocab["yes"], vocab["no"]
        self.model = load_pretrained(BlipForQuestionAnswering, folder, dtype, self.device, f"the {self.what}")
        self.model.to(self.device).eval().requires_grad_(False)

    @torch.inference_mode()
    def p_yes(self, images, questions: Sequence[str]) -> list[float]:
        """For each pair: P(yes) / (P(yes) + P(no)) of the first answer token.

        Questions are batched by token length, so no batch holds padding: transformers' BLIP answer decoder
        attends to padded question states whatever the mask says (checked on 5.25), which would make a
        question's score depend on its neighbours in a batch."""
        if len(images) != len(questions):
            raise ValueError(f"one question per image is needed ({len(questions)} for {len(images)})")
        ids = [self.tokenizer(pre_question(q))["input_ids"] for q in questions]
        by_length: dict[int, list[int]] = {}
        for i, tokens in enumerate(ids):
            by_length.setdefault(len(tokens), []).append(i)
        out = [0.0] * len(questions)
        model = self.model
        for rows in by_length.values():
            for start in range(0, len(rows), self.max_batch):
                batch = rows[start:start + self.max_batch]
                pixels = self.images(images=[to_pil(images[i]) for i in batch], return_tensors="pt")["pixel_values"]
                image_states = model.vision_model(pixel_values=pixels.to(self.device, model.dtype))[0]
                question_states = model.text_encoder(
                    input_ids=torch.tensor([ids[i] for i in batch], device=self.device),
                    encoder_hidden_states=image_states,
                    encoder_attention_mask=torch.ones(image_states.shape[:-1], dtype=torch.long, device=self.device),
                    return_dict=False)[0]
                start_tokens = torch.full((len(batch), 1), model.decoder_start_token_id, device=self.device)
                probs = model.text_decoder(input_ids=start_tokens, encoder_hidden_states=question_states
                                           ).logits[:, 0].float().softmax(-1)
                for i, value in zip(batch, (probs[:, self.yes] / (probs[:, self.yes] + probs[:, self.no])).tolist()):
                    out[i] = value
        return out


@dataclass
class Detection:
    """One object found in an image: its label, confidence, box ``(x0, y0, x1, y1)`` in pixels, and mask."""

    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = field(default=None, repr=False)


class OpenVocabularyDetector:
    """Boxes for objects named in text, from an OWLv2 or OWL-ViT folder."""

    what = SCORERS["detector"].what

    def __init__(self, path: str | Path, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                 threshold: float = 0.1):
        import transformers

        folder = _checked("detector", path)
        self.model_type = json.loads((folder / "config.json").read_text(encoding="utf-8"))["model_type"]
        v2 = self.model_type == "owlv2"
        self.device = resolve_device(device)
        self.threshold = threshold
        self.tokenizer = _tokenizer(folder, self.what)
        self.images = _processor(transformers.Owlv2ImageProcessorPil if v2 else transformers.OwlViTImageProcessorPil,
                                 folder, self.what)
        model_class = transformers.Owlv2ForObjectDetection if v2 else transformers.OwlViTForObjectDetection
        self.model = load_pretrained(model_class, folder, dtype, self.device, f"the {self.what}")
        self.model.to(self.device).eval().requires_grad_(False)

    @torch.inference_mode()
    def detect(self, image, queries: Sequence[str]) -> list[Detection]:
        """Every box whose best query scores above the threshold, labelled by that query, most confident first."""
        picture = to_pil(image)
        width, height = picture.size
        pixels = self.images(images=[picture], return_tensors="pt")["pixel_values"].to(self.device, self.model.dtype)
        text = self.tokenizer([q.lower() for q in queries], padding="max_length", truncation=True,
                              max_length=self.model.config.text_config.max_position_embeddings, return_tensors="pt")
        out = self.model(input_ids=text["input_ids"].to(self.device),
                         attention_mask=text["attention_mask"].to(self.device), pixel_values=pixels)
        scores, labels = out.logits[0].float().sigmoid().max(-1)
        # OWLv2 boxes are relative to the image padded to a square (bottom and right); OWL-ViT's to the image
        scale = (max(width, height),) * 2 if self.model_type == "owlv2" else (width, height)
        cx, cy, w, h = out.pred_boxes[0].float().unbind(-1)
        boxes = torch.stack([(cx - w / 2) * scale[0], (cy - h / 2) * scale[1],
                             (cx + w / 2) * scale[0], (cy + h / 2) * scale[1]], -1)
        boxes = torch.stack([boxes[:, 0].clamp(0, width), boxes[:, 1].clamp(0, height),
                             boxes[:, 2].clamp(0, width), boxes[:, 3].clamp(0, height)], -1)
        keep = (scores > self.threshold).nonzero().flatten().tolist()
        found = [Detection(queries[labels[i]], float(scores[i]), tuple(boxes[i].tolist())) for i in keep]
        return sorted(found, key=lambda d: -d.score)


class InstanceSegmenter:
    """Mask2Former (COCO instances): scored masks and their boxes, as GenEval's detector reports them."""

    what = SCORERS["segmenter"].what

    def __init__(self, path: str | Path, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                 max_per_image: int = 100):
        from transformers import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessorPil

        folder = _checked("segmenter", path)
        self.device = resolve_device(device)
        self.max_per_image = max_per_image
        self.images = _processor(Mask2FormerImageProcessorPil, folder, self.what)
        self.model = load_pretrained(Mask2FormerForUniversalSegmentation, folder, dtype, self.device,
                                     f"the {self.what}")
        self.model.to(self.device).eval().requires_grad_(False)
        config = self.model.config
        self.labels = [config.id2label[i] for i in range(config.num_labels)]

    @torch.inference_mode()
    def detect(self, image) -> list[Detection]:
        """The top (query, class) pairs, labelled by the model's class names, most confident first."""
        picture = to_pil(image)
        width, height = picture.size
        inputs = self.images(images=[picture], return_tensors="pt")
        out = self.model(pixel_values=inputs["pixel_values"].to(self.device, self.model.dtype),
                         pixel_mask=inputs["pixel_mask"].to(self.device))
        classes = out.class_queries_logits[0].float().softmax(-1)[:, :-1]  # the last class is "no object"
        queries, labels = classes.shape
        top = classes.flatten().topk(min(self.max_per_image, queries * labels))
        query = top.indices // labels
        # mask logits are at a quarter of the processed size: upsample, keep the image's own part, then its size
        valid = inputs["pixel_mask"][0]
        rows, cols = int(valid.any(1).sum()), int(valid.any(0).sum())
        logits = torch.nn.functional.interpolate(out.masks_queries_logits[0:1, query].float(),
                                                 size=tuple(valid.shape), mode="bilinear", align_corners=False)
        logits = torch.nn.functional.interpolate(logits[:, :, :rows, :cols], size=(height, width),
                                                 mode="bilinear", align_corners=False)[0]
        probs = logits.sigmoid()
        binary = probs > 0.5
        mask_score = (probs * binary).flatten(1).sum(1) / (binary.flatten(1).sum(1) + 1e-6)
        scores = top.values * mask_score
        found = []
        for k in range(len(scores)):
            mask = binary[k].cpu().numpy()
            ys, xs = np.nonzero(mask)
            box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)) if len(xs) else (
                0.0, 0.0, 0.0, 0.0)
            found.append(Detection(self.labels[int(top.indices[k] % labels)], float(scores[k]), box, mask))
        return sorted(found, key=lambda d: -d.score)
