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

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from ..images import to_pil
from ..model.loading import CheckpointError, load_pretrained, resolve_device

TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))


def hps_problem(folder: str | Path, complete: bool = True) -> str | None:
    """Why ``folder`` is not a quality-model folder, or None. Config checks (``complete=False``) read only its
    config.json, as for a judge, so a run can be planned (``--dry-run``) before the weights are fetched; the
    loader checks the weights and tokenizer too."""
    folder = Path(folder).expanduser()
    config = folder / "config.json"
    if not config.is_file():
        return (f"quality model {folder}: no config.json; expected a transformers CLIP folder (config.json, "
                "*.safetensors, vocab.json + merges.txt) — convert HPS v2.1 with `gotr1 convert-hps`")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        return f"{config}: not readable JSON ({exc})"
    if model_type != "clip":
        return f"{config}: model_type is {model_type!r}; the quality reward needs a CLIP model (model_type 'clip')"
    if not complete:
        return None
    if not any(folder.glob("*.safetensors")):
        return f"quality model {folder}: no *.safetensors weights (pickled .pt/.bin files are never loaded)"
    if not any(all((folder / name).is_file() for name in files) for files in TOKENIZER_FILES):
        return f"quality model {folder}: no CLIP tokenizer (vocab.json + merges.txt, or tokenizer.json)"
    return None


class HPSScorer:
    """Scores (prompt, image) pairs with a CLIP preference model: R_HPS = max(0, cosine)."""

    name = "hps"

    def __init__(self, path: str | Path, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                 max_batch: int = 16):
        from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

        if (problem := hps_problem(path)) is not None:
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
            raise CheckpointError(f"cannot load the quality model's tokenizer from {folder}: {exc}") from None
        self.model = load_pretrained(CLIPModel, folder, dtype, self.device, "the quality model")
        self.model.to(self.device).eval().requires_grad_(False)
        self.context = int(self.model.config.text_config.max_position_embeddings)

    def offload(self) -> None:
        """Free the accelerator between uses (the model waits on the CPU)."""
        self.model.to("cpu")

    @torch.inference_mode()
    def embed(self, prompts: Sequence[str], images) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit-length image and text embeddings, float32, one row per pair."""
        pixels = self.images(images=[to_pil(image) for image in images], return_tensors="pt")["pixel_values"]
        text = self.tokenizer(list(prompts), padding=True, truncation=True, max_length=self.context,
                              return_tensors="pt")
        image_features = self.model.get_image_features(
            pixel_values=pixels.to(self.device, self.model.dtype)).pooler_output.float()
        text_features = self.model.get_text_features(
            input_ids=text["input_ids"].to(self.device),
            attention_mask=text["attention_mask"].to(self.device)).pooler_output.float()
        return (torch.nn.functional.normalize(image_features, dim=-1),
                torch.nn.functional.normalize(text_features, dim=-1))

    def score(self, prompts: Sequence[str], images) -> list[float]:
        """R_HPS for each (prompt, image): the embeddings' cosine, floored at 0 so it is a reward in [0, 1]."""
        if len(prompts) != len(images):
            raise ValueError(f"the quality model needs one prompt per image ({len(prompts)} for {len(images)})")
        self.model.to(self.device)
        scores: list[float] = []
        for start in range(0, len(prompts), self.max_batch):
            end = start + self.max_batch
            image_features, text_features = self.embed(prompts[start:end], images[start:end])
            scores += (image_features * text_features).sum(-1).clamp(0.0, 1.0).tolist()
        return scores

    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())
