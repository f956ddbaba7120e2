"""``gotr1-train eval``: judge a model on a split or a prompt file.

``samples`` images per prompt with the model's own generation defaults
(``gotr1.json``). For ShapeWorld prompts two judges read every image: the
exact judge (GRPO's reward: ``correct`` and the four rewards) and the
independent render-back judge (:mod:`gotr1_core.shapeworld.renderback`:
``renderback_correct``, the headline), with 95 % intervals over distinct
scenes (:mod:`trainer.intervals`), how often the judges agree, how often the
chain parses cleanly and names exactly the prompt's objects, and with two or
more samples the diversity of the samples against the world's own sampler
(:mod:`gotr1_core.shapeworld.diversity`). With ``plans``, the model is given
plans a person could write instead (:data:`PLAN_KINDS`) and judged on
following them. The same functions evaluate SFT and GRPO runs, so their
figures compare.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import textwrap
from pathlib import Path

import numpy as np

from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.layout import ObjectBox
from gotr1_core.model.quantize import QUANTIZED_MODES
from gotr1_core.model.spec import IMAGE_DECODING
from gotr1_core.reasoning import ChainObject, ParsedChain, format_chain, parse_chain
from gotr1_core.rewards import judge_problem, load_judge
from gotr1_core.shapeworld import ShapeWorldPromptError, layout_for, parse_prompt
from gotr1_core.shapeworld.diversity import diversity_report, layout_signature
from gotr1_core.shapeworld.plans import edit_layout, free_boxes, prose_chain
from gotr1_core.shapeworld.scenes import model_wording
from gotr1_core.shapeworld.renderback import RenderBackJudge

from .config import positive
from .intervals import bootstrap_interval, per_scene
from .prompts import load_prompts, source_problem

REWARDS = ("total", "r_sem", "r_spa", "r_ri", "r_pi")


def reward_names(rewards) -> tuple[str, ...]:
    """The rewards a batch carries: the four, their total, and R_HPS where a quality model scored it."""
    return REWARDS + (("r_hps",) if rewards.r_hps is not None else ())
def eval_prompts(source: str, count: int) -> list[str]:
    """The prompts of an evaluation source: a ShapeWorld evaluation split's fixed list of distinct scenes (the same
    for ``sft``, ``grpo`` and ``eval`` and every seed, so figures compare), or a file's first ``count``."""
    return [r["prompt"] for r in load_prompts(source, count)]


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


def shapeworld_specs(prompts: list[str]) -> list | None:
    """The scene spec of every prompt, or None when any prompt is not a ShapeWorld prompt."""
    try:
        return [parse_prompt(p) for p in prompts]
    except ShapeWorldPromptError:
        return None


def _generate(got, prompts, seed, max_batch, cfg, cfg_plausibility, first_index=0, samples=1, chains=None,
              image_decoding="sequential"):
    return generate(got, prompts, GenerationConfig(num_samples=samples, seed=seed, max_batch=max_batch,
                                                   cfg_scale=cfg, cfg_plausibility=cfg_plausibility,
                                                   first_index=first_index, image_decoding=image_decoding),
                    chains=chains)


def judged_metrics(result, rewards, renderback: list[bool] | None, prefix: str = "") -> dict:
    """Means over samples: the judge's rewards and verdict (``correct``: the exact judge, GRPO's reward, for
    ShapeWorld), the independent render-back judge's verdict (``renderback_correct``) and chain checks."""
    metrics = {f"{prefix}{k}": float(np.mean(getattr(rewards, k))) for k in reward_names(rewards)}
    if rewards.correct is not None:
        metrics[f"{prefix}correct"] = float(np.mean(rewards.correct))
    if renderback is not None:
        metrics[f"{prefix}renderback_correct"] = float(np.mean(renderback))
    metrics[f"{prefix}chains_clean"] = float(np.mean([not parse_chain(c).diagnostics for c in result.chains]))
    named = [_names_objects(p, c) for p, c in zip(result.prompts, result.parsed)]
    if all(n is not None for n in named):
        metrics[f"{prefix}chains_name_objects"] = float(np.mean(named))
    return metrics


