"""The MLLM judge: the four GoT-R1 rewards asked of Qwen2.5-VL, from a local folder.

For a batch it asks, each in batched greedy generation:

* R_sem — one text question per sample (chain vs prompt);
* R_spa — one question per sample with the plan drawn as a picture;
* R_PI  — one question per sample with the generated image;
* R_RI  — one grounding question per distinct planned label per image; the
  boxes Qwen2.5-VL returns (pixels of the image as it saw it) go to the 0-1000
  grid and are matched to the planned boxes by IoU.

Each generated token is a cancel point: ``score(..., callback=...)`` calls
``callback("judging", answered, total)`` once per token (through a stopping
criterion that never stops), so a node can move its progress bar and raise to
cancel mid-answer.

Answers are parsed defensively (:mod:`.parsing`): an unreadable answer scores
0 and says why in the explanation. The questions live in :mod:`.prompts`.
The weights load from a local folder only (safetensors, no remote code); the
tokenizer and image processor are used directly, so no video stack is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image

from ..images import to_pil
from ..layout import Layout, ObjectBox, render_layout
from ..model.loading import CheckpointError, load_pretrained, resolve_device, resolve_dtype
from ..reasoning import parse_chain
from . import prompts
from .base import Rewards
from .matching import matched_iou
from .parsing import parse_boxes, parse_score

LAYOUT_CANVAS = 512


class _Progress:
    """A generation stopping criterion that never stops: reports ``(answered, total)`` questions each token."""

    def __init__(self, callback: Callable[[str, int, int], None] | None, total: int):
        self.callback = callback
        self.total = total
        self.answered = 0

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        self.report()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def report(self) -> None:
        if self.callback is not None:
            self.callback("judging", self.answered, self.total)


GROUND_TOKENS = 128
"""Answer length allowed for the grounding question (boxes); the score questions get the default 48."""


class QwenQuestions:
    """The four rewards from a Qwen2.5-VL's answers to the questions of :mod:`.prompts`.

    How a question reaches the model is the subclass's: :class:`MLLMJudge`
    runs a local checkpoint, :class:`~.served_judge.ServedJudge` asks a
    chat-completions server. Both give ``ask`` (greedy answers, in order) and
    ``seen_size`` (the pixels the model's boxes are in); questions, parsing
    and matching are the same code. ``questions`` picks the wording (:data:`.prompts.QUESTION_PRESETS`).
    """

    questions = "pack"

    def ask(self, questions: list[tuple[str, Image.Image | None]], max_new_tokens: int = 48,
            progress: _Progress | None = None) -> list[str]:
        raise NotImplementedError

    def seen_size(self, image: Image.Image) -> tuple[int, int]:
        raise NotImplementedError

    # -- scoring --------------------------------------------------------------------------

    def score(self, prompts_: Sequence[str], chains: Sequence[str], layouts: Sequence[Layout] | None,
              images, callback: Callable[[str, int, int], None] | None = None) -> Rewards:
        n = len(prompts_)
        if not (len(chains) == n == len(images)) or (layouts is not None and len(layouts) != n):
            raise ValueError("the judge needs one prompt, chain, (layout) and image per sample")
        layouts = list(layouts) if layouts is not None else [Layout.from_chain(c) for c in chains]
        progress = _Progress(callback, 3 * n + sum(len(set(layout.labels)) for layout in layouts))
        pictures = [to_pil(images[i]) for i in range(n)]
        notes: list[list[str]] = [[] for _ in range(n)]

        def scores(questions, label):
            values = []
            for i, answer in enumerate(self.ask(questions, progress=progress)):
                value, why = parse_score(answer, prompts.SCORE_SCALE)
                if value is None:
                    notes[i].append(f"{label}: unreadable answer ({why}); scored 0")
                values.append(value or 0.0)
            return values

        wording = self.questions
        r_sem = scores([(prompts.sem_question(p, parse_chain(c).text, wording), None)
                        for p, c in zip(prompts_, chains)], "R_sem")
        plans = [to_pil(render_layout(l, LAYOUT_CANVAS, LAYOUT_CANVAS)) for l in layouts]
        r_spa = scores([(prompts.spa_question(p, wording), plan) for p, plan in zip(prompts_, plans)], "R_spa")
        r_pi = scores([(prompts.pi_question(p, wording), pic) for p, pic in zip(prompts_, pictures)], "R_PI")
        r_ri, detected = self._grounding(layouts, pictures, notes, progress)
        return Rewards(r_sem, r_spa, r_ri, r_pi, explanations=notes, detected=detected)

    def _grounding(self, layouts: list[Layout], pictures: list[Image.Image], notes: list[list[str]],
                   progress: _Progress | None = None):
        queries = [(i, label) for i, layout in enumerate(layouts) for label in dict.fromkeys(layout.labels)]
        answers = self.ask([(prompts.ground_question(label), pictures[i]) for i, label in queries],
                           max_new_tokens=GROUND_TOKENS, progress=progress)
        sizes = [self.seen_size(picture) for picture in pictures]
        found: list[list[tuple[str, object]]] = [[] for _ in layouts]
        for (i, label), answer in zip(queries, answers):
            boxes, why = parse_boxes(answer, *sizes[i])
            if why:
                notes[i].append(f"R_RI: '{label}': {why}")
            found[i] += [(label, box) for _, box in boxes]  # asked for this label: every box is that object
        r_ri, detected = [], []
        for i, layout in enumerate(layouts):
            planned = [(o.label, o.box) for o in layout.objects]
            matched = matched_iou(planned, found[i])
            r_ri.append(sum(matched) / len(matched) if matched else 0.0)
            if not planned:
                notes[i].append("R_RI: no boxes planned; scored 0")
            detected.append(Layout(tuple(ObjectBox(lbl, box) for lbl, box in found[i])))
        return r_ri, detected


QUESTION_TOKENS = 256
"""Chat template, question and a chain: what a question's text takes besides its image (an upper estimate)."""


class MLLMJudge(QwenQuestions):
    """Rewards judged by a Qwen2.5-VL checkpoint in ``path``."""

    name = "mllm"

    def __init__(self, path: str | Path, device: str | torch.device = "auto", dtype: str | torch.dtype = "auto",
                 max_batch: int = 8, quantize: str | None = None):
        """``quantize`` (fp8, int8, int4) stores the judge's language-model projections quantized: loaded on
        the CPU, quantized layer by layer, then moved to ``device``."""
        from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

        from ..model.quantize import check_mode, quantize_model

        check_mode(quantize)

        folder = Path(path).expanduser()
        config = folder / "config.json"
        if not config.exists():
            raise CheckpointError(f"judge folder {folder} has no config.json")
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        if model_type != "qwen2_5_vl":
            raise CheckpointError(f"{config}: model_type is {model_type!r}; the MLLM judge needs a Qwen2.5-VL "
                                  "checkpoint (model_type 'qwen2_5_vl')")
        self.path = folder
        self.device = resolve_device(device)
        self.max_batch = max_batch
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
            self.images = AutoImageProcessor.from_pretrained(str(folder), local_files_only=True,
                                                             trust_remote_code=False)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load the judge's tokenizer from {folder}: {exc}") from None
        self.model = load_pretrained(Qwen2_5_VLForConditionalGeneration, folder, dtype, self.device,
                                     "the judge checkpoint")
        if quantize:
            quantize_model(self.model, quantize, resolve_dtype(dtype, self.device))
        self.weights = quantize or str(self.model.dtype).removeprefix("torch.")
        self.model.to(self.device).eval().requires_grad_(False)
        self.tokenizer.padding_side = "left"
        self.merge = int(getattr(self.images, "merge_size", 2))

    def offload(self) -> None:
        """Free the accelerator between uses (the model waits on the CPU)."""
        self.model.to("cpu")

    # -- asking ---------------------------------------------------------------------------

    @torch.inference_mode()
    def ask(self, questions: list[tuple[str, Image.Image | None]], max_new_tokens: int = 48,
            progress: _Progress | None = None) -> list[str]:
        """Greedy answers to (question, image-or-None) pairs, batched; image and text-only batches apart."""
        from ..fitting import free_memory_bytes, in_halving_chunks

        self.model.to(self.device)
        answers: list[str] = [""] * len(questions)
        with_image = [i for i, (_, img) in enumerate(questions) if img is not None]
        text_only = [i for i, (_, img) in enumerate(questions) if img is None]
        free = free_memory_bytes(self.device)
        for group in (with_image, text_only):
            if not group:
                continue
            each = self.question_bytes(questions[group[0]][1], max_new_tokens)
            fits = self.max_batch if free is None else max(1, min(self.max_batch, free // each))

            def run(start: int, size: int, group=group) -> None:
                chunk = group[start:start + size]
                for i, answer in zip(chunk, self._generate([questions[i] for i in chunk], max_new_tokens, progress)):
                    answers[i] = answer
                if progress is not None:
                    progress.answered += len(chunk)
                    progress.report()

            def give_up(each=each) -> torch.OutOfMemoryError:
                left = free_memory_bytes(self.device)
                return torch.OutOfMemoryError(
                    f"the judge {self.path.name} ({self.weights} weights) ran out of memory on {self.device} "
                    f"answering one question (about {each / 2**20:.0f} MB; free now "
                    f"{'unknown' if left is None else f'{left / 2**20:.0f} MB'}). Free memory (close other "
                    "models), load the judge with smaller weights (fp8, int8, int4), or serve it apart "
                    "(server_url).")

            in_halving_chunks(len(group), fits, run, self.device, "questions", give_up)
        return answers

    def working_bytes(self, image: Image.Image) -> int:
        """What a full batch of questions about images like ``image`` needs beside the weights (the longest
        answers asked for: boxes)."""
        return self.max_batch * self.question_bytes(image, GROUND_TOKENS)

    def question_bytes(self, image: Image.Image | None, max_new_tokens: int) -> int:
        """About what one question in a batch adds while it is answered: its key/value cache (chat template
        and question, the image's tokens, the answer), a step's float32 logits, and the vision tower's
        activations for its image. An estimate to size batches with; out-of-memory still halves them."""
        text, vision = self.model.config.text_config, self.model.config.vision_config
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        element = self.model.dtype.itemsize
        patches = 0
        if image is not None:
            patch = int(getattr(self.images, "patch_size", 14))
            width, height = self.seen_size(image)
            patches = (width // patch) * (height // patch)
        tokens = QUESTION_TOKENS + patches // self.merge ** 2 + max_new_tokens
        key_values = 2 * text.num_hidden_layers * text.num_key_value_heads * head_dim * tokens * element
        return key_values + 2 * text.vocab_size * 4 + 8 * patches * vision.hidden_size * element

    def _generate(self, batch: list[tuple[str, Image.Image | None]], max_new_tokens: int,
                  progress: _Progress | None = None) -> list[str]:
        from transformers import StoppingCriteriaList

        extra = {}
        texts = [prompts.chat(q, img is not None) for q, img in batch]
        if batch[0][1] is not None:
            pixels = self.images(images=[img for _, img in batch], return_tensors="pt")
            grids = pixels["image_grid_thw"]
            texts = [t.replace("<|image_pad|>", "<|image_pad|>" * (int(g.prod()) // self.merge ** 2))
                     for t, g in zip(texts, grids)]
            extra = {"pixel_values": pixels["pixel_values"].to(self.device, self.model.dtype),
                     "image_grid_thw": grids.to(self.device)}
        encoded = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        each_token = StoppingCriteriaList([progress] if progress is not None else [])
        output = self.model.generate(input_ids=encoded["input_ids"].to(self.device),
                                     attention_mask=encoded["attention_mask"].to(self.device),
                                     max_new_tokens=max_new_tokens, do_sample=False, stopping_criteria=each_token,
                                     **extra)
        return self.tokenizer.batch_decode(output[:, encoded["input_ids"].shape[1]:], skip_special_tokens=True)

    def seen_size(self, image: Image.Image) -> tuple[int, int]:
        """(width, height) of the image as the model sees it after resizing; its boxes are in these pixels."""
        grid = self.images(images=[image], return_tensors="pt")["image_grid_thw"][0]
        patch = int(getattr(self.images, "patch_size", 14))
        return int(grid[2]) * patch, int(grid[1]) * patch
