"""Nodes that score images with the GoT-R1 rewards and pick the best of a batch."""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gotr1_core.benchmarks import compbench, phrases
from gotr1_core.benchmarks.scorers import SCORERS, load_scorer
from gotr1_core.images import to_pil
from gotr1_core.layout import Layout, render_layout
from gotr1_core.model.quantize import WEIGHT_MODES, split_weights_mode
from gotr1_core.rewards import (FORMULAS, HPSScorer, Judge, MLLMJudge, RewardFormula, ScoredJudge, ServedJudge,
                                ShapeWorldJudge, reward_settings_problem)
from gotr1_core.rewards.prompts import QUESTION_PRESETS
from gotr1_core.rewards.served_judge import check_allowed_host, is_judge_url
from gotr1_core.reasoning import split_chains

from . import services

GOT_JUDGE = "GOT_JUDGE"
CATEGORY = "GoT-R1/Rewards"
SHAPEWORLD = "ShapeWorld (exact)"
NO_QUALITY = "none"
OVERLAY_MIN_SIDE = 256  # small images are enlarged so labels stay readable
FOUND_COLOUR = (20, 20, 20)


@dataclass(eq=False)
class LoadedJudge:
    """What travels on a GOT_JUDGE link: the judge and, for an MLLM judge, ComfyUI's handle on its memory."""

    judge: Judge
    handle: services.ManagedModel | None = None
    quality_handle: services.ManagedModel | None = None

    def ready(self, images: torch.Tensor | None = None) -> Judge:
        """The judge on its device; an MLLM judge is loaded together with the memory a full batch of
        questions about ``images`` needs (ComfyUI unloads other models for both), a quality model beside it."""
        if self.handle is not None:
            working = self.judge.working_bytes(to_pil(images[0])) if images is not None and len(images) else 0
            self.handle.load(working)
        if self.quality_handle is not None:
            self.quality_handle.load(0)
        return self.judge


_loaded: "weakref.WeakValueDictionary[tuple, LoadedJudge]" = weakref.WeakValueDictionary()