def scene_figures(result, rewards, renderback: list[bool] | None, samples: int, diversity: bool = True) -> dict:
    """What only a whole evaluation set can give: intervals of the verdicts over distinct scenes (each scene's
    mean over its samples is one observation), how often the two judges agree, and with two or more samples per
    prompt the diversity figures against the world's sampler (:mod:`gotr1_core.shapeworld.diversity`)."""
    figures = {"scenes": len(result.prompts) // samples}
    verdicts = {"correct": rewards.correct, "renderback_correct": renderback}
    for name, values in verdicts.items():
        if values is not None:
            low, high = bootstrap_interval(per_scene(values, samples))
            figures[f"{name}_ci"] = [low, high]
    if rewards.correct is not None and renderback is not None:
        exact, back = np.asarray(rewards.correct, dtype=bool), np.asarray(renderback, dtype=bool)
        figures["judges_agree"] = float(np.mean(exact == back))
        figures["only_exact_correct"] = float(np.mean(exact & ~back))      # the disagreements, by direction
        figures["only_renderback_correct"] = float(np.mean(~exact & back))
    specs = shapeworld_specs(result.prompts[::samples])
    if diversity and samples >= 2 and specs is not None:
        layouts, images = result.layouts, list(result.images)
        groups = [slice(i * samples, (i + 1) * samples) for i in range(len(specs))]
        report = diversity_report(specs, [layouts[g] for g in groups], [images[g] for g in groups])
        figures.update({f"diversity/{k}": v for k, v in report.items()})
    return figures


def per_scene_rows(result, rewards, renderback: list[bool] | None, samples: int) -> list[dict]:
    """One row per prompt (in the JSON output, not the printed table): its verdicts' shares over its samples,
    its distinct plans and images, so figures can be cut by scene afterwards (e.g. scenes a model saw in training)."""
    rows, layouts = [], result.layouts
    for i, prompt in enumerate(result.prompts[::samples]):
        group = slice(i * samples, (i + 1) * samples)
        row = {"prompt": prompt}
        if rewards.correct is not None:
            row["correct"] = float(np.mean(rewards.correct[group]))
        if renderback is not None:  # ShapeWorld prompts: plans compared as the world draws them
            row["renderback_correct"] = float(np.mean(renderback[group]))
            row["distinct_layouts"] = len({layout_signature(x) for x in layouts[group]})
        row["distinct_images"] = len({np.ascontiguousarray(np.asarray(x)).tobytes() for x in result.images[group]})
        rows.append(row)
    return rows


def evaluate(got, judge, prompts: list[str], seed: int = 0, max_batch: int = 64, prefix: str = "",
             cfg: float | None = None, cfg_plausibility: float | None = None, first_index: int = 0,
             samples: int = 1) -> dict:
    """Mean rewards, fully-correct shares (the judge's and, for ShapeWorld prompts, the render-back judge's) and
    chain checks of ``samples`` samples per prompt (``cfg``, ``cfg_plausibility``: the model's own guidance
    settings unless given; ``first_index``: the global row of the first prompt, when a process evaluates a share
    of a set). Means only, so shares from several processes combine; :func:`run_eval` adds intervals and
    diversity."""
    result = _generate(got, prompts, seed, max_batch, cfg, cfg_plausibility, first_index, samples)
    rewards = judge.score(result.prompts, result.chains, None, result.images)
    return judged_metrics(result, rewards, renderback_correct(renderback_verdicts(result)), prefix)


def renderback_verdicts(result) -> list | None:
    """The render-back judge's verdict per image, or None when the prompts are not ShapeWorld prompts."""
    if shapeworld_specs(list(dict.fromkeys(result.prompts))) is None:
        return None
    return RenderBackJudge().verdicts(result.prompts, result.images)


def renderback_correct(verdicts: list | None) -> list[bool] | None:
    return None if verdicts is None else [v.correct for v in verdicts]


# -- plan following --------------------------------------------------------------------------

PLAN_KINDS = ("model", "prose", "free", "edit")
"""What the plan-following evaluation hands the model, chain given:

* ``model`` — the layout of a new scene of the world (edges on its 2 px lattice), in the model's own wording;
* ``prose`` — the same layout with ordinary prose around the tags;
* ``free``  — boxes at arbitrary integer coordinates and sizes, in the model's wording;
* ``edit``  — the model's own plan for the prompt with one box moved or resized to arbitrary coordinates.
"""


PLAN_FIGURES = ("correct", "correct_ci", "renderback_correct", "renderback_correct_ci", "r_ri")


def _with_boxes(parsed: ParsedChain, objects: list[ObjectBox]) -> str:
    """``parsed`` (the model's chain) with its boxes, in order, replaced by those of ``objects``."""
    boxes = iter(o.box for o in objects)
    changed = tuple(ChainObject(o.name, tuple(next(boxes) for _ in o.boxes), o.gaps) for o in parsed.objects)
    return format_chain(ParsedChain(parsed.texts, changed, True))


def plans_for(got, prompts: list[str], kind: str, seed: int, max_batch: int) -> list[tuple[str, str]]:
    """(prompt, plan chain) pairs of one kind, drawn from ``seed`` (the plan seed); prompts whose plan cannot be made
    this way are left out."""
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
                   cfg: float | None = None, cfg_plausibility: float | None = None, samples: int = 1,
                   plan_seed: int = 0, image_decoding: str = "sequential") -> dict:
    """Per plan kind: how often the image drawn from the given plan is fully correct (both judges, with intervals
    over plans) and mean R_RI (how well it follows the plan's boxes), ``samples`` images per plan drawn from
    ``seed``, plans drawn from ``plan_seed``, the model's own settings."""
    metrics = {}
    for kind in kinds:
        pairs = plans_for(got, prompts, kind, plan_seed, max_batch)
        metrics[f"plans/{kind}/count"] = len(pairs)
        if not pairs:  # e.g. ``edit`` of a model whose own plans name no box to move: nothing to judge
            metrics.update({f"plans/{kind}/{key}": None for key in PLAN_FIGURES})
            continue
        result = _generate(got, [p for p, _ in pairs], seed, max_batch, cfg, cfg_plausibility, samples=samples,
                           chains=[c for _, c in pairs], image_decoding=image_decoding)
        rewards = judge.score(result.prompts, result.chains, None, result.images)
        renderback = renderback_correct(renderback_verdicts(result))
        figures = {**judged_metrics(result, rewards, renderback),
                   **scene_figures(result, rewards, renderback, samples, diversity=False)}
        metrics.update({f"plans/{kind}/{key}": figures[key] for key in PLAN_FIGURES})
    return metrics


