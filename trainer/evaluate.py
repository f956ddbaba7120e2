"""``gotr1-train eval``: judge a model on a split or a prompt file.

One sample per prompt with the model's own generation defaults (``gotr1.json``),
scored by the configured judge. Reports the share of fully correct images
(where the judge can tell), the mean of each reward, and for ShapeWorld
prompts how often the chain parses cleanly and names exactly the prompt's
objects. With ``plans``, the model is given plans a person could write
instead (:data:`PLAN_KINDS`) and judged on following them. The same function
evaluates SFT and GRPO runs, so their figures compare.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.layout import ObjectBox
from gotr1_core.model.quantize import QUANTIZED_MODES
from gotr1_core.reasoning import ChainObject, ParsedChain, format_chain, parse_chain
from gotr1_core.rewards import judge_problem, load_judge
from gotr1_core.shapeworld import ShapeWorldPromptError, layout_for, parse_prompt
from gotr1_core.shapeworld.plans import edit_layout, free_boxes, model_wording, prose_chain

from .config import positive
from .prompts import load_prompts, source_problem

REWARDS = ("total", "r_sem", "r_spa", "r_ri", "r_pi")
EVAL_SEED_OFFSET = 101
"""Evaluation scenes are drawn with ``seed + EVAL_SEED_OFFSET``: apart from a run's training draws, and the
same for ``sft``, ``grpo`` and ``eval`` so their figures are on the same prompts."""


def eval_prompts(source: str, count: int, seed: int) -> list[str]:
    return [r["prompt"] for r in load_prompts(source, count, seed + EVAL_SEED_OFFSET)]


def model_path(name: str) -> Path:
    """A model folder, or the built-in ShapeWorld model for ``builtin``."""
    if name == "builtin":
        from gotr1_core.demo import builtin_model_path

        return builtin_model_path()
    return Path(name)


def model_problem(name: str) -> str | None:
    if name == "builtin" or (Path(name) / "config.json").is_file():
        return None
    return (f"model: {name} is not a model folder (no config.json); use an SFT run's model/ folder, a gotr1 "
            "convert output, or builtin")


def _names_objects(prompt: str, chain) -> bool | None:
    try:
        spec = parse_prompt(prompt)
    except ShapeWorldPromptError:
        return None
    return sorted(o.label for o in chain.objects) == sorted(spec.object_names())


def evaluate(got, judge, prompts: list[str], seed: int = 0, max_batch: int = 64, prefix: str = "",
             cfg: float | None = None, cfg_plausibility: float | None = None, first_index: int = 0,
             samples: int = 1) -> dict:
    """Mean rewards, fully-correct share and chain checks of ``samples`` samples per prompt (``cfg``,
    ``cfg_plausibility``: the model's own guidance settings unless given; ``first_index``: the global row of
    the first prompt, when a process evaluates a share of a set)."""
    result = generate(got, prompts, GenerationConfig(num_samples=samples, seed=seed, max_batch=max_batch,
                                                     cfg_scale=cfg, cfg_plausibility=cfg_plausibility,
                                                     first_index=first_index))
    rewards = judge.score(result.prompts, result.chains, None, result.images)
    metrics = {f"{prefix}{k}": float(np.mean(getattr(rewards, k))) for k in REWARDS}
    if rewards.correct is not None:
        metrics[f"{prefix}correct"] = float(np.mean(rewards.correct))
    metrics[f"{prefix}chains_clean"] = float(np.mean([not parse_chain(c).diagnostics for c in result.chains]))
    named = [_names_objects(p, c) for p, c in zip(result.prompts, result.parsed)]
    if all(n is not None for n in named):
        metrics[f"{prefix}chains_name_objects"] = float(np.mean(named))
    return metrics


# -- plan following --------------------------------------------------------------------------

PLAN_KINDS = ("model", "prose", "free", "edit")
"""What the plan-following evaluation hands the model, chain given:

* ``model`` — the layout of a new scene of the world (edges on its 2 px lattice), in the model's own wording;
* ``prose`` — the same layout with ordinary prose around the tags;
* ``free``  — boxes at arbitrary integer coordinates and sizes, in the model's wording;
* ``edit``  — the model's own plan for the prompt with one box moved or resized to arbitrary coordinates.
"""


def _with_boxes(parsed: ParsedChain, objects: list[ObjectBox]) -> str:
    """``parsed`` (the model's chain) with its boxes, in order, replaced by those of ``objects``."""
    boxes = iter(o.box for o in objects)
    changed = tuple(ChainObject(o.name, tuple(next(boxes) for _ in o.boxes), o.gaps) for o in parsed.objects)
    return format_chain(ParsedChain(parsed.texts, changed, True))


def plans_for(got, prompts: list[str], kind: str, seed: int, max_batch: int) -> list[tuple[str, str]]:
    """(prompt, plan chain) pairs of one kind; prompts whose plan cannot be made this way are left out."""
    if kind not in PLAN_KINDS:
        raise ValueError(f"unknown plan kind {kind!r}; use some of {', '.join(PLAN_KINDS)}")
    specs = [parse_prompt(p) for p in prompts]  # plans are made for ShapeWorld prompts
    rngs = [np.random.default_rng([seed, i, PLAN_KINDS.index(kind)]) for i in range(len(prompts))]
    if kind == "edit":
        own = generate(got, prompts, GenerationConfig(seed=seed, max_batch=max_batch), images=False)
        pairs = []
        for prompt, spec, rng, parsed, layout in zip(prompts, specs, rngs, own.parsed, own.layouts):
            edited = edit_layout(list(layout.objects), spec, rng)
            if edited is not None:
                pairs.append((prompt, _with_boxes(parsed, edited)))
        return pairs
    pairs = []
    for prompt, spec, rng in zip(prompts, specs, rngs):
        if kind == "free":
            pairs.append((prompt, model_wording(free_boxes(spec, rng), spec)))
            continue
        objects = list(layout_for(spec, rng).layout.objects)
        pairs.append((prompt, model_wording(objects, spec) if kind == "model" else prose_chain(objects, spec, rng)))
    return pairs


def evaluate_plans(got, judge, prompts: list[str], kinds=PLAN_KINDS, seed: int = 0, max_batch: int = 64,
                   cfg: float | None = None, cfg_plausibility: float | None = None, samples: int = 1) -> dict:
    """Per plan kind: how often the image drawn from the given plan is fully correct, and mean R_RI
    (how well it follows the plan's boxes), ``samples`` images per plan, the model's own settings."""
    metrics = {}
    for kind in kinds:
        pairs = plans_for(got, prompts, kind, seed, max_batch)
        prompts_k, chains = [p for p, _ in pairs], [c for _, c in pairs]
        result = generate(got, prompts_k, GenerationConfig(num_samples=samples, seed=seed, max_batch=max_batch,
                                                           cfg_scale=cfg, cfg_plausibility=cfg_plausibility),
                          chains=chains)
        rewards = judge.score(result.prompts, result.chains, None, result.images)
        metrics[f"plans/{kind}/correct"] = float(np.mean(rewards.correct))
        metrics[f"plans/{kind}/r_ri"] = float(np.mean(rewards.r_ri))
        metrics[f"plans/{kind}/count"] = len(pairs)
    return metrics


@dataclasses.dataclass
class EvalConfig:
    model: str
    prompts: str = "shapeworld:heldout"
    count: int = 200
    samples: int = 1
    judge: str = "shapeworld"
    seed: int = 0
    max_batch: int = 64
    device: str = "auto"
    output: str | None = None
    plans: list[str] = dataclasses.field(default_factory=list)
    cfg: float | None = None
    cfg_plausibility: float | None = None
    quantize: str | None = None     # fp8 | int8 | int4: the model's decoder layers stored quantized

    def problems(self) -> list[str]:
        found = positive(self, "count", "samples", "max_batch")
        if self.quantize not in (None, *QUANTIZED_MODES):
            found.append(f"quantize: use one of {', '.join(QUANTIZED_MODES)}, got {self.quantize!r}")
        if self.cfg is not None and self.cfg < 0:
            found.append(f"cfg: must be >= 0 (1 turns guidance off), got {self.cfg}")
        if self.cfg_plausibility is not None and not 0 <= self.cfg_plausibility < 1:
            found.append(f"cfg_plausibility: must be in [0, 1) (0 turns it off), got {self.cfg_plausibility}")
        unknown = [k for k in self.plans if k not in PLAN_KINDS]
        if unknown:
            found.append(f"plans: unknown kinds {unknown}; use some of {', '.join(PLAN_KINDS)}")
        if self.plans and self.judge != "shapeworld":
            found.append("plans: plan following is judged by the exact ShapeWorld judge (judge: shapeworld)")
        for problem in (model_problem(self.model), source_problem(self.prompts), judge_problem(self.judge)):
            if problem:
                found.append(problem)
        return found


def run_eval(config: EvalConfig) -> dict:
    """The ``eval`` command: metrics as a dict (printed as JSON), also written to ``output`` if set."""
    from gotr1_core.model.loading import load_model

    got = load_model(model_path(config.model), device=config.device, quantize=config.quantize)
    prompts = eval_prompts(config.prompts, config.count, config.seed)
    judge = load_judge(config.judge, config.device)
    if config.plans:
        metrics = evaluate_plans(got, judge, prompts, config.plans, seed=config.seed, max_batch=config.max_batch,
                                 cfg=config.cfg, cfg_plausibility=config.cfg_plausibility, samples=config.samples)
    else:
        metrics = evaluate(got, judge, prompts, seed=config.seed, max_batch=config.max_batch, cfg=config.cfg,
                           cfg_plausibility=config.cfg_plausibility, samples=config.samples)
    metrics = {"model": config.model, "prompts": config.prompts, "count": len(prompts), "samples": config.samples,
               **metrics}
    if config.output:
        Path(config.output).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