class JudgeLoader:
    CATEGORY = CATEGORY
    RETURN_TYPES = (GOT_JUDGE,)
    RETURN_NAMES = ("judge",)
    FUNCTION = "load"
    DESCRIPTION = ("Chooses who scores the images: the exact ShapeWorld judge (built in), a Qwen2.5-VL folder "
                   "in models/gotr1/judges/, or a judge server (server_url); optionally a visual-quality model "
                   "(HPS v2.1 in models/gotr1/quality/) and how the rewards combine.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "judge": ([SHAPEWORLD] + services.list_model_dirs("judges"), {
                    "tooltip": "ShapeWorld (exact): rewards from the prompt and the image's coloured shapes. "
                               "judges/<name>: a Qwen2.5-VL checkpoint asked the four reward questions."}),
                "weights": (list(WEIGHT_MODES), {"default": "auto", "tooltip":
                            "For MLLM judges: the weights' dtype, or fp8 / int8 / int4 storage of its language "
                            "model (a 7B judge in 4-8 GB instead of 15)."}),
            },
            "optional": {
                "server_url": ("STRING", {"default": "", "tooltip":
                               "A Qwen2.5-VL behind an OpenAI-compatible server (vLLM, SGLang, transformers serve), "
                               "e.g. http://127.0.0.1:8000/v1: used instead of the judge above, no GPU memory here. "
                               "Servers on this machine only, unless the host is named in GOTR1_JUDGE_HOSTS; a key "
                               "comes from GOTR1_JUDGE_API_KEY, never from the workflow."}),
                "quality_model": ([NO_QUALITY] + services.list_model_dirs("quality"), {"default": NO_QUALITY, "tooltip":
                                  "Visual quality, R_HPS: Human Preference Score v2.1 as a CLIP folder in "
                                  "models/gotr1/quality/ (made by `gotr1 convert-hps`)."}),
                "reward_formula": (list(FORMULAS), {"default": "v1", "tooltip":
                                   "v1: R_PI * (R_sem + R_spa) * R_RI. v2: R_PI * (R_sem + R_spa) / 2 * R_RI * "
                                   "R_HPS (needs a quality model). custom: reward_expression."}),
                "reward_expression": ("STRING", {"default": "", "tooltip":
                                      "For custom: arithmetic over r_sem, r_spa, r_ri, r_pi, r_hps (+ - * / **, "
                                      "min, max), e.g. r_pi * r_ri + 0.5 * r_hps."}),
                "questions": (list(QUESTION_PRESETS), {"default": "pack", "tooltip":
                              "A Qwen2.5-VL judge's wording: pack (ours) or paper (the GoT-R1 criteria)."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, judge: str, weights: str = "auto", server_url: str = "", quality_model: str = NO_QUALITY,
                   **settings):
        """Reload an MLLM judge or quality model when its folder's files change, not otherwise."""
        parts = [server_url.strip() or (judge if judge == SHAPEWORLD else
                                        services.loader_is_changed(_judge_folder, judge))]
        if quality_model != NO_QUALITY:
            parts.append(services.loader_is_changed(_quality_folder, quality_model))
        if any(isinstance(part, float) for part in parts):
            return float("nan")  # a folder that does not resolve: run the node, whose load says why
        return "|".join(str(part) for part in parts + sorted(f"{k}={v}" for k, v in settings.items()))

    def load(self, judge: str, weights: str = "auto", server_url: str = "", quality_model: str = NO_QUALITY,
             reward_formula: str = "v1", reward_expression: str = "", questions: str = "pack"):
        formula = RewardFormula.of(reward_formula, reward_expression.strip() or None)
        problem = reward_settings_problem(judge == SHAPEWORLD and not server_url.strip(),
                                          quality_model != NO_QUALITY, formula, questions,
                                          "choose a quality_model (HPS v2.1 in models/gotr1/quality/)")
        if problem:
            raise ValueError(problem)
        loaded = self._judge(judge, weights, server_url.strip(), questions)
        if quality_model == NO_QUALITY and formula == RewardFormula():
            return (loaded,)
        quality = None if quality_model == NO_QUALITY else self._quality(quality_model, weights)
        return (LoadedJudge(ScoredJudge(loaded.judge, quality and quality.judge, formula), loaded.handle,
                            quality and quality.handle),)

    @staticmethod
    def _judge(judge: str, weights: str, server_url: str, questions: str) -> LoadedJudge:
        if server_url:
            if not is_judge_url(server_url):
                raise ValueError(f"server_url must look like http://HOST:PORT/v1, got {server_url!r}")
            check_allowed_host(server_url)  # a shared graph names the URL: only hosts the user allowed
            served = ServedJudge(server_url)
            served.questions = questions
            return LoadedJudge(served)
        if judge == SHAPEWORLD:
            return LoadedJudge(ShapeWorldJudge())
        dtype, quantize = split_weights_mode(weights)

        def build(folder, device):
            mllm = MLLMJudge(folder, device=device, dtype=dtype, quantize=quantize)
            mllm.questions = questions
            return mllm

        return _cached(_judge_folder(judge), (weights, questions), build)

    @staticmethod
    def _quality(name: str, weights: str) -> LoadedJudge:
        """The quality model (its scorer on ``judge``), cached like an MLLM judge, in the dtype ``weights``
        names (a quantized mode's compute dtype: the 1 B CLIP is not worth quantizing)."""
        dtype = split_weights_mode(weights)[0]
        return _cached(_quality_folder(name), (dtype,),
                       lambda folder, device: HPSScorer(folder, device=device, dtype=dtype))


def _cached(folder: Path, settings: tuple, build) -> LoadedJudge:
    """The model in ``folder`` loaded once per (folder, ``settings``, device, folder contents) by
    ``build(folder, device)``, made room for and handed to ComfyUI's model management."""
    device = services.torch_device()
    key = (str(folder), *settings, str(device), services.folder_fingerprint(folder))
    cached = _loaded.get(key)
    if cached is None:
        services.make_room_for(folder, device)
        model = build(folder, device)
        cached = _loaded[key] = LoadedJudge(model, services.ManagedModel(model.model, device,
                                                                         services.offload_device()))
    return cached


def _judge_folder(judge: str) -> Path:
    if not judge.startswith("judges/"):
        raise ValueError(f"unknown judge {judge!r}; choose {SHAPEWORLD!r} or a folder in models/gotr1/judges/")
    return services.resolve_model_dir(judge)


def _quality_folder(name: str) -> Path:
    if not name.startswith("quality/"):
        raise ValueError(f"unknown quality model {name!r}; choose {NO_QUALITY!r} or a folder in "
                         "models/gotr1/quality/")
    return services.resolve_model_dir(name)


def _progress_callback():
    """Judging progress on a ComfyUI progress bar; the cancel button stops within a token.

    The judge calls back on every generated token; the bar (one message to the
    browser per update) moves only when another question has been answered.
    """
    bar = services.progress_bar(1)
    shown = -1

    def callback(stage: str, done: int, total: int) -> None:
        nonlocal shown
        services.check_interrupted()
        if done != shown:
            bar.update_absolute(done, total)
            shown = done

    return callback


def pair_chains(chains: str, count: int) -> list[str]:
    """One chain per image: a single chain serves every image, else one each."""
    parts = split_chains(chains)
    if len(parts) == 1:
        return parts * count
    if len(parts) != count:
        raise ValueError(f"{len(parts)} chains for {count} images: give one chain, or one per image "
                         "(as the GoT-R1 Generator outputs them)")
    return parts


def overlay(image: torch.Tensor, planned: Layout, found: Layout | None) -> torch.Tensor:
    """The image (enlarged if small) with planned boxes in colour and found boxes in black."""
    height, width = image.shape[:2]
    scale = max(1, -(-OVERLAY_MIN_SIDE // min(height, width)))
    pixels = to_pil(image)
    big = np.asarray(pixels.resize((width * scale, height * scale), Image.NEAREST))
    drawn = render_layout(planned, background=big, fill_alpha=0.0)
    if found is not None and len(found):
        drawn = render_layout(Layout(tuple(found.objects)), background=drawn, fill_alpha=0.0,
                              colour=FOUND_COLOUR, labels=False)
    return drawn


class RewardJudge:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("FLOAT", "STRING", "IMAGE")
    RETURN_NAMES = ("best_total", "report", "overlay")
    FUNCTION = "judge"
    DESCRIPTION = ("Scores each image with the GoT-R1 rewards (R_HPS too where the Judge Loader has a quality "
                   "model) and their total by the loader's formula (v1: R_PI * (R_sem + R_spa) * R_RI); the "
                   "overlay shows planned boxes in colour and what the judge found in black.")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "judge": (GOT_JUDGE, {"tooltip": "From GoT-R1 Judge Loader."}),
                "prompt": ("STRING", {"multiline": True, "default": "", "tooltip": "The prompt the images follow."}),
                "chains": ("STRING", {"forceInput": True,
                                      "tooltip": "The chain(s) behind the images: one for all, or one per image."}),
                "images": ("IMAGE", {"tooltip": "Images to score."}),
            }
        }

    def judge(self, judge, prompt: str, chains: str, images: torch.Tensor):
        if not isinstance(judge, LoadedJudge):
            raise TypeError(f"'judge' must come from GoT-R1 Judge Loader, got {type(judge).__name__}")
        scorer = judge.ready(images)
        count = int(images.shape[0])
        per_image = pair_chains(chains, count)
        rewards = scorer.score([prompt] * count, per_image, None, images, callback=_progress_callback())
        report = {"judge": scorer.name, "formula": rewards.formula.describe(), "prompt": prompt,
                  "best": rewards.best(), "samples": rewards.to_list()}
        found = rewards.detected or [None] * count
        drawn = torch.stack([overlay(images[i], Layout.from_chain(per_image[i]), found[i]) for i in range(count)])
        return (float(max(rewards.total)), json.dumps(report, indent=2, ensure_ascii=False), drawn)


class SelectBest:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "INT")
    RETURN_NAMES = ("image", "index")
    FUNCTION = "select"
    DESCRIPTION = "Best-of-N: the image with the highest total reward in a Reward Judge report."

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images the report scored, in the same order."}),
                "report": ("STRING", {"forceInput": True, "tooltip": "The report of GoT-R1 Reward Judge."}),
            }
        }

    def select(self, images: torch.Tensor, report: str):
        try:
            samples = json.loads(report)["samples"]
            totals = [float(s["total"]) for s in samples]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"'report' is not a GoT-R1 Reward Judge report ({exc})") from None
        if len(totals) != images.shape[0]:
            raise ValueError(f"the report scores {len(totals)} images but {images.shape[0]} are connected")
        index = max(range(len(totals)), key=lambda i: (totals[i], -i))
        return (images[index:index + 1], index)