def disagreement_sheet(result, rewards, verdicts, limit: int = 24, columns: int = 6):
    """A PNG sheet of images where the exact judge and the render-back judge disagree — one per prompt and
    direction, the two directions alternating — each enlarged with its prompt, both verdicts and the render-back
    judge's first problem. None when they always agree."""
    from PIL import Image, ImageDraw, ImageFont

    from gotr1_core.images import to_uint8

    first: dict[tuple[str, bool], int] = {}  # one image per prompt and direction of disagreement
    for i, verdict in enumerate(verdicts):
        if bool(rewards.correct[i]) != verdict.correct:
            first.setdefault((result.prompts[i], verdict.correct), i)
    by_direction = [[i for (_, ok), i in first.items() if ok == direction] for direction in (False, True)]
    rows = [i for pair in itertools.zip_longest(*by_direction) for i in pair if i is not None][:limit]
    if not rows:
        return None
    tile, text_height = 192, 92
    font = ImageFont.load_default(size=12)
    sheet = Image.new("RGB", (columns * (tile + 8) + 8, -(-len(rows) // columns) * (tile + text_height) + 8), "white")
    draw = ImageDraw.Draw(sheet)
    for k, i in enumerate(rows):
        x, y = 8 + (k % columns) * (tile + 8), 8 + (k // columns) * (tile + text_height)
        sheet.paste(Image.fromarray(to_uint8(result.images[i])).resize((tile, tile), Image.NEAREST), (x, y))
        verdict = verdicts[i]
        why = verdict.problems[0] if verdict.problems else ""
        lines = textwrap.wrap(result.prompts[i], 30)[:2] + [
            f"exact {'correct' if rewards.correct[i] else 'wrong'}, render-back "
            f"{'correct' if verdict.correct else 'wrong'}", *textwrap.wrap(why, 34)[:3]]
        draw.multiline_text((x, y + tile + 2), "\n".join(lines), fill=(0, 0, 0), font=font, spacing=1)
    return sheet


@dataclasses.dataclass
class EvalConfig:
    model: str
    prompts: str = "shapeworld:heldout"
    count: int = 300
    samples: int = 8
    judge: str = "shapeworld"
    sample_seed: int = 0            # the images (and the model's own plans) drawn: never which scenes
    plan_seed: int = 0              # the plans handed over with ``plans``
    max_batch: int = 64
    device: str = "auto"
    output: str | None = None
    disagreements: str | None = None   # a PNG of images the two judges disagree on
    plans: list[str] = dataclasses.field(default_factory=list)
    cfg: float | None = None
    cfg_plausibility: float | None = None
    quantize: str | None = None     # fp8 | int8 | int4: the model's decoder layers stored quantized
    image_decoding: str = "sequential"  # or jacobi: the image tokens by speculative Jacobi decoding

    def problems(self) -> list[str]:
        found = positive(self, "count", "samples", "max_batch")
        if self.quantize not in (None, *QUANTIZED_MODES):
            found.append(f"quantize: use one of {', '.join(QUANTIZED_MODES)}, got {self.quantize!r}")
        if self.image_decoding not in IMAGE_DECODING:
            found.append(f"image_decoding: use {' or '.join(IMAGE_DECODING)}, got {self.image_decoding!r}")
        if self.cfg is not None and self.cfg < 0:
            found.append(f"cfg: must be >= 0 (1 turns guidance off), got {self.cfg}")
        if self.cfg_plausibility is not None and not 0 <= self.cfg_plausibility < 1:
            found.append(f"cfg_plausibility: must be in [0, 1) (0 turns it off), got {self.cfg_plausibility}")
        unknown = [k for k in self.plans if k not in PLAN_KINDS]
        if unknown:
            found.append(f"plans: unknown kinds {unknown}; use some of {', '.join(PLAN_KINDS)}")
        if self.plans and self.judge != "shapeworld":
            found.append("plans: plan following is judged by the exact ShapeWorld judge (judge: shapeworld)")
        if self.disagreements and self.plans:
            found.append("disagreements: drawn for the model's own plans; leave out plans")
        for problem in (model_problem(self.model), source_problem(self.prompts), judge_problem(self.judge)):
            if problem:
                found.append(problem)
        return found


def run_eval(config: EvalConfig) -> dict:
    """The ``eval`` command: metrics as a dict (printed), also written as JSON to ``output`` if set.

    The prompts of a ShapeWorld evaluation split are its fixed list of distinct
    scenes; the seeds change what is drawn for them, never which they are.
    """
    from gotr1_core.model.loading import load_model

    got = load_model(model_path(config.model), device=config.device, quantize=config.quantize)
    prompts = eval_prompts(config.prompts, config.count)
    judge = load_judge(config.judge, config.device)
    if config.plans:
        metrics = evaluate_plans(got, judge, prompts, config.plans, seed=config.sample_seed,
                                 max_batch=config.max_batch, cfg=config.cfg, cfg_plausibility=config.cfg_plausibility,
                                 samples=config.samples, plan_seed=config.plan_seed,
                                 image_decoding=config.image_decoding)
    else:
        result = _generate(got, prompts, config.sample_seed, config.max_batch, config.cfg, config.cfg_plausibility,
                           samples=config.samples, image_decoding=config.image_decoding)
        rewards = judge.score(result.prompts, result.chains, None, result.images)
        verdicts = renderback_verdicts(result)
        renderback = renderback_correct(verdicts)
        metrics = {**judged_metrics(result, rewards, renderback),
                   **scene_figures(result, rewards, renderback, config.samples),
                   "per_scene": per_scene_rows(result, rewards, renderback, config.samples)}
        if config.disagreements and verdicts is not None and rewards.correct is not None:
            sheet = disagreement_sheet(result, rewards, verdicts)
            if sheet is not None:
                sheet.save(config.disagreements)
    metrics = {"model": config.model, "prompts": config.prompts, "count": len(prompts), "samples": config.samples,
               "sample_seed": config.sample_seed, **metrics}
    if config.output:  # whole or not at all: a script that skips finished evaluations trusts the file it finds
        partial = Path(f"{config.output}.partial")
        partial.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, config.output)
    return metrics


def saved_eval(config: EvalConfig) -> dict:
    """The evaluation saved at ``config.output``, run (and saved whole) first when the file is not there: how a
    script that resumes reads a finished evaluation instead of judging the model again."""
    if not Path(config.output).is_file():
        run_eval(config)
    return json.loads(Path(config.output).read_text(encoding="utf-8"))
