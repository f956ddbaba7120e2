"""R_HPS, visual quality: Human Preference Score v2.1 from a local CLIP folder.

HPS v2.1 is an OpenCLIP ViT-H/14 fine-tuned on human preferences between images
of one prompt; its score is the cosine of the image's and the prompt's embeddings
(about 0.2-0.35 on real images, higher is preferred). We run it with
transformers' ``CLIPModel``: the architecture is the same (pre-norm ViT, GELU,
causal text tower pooled at the end token), transformers is already the pack's
model library, and a transformers folder loads from safetensors with no code of
ours between the file and the layers. The authors publish OpenCLIP weights as a
PyTorch pickle, which the pack never opens: ``gotr1 convert-hps`` turns an
OpenCLIP state dict saved as safetensors into a transformers folder
(docs/rewards.md says how to get one).

A folder holds ``config.json`` (``model_type: clip``), the weights
(``*.safetensors``), the CLIP tokenizer (``vocab.json`` + ``merges.txt`` or
``tokenizer.json``) and optionally ``preprocessor_config.json`` (else CLIP's
own preprocessing: bicubic resize to 224, centre crop, OpenAI mean and std —
what HPS was trained with).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ..benchmarks.scorer_kinds import CLIP_TOKENIZER
from ..images import to_pil
from ..model.loading import CheckpointError, load_pretrained, pretrained_problem, resolve_device


def clip_problem(folder: str | Path, complete: bool = True, what: str = "quality model",
                 hint: str = "convert HPS v2.1 with `gotr1 convert-hps`") -> str | None:
    """Why ``folder`` is not a transformers CLIP folder, or None. Config checks (``complete=False``) read only its
    config.json, as for a judge, so a run can be planned (``--dry-run``) before the weights are fetched; the
    loader checks the weights and tokenizer too. ``what`` and ``hint`` name the folder's role in the messages."""
    return pretrained_problem(folder, ("clip",), what, CLIP_TOKENIZER, complete=complete, expected=(
        f"expected a transformers CLIP folder (config.json, *.safetensors, vocab.json + merges.txt) — {hint}"))


def hps_problem(folder: str | Path, complete: bool = True) -> str | None:
    """Why ``folder`` is not a quality-model (HPS) folder, or None."""
    return clip_problem(folder, complete)


class ClipScorer:
    """A CLIP model from a local folder: unit-length image and text embeddings, and their cosine per pair."""

    def __init__(self, path: str | Path, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                 max_batch: int = 16, what: str = "quality model",
                 hint: str = "convert HPS v2.1 with `gotr1 convert-hps`"):
        from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

        if (problem := clip_problem(path, what=what, hint=hint)) is not None:
            raise CheckpointError(problem)
        folder = Path(path).expanduser()
        self.path = folder
        self.device = resolve_device(device)
        self.max_batch = max_batch
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            has_processor = (folder / "preprocessor_config.json").is_file()
            # the PIL processor everywhere: torchvision's would resize a little differently where it is installed
            self.images = (CLIPImageProcessorPil.from_pretrained(str(folder), local_files_only=True)
                           if has_processor else CLIPImageProcessorPil())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load the {what}'s tokenizer from {folder}: {exc}") from None
        self.model = load_pretrained(CLIPModel, folder, dtype, self.device, f"the {what}")
        self.model.to(self.device).eval().requires_grad_(False)
        self.context = int(self.model.config.text_config.max_position_embeddings)

    def offload(self) -> None:
        """Free the accelerator between uses (the model waits on the CPU)."""
        self.model.to("cpu")

    @torch.inference_mode()
    def image_features(self, images) -> torch.Tensor:
        """Unit-length image embeddings, float32, one row per image, ``max_batch`` at a time."""
        self.model.to(self.device)
        rows = []
        for start in range(0, len(images), self.max_batch):
            pixels = self.images(images=[to_pil(image) for image in images[start:start + self.max_batch]],
                                 return_tensors="pt")["pixel_values"]
            rows.append(self.model.get_image_features(
                pixel_values=pixels.to(self.device, self.model.dtype)).pooler_output.float())
        return torch.nn.functional.normalize(torch.cat(rows), dim=-1)

    @torch.inference_mode()
    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length text embeddings, float32, one row per text."""
        self.model.to(self.device)
        rows = []
        for start in range(0, len(texts), self.max_batch):
            tokens = self.tokenizer(list(texts[start:start + self.max_batch]), padding=True, truncation=True,
                                    max_length=self.context, return_tensors="pt")
            rows.append(self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device)).pooler_output.float())
        return torch.nn.functional.normalize(torch.cat(rows), dim=-1)

    def similarity(self, prompts: Sequence[str], images) -> list[float]:
        """The cosine of each (prompt, image) pair's embeddings, raw (in [-1, 1])."""
        if len(prompts) != len(images):
            raise ValueError(f"one prompt per image is needed ({len(prompts)} for {len(images)})")
        if not prompts:
            return []
        return (self.image_features(images) * self.text_features(prompts)).sum(-1).tolist()

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())


class HPSScorer(ClipScorer):
    """Scores (prompt, image) pairs with a CLIP preference model: R_HPS = max(0, cosine)."""

    name = "hps"

    def score(self, prompts: Sequence[str], images) -> list[float]:
        """R_HPS for each (prompt, image): the embeddings' cosine, floored at 0 so it is a reward in [0, 1]."""
        if len(prompts) != len(images):
            raise ValueError(f"the quality model needs one prompt per image ({len(prompts)} for {len(images)})")
        return [min(1.0, max(0.0, value)) for value in self.similarity(prompts, images)]