class BenchmarkScorer:
    CATEGORY = CATEGORY
    RETURN_TYPES = ("FLOAT", "STRING")
    RETURN_NAMES = ("score", "report")
    FUNCTION = "score"
    DESCRIPTION = ("Scores a batch of images of one prompt as `gotr1-train bench` does — to compare sampler settings "
                   "on a few prompts. ShapeWorld: the share the render-back judge (never a reward) calls fully "
                   "correct, the prompt's bench category and how many images differ. A T2I-CompBench category: the "
                   "official score of each image by BLIP-VQA, CLIP or the detector from models/gotr1/bench/, and "
                   "their mean.")
    BENCHMARKS = ("ShapeWorld", *(f"T2I-CompBench {c}" for c in compbench.CATEGORIES))

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Images of the prompt (e.g. the Generator's batch)."}),
                "prompt": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": "The prompt the images were drawn from."}),
            },
            "optional": {
                "benchmark": (list(cls.BENCHMARKS), {
                    "default": "ShapeWorld",
                    "tooltip": "ShapeWorld (built in) or a T2I-CompBench category; those read their scorer models "
                               "from models/gotr1/bench/ (" + ", ".join(SCORERS[k].folder for k in
                                                                        ("vqa", "clip", "detector")) + ")."}),
            },
        }

    def score(self, images: torch.Tensor, prompt: str, benchmark: str = "ShapeWorld"):
        if benchmark not in self.BENCHMARKS:
            raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(self.BENCHMARKS)}")
        distinct = len({np.asarray(to_pil(image)).tobytes() for image in images})
        if benchmark == "ShapeWorld":
            score, report = self._shapeworld(images, prompt)
        else:
            score, report = self._compbench(images, prompt, benchmark.removeprefix("T2I-CompBench "))
        report.update({"benchmark": benchmark, "prompt": prompt, "score": score, "distinct_images": distinct})
        return (score, json.dumps(report, indent=2, ensure_ascii=False))

    @staticmethod
    def _shapeworld(images, prompt: str) -> tuple[float, dict]:
        from gotr1_core.shapeworld.renderback import check_image
        from gotr1_core.shapeworld.world import bench_category, parse_prompt

        spec = parse_prompt(prompt)  # says what is wrong with a prompt the world cannot read
        verdicts = [check_image(spec, to_pil(image)) for image in images]
        return float(np.mean([v.correct for v in verdicts])), {
            "category": bench_category(spec) or "single object",
            "images": [{"index": i, "correct": v.correct, "why": v.problems} for i, v in enumerate(verdicts)]}

    @staticmethod
    def _compbench(images, prompt: str, category: str) -> tuple[float, dict]:
        """The official score of each image. A complex prompt is weighed as the spatial list's when it names a
        relation, else as the action list's (the official lists say which; a single prompt has no list)."""
        if not prompt.strip():
            raise ValueError("the prompt is empty: give the prompt the images were drawn from")
        handles = {key: _cached(_bench_folder(key), (), lambda folder, device, key=key: load_scorer(
            key, folder, device)) for key in compbench.NEEDS[category]}
        scorers = compbench.Scorers(**{key: handle.ready() for key, handle in handles.items()})
        relation = phrases.relation_objects(prompt, phrases.COMPLEX_RELATIONS)[0]
        key = compbench.complex_key(prompt)
        lists = {"spatial": {key} if relation else set(), "action": set() if relation else {key}}
        rows = []
        for index, image in enumerate(images):
            services.check_interrupted()
            rows.append({"index": index, **compbench.score_image(category, to_pil(image), prompt, scorers, lists)})
        return float(np.mean([row["score"] for row in rows])), {"category": category, "images": rows}


def _bench_folder(key: str) -> Path:
    name = f"bench/{SCORERS[key].folder}"
    try:
        return services.resolve_model_dir(name)
    except FileNotFoundError:
        raise FileNotFoundError(f"the Benchmark Scorer needs {SCORERS[key].folder} in models/gotr1/bench/ (a "
                                "transformers folder with safetensors weights: docs/benchmarks.md says which "
                                "checkpoint and how to get it)") from None


NODE_CLASS_MAPPINGS = {
    "GoTR1JudgeLoader": JudgeLoader,
    "GoTR1RewardJudge": RewardJudge,
    "GoTR1SelectBest": SelectBest,
    "GoTR1BenchmarkScorer": BenchmarkScorer,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GoTR1JudgeLoader": "GoT-R1 Judge Loader",
    "GoTR1RewardJudge": "GoT-R1 Reward Judge",
    "GoTR1SelectBest": "GoT-R1 Select Best",
    "GoTR1BenchmarkScorer": "GoT-R1 Benchmark Scorer",
}
