"""``gotr1-train grpo``: GoT-R1's reinforcement-learning stage.

One step, top to bottom (:func:`train_grpo`):

1. **Rollout.** Take the step's prompts (a fixed function of seed and step, so
   a resumed run sees the same ones) and sample a group of ``group_size``
   chains + images per prompt with :func:`gotr1_core.generation.generate` —
   the same batched, KV-cached code the nodes use, without top-k/top-p so the
   sampled distribution is the one the loss differentiates. With
   ``plan_prompts_per_step`` more prompts come with a plan a person could
   write (:func:`step_plans`): the model draws a group of images from it and
   only those image tokens train — rewarded, through R_RI, for following a
   plan that is not its own. With several processes each takes its own whole
   groups of the step (:func:`rank_share`); the loss is normalised over all of
   them and gradients reduced once. With ``dynamic_sampling_rounds`` groups
   whose samples all scored alike are drawn again for fresh prompts
   (:func:`refill`).
2. **Reward.** Decode the images and score each sample with the judge (and the
   quality model, where given); ``reward_formula`` combines them, by default
   ``total = r_pi * (r_sem + r_spa) * r_ri``.
3. **Advantage.** Normalise totals within each prompt's group
   (:func:`trainer.grpo_math.group_advantages`).
4. **Update.** ``ppo_epochs`` optimiser steps on the rollout batch, each
   accumulated over micro-batches: per-token log-probs of the sampled reasoning
   and image tokens (teacher-forced, CFG-combined and floored exactly as
   sampled), the clipped importance ratio against the rollout policy (with
   DAPO's clip-higher if asked), a k3 KL to the frozen reference and an
   optional entropy bonus, each token weighted by the step's loss
   normalisation (:func:`trainer.grpo_math.grpo_loss`).
5. **Keep.** Log scalars — rewards, loss, KL, and the policy's per-token
   entropy (chain and image apart) and distinct plans per group
   (:func:`rollout_variety`), which show entropy collapse while it happens —
   write a sample sheet now and then, checkpoint atomically every
   ``save_every`` steps.

At the end the policy (LoRA merged) is exported as an HF-format folder the
Model Loader node and ``gotr1 generate`` load, with a model card.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import resource
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from gotr1_core.generation import GenerationConfig, GenerationResult, generate
from gotr1_core.logprobs import sequence_logprobs
from gotr1_core.model.loading import GotModel, NotLoaded, load_model, save_model, within
from gotr1_core.model.quantize import QUANTIZED_MODES
from gotr1_core.model.spec import IMAGE_DECODING
from gotr1_core.rewards import RewardFormula, hps_problem, judge_problem, load_judge, reward_settings_problem
from gotr1_core.shapeworld import parse_prompt
from gotr1_core.shapeworld.plans import person_plan
from gotr1_core.shapeworld.scenes import EVALUATION_SPLITS

from .checkpoint import (find_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
                         step_checkpoint)
from .config import load_config, positive, save_config
from .evaluate import eval_prompts, evaluate, model_path, model_problem, reward_names, shapeworld_specs
from .grpo_math import LOSS_NORMALISATIONS, group_advantages, grpo_loss, token_mask, token_weights
from .metrics import MetricsLog
from .prompts import batch_for_step, source_problem, training_records
from .sharding import (full_optimizer_state, full_parameters, full_state_dict, load_full_optimizer_state,
                       partitioned_optimizer, sharding_kind)

LANGUAGE_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclasses.dataclass
class GRPOConfig:
    output_dir: str
    model: str                                # HF-format folder (an SFT run's model/, gotr1 convert output) or builtin
    judge: str = "shapeworld"                 # or a local Qwen2.5-VL folder, or http://HOST:PORT/v1 (served)
    quality_model: str | None = None          # a CLIP folder (HPS v2.1 via `gotr1 convert-hps`): adds R_HPS
    reward_formula: str = "v1"                # v1 | v2 (needs quality_model) | custom (reward_expression)
    reward_expression: str | None = None      # custom: e.g. "r_pi * (r_sem + r_spa) * r_ri + 0.5 * r_hps"
    judge_questions: str = "pack"             # pack | paper: the wording an MLLM judge is asked in
    prompts: str = "shapeworld:train"         # shapeworld:<split>, prompts.txt or prompts.jsonl
    prompt_count: int = 20000
    seed: int = 0
    steps: int = 200
    prompts_per_step: int = 8
    plan_prompts_per_step: int = 0            # more prompts that come with a person's plan (ShapeWorld prompts)
    group_size: int = 8
    ppo_epochs: int = 1
    micro_batch: int = 16
    lr: float = 1e-5
    lr_schedule: str = "constant"             # constant | cosine (both after linear warmup)
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    clip_eps: float = 0.2
    clip_eps_high: float | None = None        # upper clip (DAPO's clip-higher, e.g. 0.28); None: clip_eps
    beta: float = 0.01                        # KL weight; 0 skips the reference model entirely
    entropy_coef: float = 0.0                 # entropy bonus: - coef * H of each trained token's distribution
    loss_normalisation: str = "token"         # token: every token weighs the same | sample: mean of sample means
    entropy_warn_fraction: float = 0.5        # warn when a stage's entropy falls below this share of its first
    zero_advantage_warn: float = 0.5          # warn when more than this share of groups has zero advantage
    dynamic_sampling_rounds: int = 0          # DAPO's dynamic sampling: up to this many rounds of fresh prompts
                                              # replace groups whose samples all scored alike; 0: off
    stages: str = "both"                      # both | reason | image: which tokens the objective trains
    cfg_scale: float | None = None            # None: the model's gotr1.json defaults
    text_temperature: float | None = None
    image_temperature: float | None = None
    max_reason_tokens: int | None = None
    rollout_batch: int = 64
    image_decoding: str = "sequential"        # or jacobi: rollout image tokens by speculative Jacobi decoding
    mixed_precision: str = "no"               # no | bf16 | fp16
    gradient_checkpointing: bool = False
    ref_device: str = "same"                  # same | cpu (offload the reference)
    reference_weights: str = "full"           # full | fp8 | int8 | int4: how the frozen reference is stored
    lora_rank: int = 0                        # 0: train all language-model weights
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: list[str] = dataclasses.field(default_factory=lambda: list(LANGUAGE_TARGETS))
    eval_prompts: list[str] = dataclasses.field(
        default_factory=lambda: [f"shapeworld:{split}" for split in EVALUATION_SPLITS])
    eval_count: int = 200
    eval_every: int = 0                       # 0: evaluate at the end only
    save_every: int = 25
    keep_last: int = 2
    log_every: int = 1
    sample_every: int = 25                    # 0: no sample sheets
    device: str = "auto"

    def problems(self) -> list[str]:
        found = positive(self, "prompt_count", "steps", "prompts_per_step", "group_size", "ppo_epochs",
                         "micro_batch", "lr", "rollout_batch", "eval_count", "save_every", "log_every")
        if self.group_size < 2:
            found.append(f"group_size: GRPO compares samples within a group; needs >= 2, got {self.group_size}")
        if self.loss_normalisation not in LOSS_NORMALISATIONS:
            found.append(f"loss_normalisation: use {' or '.join(LOSS_NORMALISATIONS)}, got {self.loss_normalisation!r}")
        if self.image_decoding not in IMAGE_DECODING:
            found.append(f"image_decoding: use {' or '.join(IMAGE_DECODING)}, got {self.image_decoding!r}")
        if self.clip_eps_high is not None and self.clip_eps_high < self.clip_eps:
            found.append(f"clip_eps_high: must be >= clip_eps ({self.clip_eps}) or left out, got {self.clip_eps_high}")
        if not 0 <= self.entropy_warn_fraction <= 1 or not 0 <= self.zero_advantage_warn <= 1:
            found.append("entropy_warn_fraction, zero_advantage_warn: shares in [0, 1]")
        if self.lr_schedule not in ("constant", "cosine"):
            found.append(f"lr_schedule: use constant or cosine, got {self.lr_schedule!r}")
        if self.stages not in ("both", "reason", "image"):
            found.append(f"stages: use both, reason or image, got {self.stages!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            found.append(f"mixed_precision: use no, bf16 or fp16, got {self.mixed_precision!r}")
        if self.ref_device not in ("same", "cpu"):
            found.append(f"ref_device: use same or cpu, got {self.ref_device!r}")
        if self.reference_weights not in ("full", *QUANTIZED_MODES):
            found.append(f"reference_weights: use full, {', '.join(QUANTIZED_MODES)}; got {self.reference_weights!r}")
        elif self.reference_weights != "full" and self.lora_rank:
            found.append("reference_weights: a LoRA run's reference is its own base weights (adapters off), "
                         "not a copy; leave it at full")
        if self.plan_prompts_per_step and not all(part.startswith("shapeworld:") for part in self.prompts.split("+")):
            found.append("plan_prompts_per_step: plans are written for ShapeWorld prompts; use shapeworld:<split> "
                         f"prompts or set it to 0 (prompts: {self.prompts!r})")
        for name in ("clip_eps", "beta", "entropy_coef", "plan_prompts_per_step", "warmup_steps", "weight_decay",
                     "grad_clip", "lora_rank", "eval_every", "sample_every", "lora_dropout",
                     "dynamic_sampling_rounds"):
            if getattr(self, name) < 0:
                found.append(f"{name}: must be >= 0, got {getattr(self, name)}")
        if self.lora_rank and not self.lora_targets:
            found.append("lora_targets: name at least one module when lora_rank > 0")
        for name in ("cfg_scale", "text_temperature", "image_temperature"):
            if (value := getattr(self, name)) is not None and value < 0:
                found.append(f"{name}: must be >= 0, got {value}")
        for problem in [model_problem(self.model), judge_problem(self.judge), source_problem(self.prompts),
                        *(source_problem(p) for p in self.eval_prompts), self.reward_problem()]:
            if problem:
                found.append(problem)
        return found

    def reward_problem(self) -> str | None:
        """Why the reward settings (formula, quality model, questions) cannot work together, or None."""
        try:
            formula = self.formula()
        except ValueError as exc:
            return str(exc)
        if self.quality_model and (problem := hps_problem(self.quality_model, complete=False)):
            return f"quality_model: {problem}"
        return reward_settings_problem(self.judge == "shapeworld", bool(self.quality_model), formula,
                                       self.judge_questions,
                                       "set quality_model to an HPS v2.1 folder (`gotr1 convert-hps`)")

    def formula(self) -> RewardFormula:
        return RewardFormula.of(self.reward_formula, self.reward_expression)

    def generation(self, step: int) -> GenerationConfig:
        """Rollout sampling for ``step``: seeds depend on (seed, step) only, never top-k/top-p."""
        return GenerationConfig(num_samples=self.group_size, seed=(self.seed * 1_000_003 + step) * 4096,
                                cfg_scale=self.cfg_scale, text_temperature=self.text_temperature,
                                image_temperature=self.image_temperature, max_reason_tokens=self.max_reason_tokens,
                                max_batch=self.rollout_batch, image_decoding=self.image_decoding)


# -- the policy ----------------------------------------------------------------------------

def trainable_modules(model) -> list[torch.nn.Module]:
    """What RL updates: the language model and both output heads, plus the image-token input path.

    The VQ (fixed image vocabulary) and the understanding tower (unused by
    generation) stay frozen.
    """
    inner = model.model
    return [inner.language_model, model.lm_head, inner.generation_embeddings, inner.generation_aligner,
            inner.generation_head]


FROZEN_DTYPES = {"no": "fp32", "bf16": "bf16", "fp16": "fp16"}
"""The dtype of weights that do not train, by ``mixed_precision``: a frozen copy needs no float32 master."""


def load_policy(config: GRPOConfig, device: torch.device | str) -> GotModel:
    """The starting model with its trainable part unfrozen: in float32 (the master weights mixed precision
    computes from); under LoRA the frozen base in the mixed-precision dtype and the adapters in float32."""
    frozen = FROZEN_DTYPES[config.mixed_precision] if config.lora_rank else "fp32"
    got = load_model(model_path(config.model), device=device, dtype=frozen)
    model = got.model
    if config.lora_rank:
        from peft import LoraConfig, inject_adapter_in_model

        lora = LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.lora_targets))
        try:
            inject_adapter_in_model(lora, model.model.language_model)
        except ValueError as exc:
            raise ValueError(f"lora_targets {config.lora_targets} match no layer of the language model: {exc}") \
                from None
        model.to(got.device)
        for name, param in model.named_parameters():
            param.requires_grad_("lora_" in name)
            if "lora_" in name:
                param.data = param.data.float()
    else:
        for module in trainable_modules(model):
            module.requires_grad_(True)
    if config.gradient_checkpointing:
        model.model.language_model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return got


def frozen_reference(config: GRPOConfig, device) -> GotModel:
    """The KL term's reference: the starting weights, frozen, read again from the model folder in the
    mixed-precision dtype (half a float32 copy's memory under bf16), or with its decoder layers quantized
    (``reference_weights``: a quarter to an eighth, at the price of a reference a little off the starting
    policy)."""
    quantize = None if config.reference_weights == "full" else config.reference_weights
    return load_model(model_path(config.model), device=device, dtype=FROZEN_DTYPES[config.mixed_precision],
                      quantize=quantize)


def planned_weight_bytes(config: GRPOConfig, model_config, device: str = "cuda") -> dict[str, int]:
    """Bytes of the policy (LoRA adapters included) and of the frozen reference as :func:`load_policy` and
    :func:`frozen_reference` hold them, from the model's config alone — the numbers of the memory plan in
    docs/training.md. (Optimizer moments and gradients come on top: 8 and 4 bytes per trained parameter.)"""
    from gotr1_core.memory import weight_bytes

    frozen = FROZEN_DTYPES[config.mixed_precision]
    trained = trained_parameter_count(model_config, config)
    if config.lora_rank:  # the base frozen, the adapters in float32; the reference is the base (adapters off)
        return {"policy": weight_bytes(model_config, frozen, device) + 4 * trained, "reference": 0,
                "trained_parameters": trained}
    reference = 0
    if config.beta:
        mode = frozen if config.reference_weights == "full" else config.reference_weights
        reference = weight_bytes(model_config, mode, device, compute=frozen)
    return {"policy": weight_bytes(model_config, "fp32", device), "reference": reference,
            "trained_parameters": trained}


def trained_parameter_count(model_config, config: GRPOConfig) -> int:
    """Parameters the optimizer updates: the LoRA adapters' (``rank * (in + out)`` per targeted linear layer of
    the language model), or those of :func:`trainable_modules`."""
    from gotr1_core.model.loading import build_skeleton

    skeleton = build_skeleton(model_config)
    if config.lora_rank:
        return sum(config.lora_rank * (m.in_features + m.out_features)
                   for name, m in skeleton.model.language_model.named_modules()
                   if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1] in config.lora_targets)
    seen = {id(p): p for module in trainable_modules(skeleton) for p in module.parameters()}
    return sum(p.numel() for p in seen.values())


def optimizer_checkpoint(policy, optimizer, partitioned: str | None) -> dict:
    """The optimizer state a checkpoint holds: as torch keeps it (one process, DDP: every process has all of
    it), gathered whole by parameter name under FSDP, none under DeepSpeed.

    Under FSDP each process holds the moments of its shards: they are gathered
    (:func:`trainer.sharding.full_optimizer_state`) and put back into the new
    shards on resume. DeepSpeed keeps them in its own engine, outside what
    torch's state-dict functions read: such a checkpoint holds whole weights
    and no moments, and resuming it is refused with a way forward.
    """
    if partitioned is None:
        return {"optimizer": optimizer.state_dict()}
    if partitioned == "FSDP":
        return {"optimizer": full_optimizer_state(policy, optimizer), "optimizer_gathered": True}
    return {"optimizer": None}


def _lora_layers(model):
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextlib.contextmanager
def adapters_disabled(model):
    """The base model under LoRA: the reference policy without a second copy in memory."""
    layers = _lora_layers(model)
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)
            for name, param in layer.named_parameters():  # enable_adapters may re-freeze: keep adapters trainable
                if "lora_" in name:
                    param.requires_grad_(True)


def merge_lora(model) -> None:
    """Fold every LoRA adapter into its base weight and put the plain layer back."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, module.get_base_layer())


def policy_weights(policy: torch.nn.Module, got: GotModel) -> dict[str, torch.Tensor]:
    """The policy's weights under its own names, whole even when training shards them (every process must
    call this together then: gathering is collective)."""
    if sharding_kind(policy) == "none":
        return got.model.state_dict()
    names = set(got.model.state_dict())
    state = {}
    for key, value in full_state_dict(policy).items():
        while key not in names and "." in key:  # drop the wrappers' prefixes (module., model.)
            key = key.split(".", 1)[1]
        state[key] = value
    return state


def checkpoint_tensors(state: dict[str, torch.Tensor], lora: bool) -> dict[str, torch.Tensor]:
    """What a checkpoint stores of the policy: the adapters under LoRA, else the full weights."""
    return {k: v for k, v in state.items() if "lora_" in k} if lora else state


def restore_tensors(model, tensors: dict[str, torch.Tensor], lora: bool) -> None:
    left_out = tuple(name for name, m in model.named_modules() if isinstance(m, NotLoaded))
    tensors = {k: v for k, v in tensors.items() if not within(k, left_out)}  # older checkpoints hold them
    missing, unexpected = model.load_state_dict(tensors, strict=not lora)
    expected = {k for k in model.state_dict() if "lora_" in k} if lora else set()
    if unexpected or (lora and expected - set(tensors)):
        raise ValueError(f"checkpoint does not match the run's model: unexpected {sorted(unexpected)[:5]}, "
                         f"missing {sorted(expected - set(tensors))[:5]}; was the config changed?")


class PolicyLogprobs(torch.nn.Module):
    """The forward the optimiser differentiates, as one module so accelerate/DDP/DeepSpeed can wrap it."""

    def __init__(self, got: GotModel):
        super().__init__()
        self.model = got.model
        self._got = got

    def forward(self, result: GenerationResult, entropy: bool = False) -> tuple[torch.Tensor, ...]:
        return sequence_logprobs(self._got, result, entropy=entropy)


# -- one step's pieces --------------------------------------------------------------------

def rollout(got: GotModel, judge, prompts: list[str], generation: GenerationConfig,
            chains: list[str] | None = None, streams: list[int] | None = None):
    """Sample the groups (images from ``chains`` where given; rows on ``streams`` where given), decode and judge
    them; tensors made trainable-safe (not inference tensors)."""
    got.model.eval()
    result = generate(got, prompts, generation, chains=chains, streams=streams)
    for name in ("reason_ids", "reason_mask", "image_ids"):
        setattr(result, name, getattr(result, name).clone())
    rewards = judge.score(result.prompts, result.chains, None, result.images)
    return result, rewards


def step_plans(records: list, step: int, config: GRPOConfig) -> list[dict]:
    """The step's plan prompts, each with a plan a person could write for it (a fixed function of seed and step).

    Drawn from their own shuffle of the prompts, so they are not the step's
    own-plan prompts, and each plan from a random stream of (seed, step, row).
    """
    chosen = batch_for_step(records, step, config.plan_prompts_per_step, config.seed + 7919)
    return [{"prompt": r["prompt"],
             "chain": person_plan(parse_prompt(r["prompt"]), np.random.default_rng([config.seed, step, i]))}
            for i, r in enumerate(chosen)]


def joined(own: GenerationResult, planned: GenerationResult) -> GenerationResult:
    """One batch: the step's own-plan rows, then its given-plan rows.

    Given chains become ordinary reasoning rows (teacher-forced like any chain,
    which costs little); the caller keeps them out of the objective with its
    token mask.
    """
    return dataclasses.replace(GenerationResult.concat([own, planned]), chain_given=False)


def objective_mask(result: GenerationResult, sampled: int, stages: str) -> torch.Tensor:
    """Which ``[reasoning | image]`` tokens the loss sees: the first ``sampled`` rows sampled their chains;
    the rest were handed a plan, whose tokens the policy did not choose and which never train."""
    reasoning = result.reason_mask.clone()
    reasoning[sampled:] = False
    return token_mask(reasoning, torch.ones_like(result.image_ids, dtype=torch.bool), stages)


def lr_lambda(config: GRPOConfig):
    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
        if config.lr_schedule == "cosine":
            return warm * 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps))
        return warm

    return factor


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def rank_share(records: list, generation: GenerationConfig, rank: int, world: int):
    """This process's records of the step and its generation settings.

    The step's ``B`` prompts are split into ``world`` equal runs of whole
    prompts (a group never straddles processes); rank ``r`` starts its rows at
    global row ``r * B / world * group_size``, so every sample keeps the random
    stream it has in a one-process run and the union of all ranks' rollouts is
    exactly one process's.
    """
    local = len(records) // world
    mine = records[rank * local:(rank + 1) * local]
    first = generation.first_index + rank * local * generation.num_samples
    return mine, dataclasses.replace(generation, first_index=first)


def gathered(accelerator, rewards):
    """``rewards`` of every process, in rank order (the same object with one process)."""
    if accelerator.num_processes == 1:
        return rewards
    from accelerate.utils import gather_object

    return rewards.concat(gather_object([rewards]))


def zero_advantage(rewards, group_size: int) -> list[bool]:
    """Per group: did its samples all score alike? Its advantages are then exactly 0 and it teaches nothing."""
    advantages = group_advantages(torch.tensor(rewards.total), group_size)
    return (advantages.view(-1, group_size) == 0).all(dim=1).tolist()


def reward_stats(rewards, group_size: int) -> dict[str, float]:
    """Mean and spread of each reward, the fully-correct share, and the share of groups whose samples all scored
    the same (zero advantage: they teach nothing; most groups so means the prompts are too easy or too hard)."""
    stats = {}
    for name in reward_names(rewards):
        values = np.asarray(getattr(rewards, name), dtype=np.float64)
        stats[f"reward/{name}_mean"] = float(values.mean())
        stats[f"reward/{name}_std"] = float(values.std())
    if rewards.correct is not None:
        stats["reward/correct"] = float(np.mean(rewards.correct))
    stats["reward/zero_advantage_groups"] = float(np.mean(zero_advantage(rewards, group_size)))
    return stats


def rollout_variety(result: GenerationResult, group_size: int) -> dict[str, float]:
    """Sums that show entropy collapse while it happens, over rows that planned for themselves: the sampled
    tokens' negative log-probs and their counts (chain and image apart), and distinct plans per group.

    ``-log p`` of a sampled token under the distribution it was drawn from
    (temperature and guidance included, as the rollout recorded it) averages
    to that distribution's entropy, so the per-token entropy costs no extra
    forward pass. Plans are compared as the world draws them for ShapeWorld
    prompts (:func:`~gotr1_core.shapeworld.diversity.layout_signature`), as
    written otherwise.
    """
    from gotr1_core.shapeworld.diversity import layout_signature

    def as_written(layout) -> tuple:
        return tuple(sorted((o.label, o.box) for o in layout.objects))

    layouts = result.layouts
    distinct = []
    for g in range(0, len(result.prompts), group_size):  # one prompt per group: read it once
        signature = layout_signature if shapeworld_specs([result.prompts[g]]) is not None else as_written
        distinct.append(len({signature(x) for x in layouts[g:g + group_size]}))
    mask = result.reason_mask
    return {"chain_nll": float(-(result.reason_logprobs * mask).sum()), "chain_tokens": float(mask.sum()),
            "image_nll": float(-result.image_logprobs.sum()), "image_tokens": float(result.image_logprobs.numel()),
            "distinct_plans": float(sum(distinct)), "groups": float(len(distinct))}


def variety_stats(sums: dict[str, float]) -> dict[str, float]:
    """Per-token entropies and mean distinct plans per group from :func:`rollout_variety`'s sums (of all ranks)."""
    return {"policy/entropy_chain": sums["chain_nll"] / max(sums["chain_tokens"], 1.0),
            "policy/entropy_image": sums["image_nll"] / max(sums["image_tokens"], 1.0),
            "policy/distinct_plans": sums["distinct_plans"] / max(sums["groups"], 1.0)}


def collapse_warnings(first: dict[str, float], now: dict[str, float], config: GRPOConfig) -> dict[str, str]:
    """What looks like RL collapsing, by the key it concerns: a stage's per-token entropy below
    ``entropy_warn_fraction`` of its value at the run's first step, or more than ``zero_advantage_warn`` of the
    groups scoring all alike (nothing to learn from them: prompts too easy or too hard, or samples all the same)."""
    found = {}
    for key in ("policy/entropy_chain", "policy/entropy_image"):
        if first.get(key, 0.0) > 0 and now[key] < config.entropy_warn_fraction * first[key]:
            found[key] = (f"{key} fell to {now[key]:.3f} from {first[key]:.3f} at the start: the policy is "
                          "collapsing onto few samples; see docs/training.md (clip_eps_high, entropy_coef, "
                          "beta, rollout temperature)")
    share = now["reward/zero_advantage_groups"]
    if share > config.zero_advantage_warn:
        found["reward/zero_advantage_groups"] = (f"{share:.0%} of the groups have zero advantage (all samples scored "
                                                 "alike): most of the batch teaches nothing")
    return found


def plan_stats(rewards) -> dict[str, float]:
    """How well the plan rollouts' images follow the given plans."""
    stats = {"plans/r_ri_mean": float(np.mean(rewards.r_ri)), "plans/total_mean": float(np.mean(rewards.total))}
    if rewards.correct is not None:
        stats["plans/correct"] = float(np.mean(rewards.correct))
    return stats


def write_sample_sheet(run_dir: Path, step: int, result: GenerationResult, rewards, group_size: int) -> None:
    from gotr1_core.demo import build_sheet

    rows = list(range(group_size))
    folder = run_dir / "samples"
    folder.mkdir(exist_ok=True)
    build_sheet(result.prompts[0], result.select(rows), rewards.select(rows)).save(folder / f"step-{step:06d}.png")


# -- the loop ------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    """What every step of a run works with, set up once by :func:`start_run`."""

    config: GRPOConfig
    accelerator: object
    got: GotModel
    policy: torch.nn.Module            # PolicyLogprobs as accelerate prepared it (DDP, FSDP, DeepSpeed, or as is)
    optimizer: object
    scheduler: object
    params: list                       # what gradient clipping sees: the prepared (possibly sharded) parameters
    reference: GotModel | None         # the frozen KL reference; None under LoRA (adapters off) or without KL
    judge: object
    records: list[dict]                # training prompts, no evaluation scene in any wording
    eval_sets: dict[str, list[str]]
    log: MetricsLog
    partitioned: str | None            # how the optimizer state is split across processes, if it is
    first_watched: dict | None = None  # entropy / zero-advantage figures of the first step, for the warnings
    warned: set = dataclasses.field(default_factory=set)
    samples_seen: int = 0

    @property
    def lora(self) -> bool:
        return bool(self.config.lora_rank)

    @property
    def device(self):
        return self.accelerator.device

    @property
    def run_dir(self) -> Path:
        return Path(self.config.output_dir)


@dataclasses.dataclass
class Rollouts:
    """A step's samples: the result the update trains on (own-plan rows, then given-plan rows) and their rewards;
    what the step's own prompts drew before any refill (the rewards and variety sums the logs and warnings
    describe: the policy as it is, not the batch dynamic sampling kept); the refill's counts."""

    result: GenerationResult
    rewards: object
    plan_rewards: object | None
    drawn: object
    variety: dict[str, float]
    sampling: dict[str, float]


@dataclasses.dataclass
class Objective:
    """What the update needs besides the policy's own forward: per-sample advantages, which tokens train and
    with what weight, the micro-batches, and the old-policy and reference log-probs."""

    advantages: torch.Tensor
    mask: torch.Tensor
    weights: torch.Tensor
    chunks: list[list[int]]
    old: torch.Tensor | None
    ref: torch.Tensor | None


def train_grpo(config: GRPOConfig, resume: bool = False, progress: bool = True, stop_after: int | None = None,
               judge=None) -> dict:
    """Run (or continue, with ``resume``) a GRPO run; ``judge`` replaces ``config.judge`` with any
    :class:`gotr1_core.rewards.Judge` object — custom rewards from Python. The loop is the module docstring's five
    steps, one function each."""
    from tqdm.auto import tqdm

    run, start = start_run(config, resume, judge)
    last = min(config.steps, stop_after or config.steps)
    bar = tqdm(range(start, last), initial=start, total=config.steps, disable=not progress, desc="grpo")
    began = time.time()
    for step in bar:
        tick = time.time()
        rollouts = collect_rollouts(run, step)                  # 1-2. rollout and reward
        objective = step_objective(run, rollouts)               # 3. advantages, weights, old and reference
        stats = update_policy(run, rollouts, objective)         # 4. ppo_epochs optimiser steps
        values = keep(run, step, last, rollouts, stats, tick)  # 5. log, show, keep
        if values:
            bar.set_postfix(reward=f"{values['reward/total_mean']:.3f}", kl=f"{values['train/kl']:.4f}")
    if last < config.steps:
        return {"stopped_at": last}
    return finish_run(run, began)


def inert_settings(config: GRPOConfig) -> list[str]:
    """Settings that cannot change this run, said before it starts rather than found out from its curves."""
    found = []
    if config.ppo_epochs == 1 and config.clip_eps_high not in (None, config.clip_eps):
        found.append("clip_eps_high has no effect with ppo_epochs: 1 — the ratio is exactly 1 in the only epoch, "
                     "so no clip binds; it acts from the second epoch on (ppo_epochs >= 2)")
    return found


def start_run(config: GRPOConfig, resume: bool, judge=None) -> tuple[Run, int]:
    """Load the policy, reference, judge and prompts, resume from the newest checkpoint if asked, and prepare
    the policy and optimizer for the processes; returns the run and the step to start at."""
    from accelerate import Accelerator

    for message in inert_settings(config):
        warnings.warn(f"gotr1-train grpo: {message}", RuntimeWarning, stacklevel=3)

    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(cpu=config.device == "cpu", mixed_precision=config.mixed_precision)
    device = accelerator.device
    got = load_policy(config, device)
    lora = bool(config.lora_rank)
    reference = None
    if config.beta and not lora:
        reference = frozen_reference(config, "cpu" if config.ref_device == "cpu" else device)
    judge = judge or load_judge(config.judge, str(device), quality=config.quality_model, formula=config.formula(),
                                questions=config.judge_questions)
    eval_sets = eval_prompt_sets(config)
    records = training_records(config.prompts, config.prompt_count, config.seed,  # no evaluation scene, any wording
                               [p for prompts in eval_sets.values() for p in prompts])

    optimizer = torch.optim.AdamW([p for p in got.model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
    log = MetricsLog(run_dir, accelerator.is_main_process)
    start = 0
    gathered_moments = None  # an FSDP run's optimizer state, loaded into the shards once they exist
    if resume and (found := find_checkpoint(run_dir)) is not None:
        tensors, state = load_checkpoint(found)
        if state["optimizer"] is None:
            raise ValueError(
                f"{found} was written by a {state['optimizer_partitioned']} run: its optimizer state is split "
                "across the processes and not in the checkpoint, so the run cannot be resumed. Its weights are "
                f"whole: `gotr1-train export {run_dir} OUT` writes them as a model folder; start a new run from it "
                "(model=OUT).")
        restore_tensors(got.model, tensors, lora)
        if state.get("optimizer_gathered"):
            gathered_moments = state["optimizer"]
        else:
            optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        start = state["step"]
        log.forget_after(start)
    save_config(config, run_dir / "config.yaml")
    world = accelerator.num_processes
    for name in ("prompts_per_step", "plan_prompts_per_step"):
        if getattr(config, name) % world:
            raise ValueError(f"{name} {getattr(config, name)} must be a multiple of the {world} processes "
                             "(each process takes whole prompt groups)")
    rows = (config.prompts_per_step + config.plan_prompts_per_step) // world * config.group_size
    accelerator.gradient_accumulation_steps = math.ceil(rows / config.micro_batch)  # micro-batches per step
    policy, optimizer = accelerator.prepare(PolicyLogprobs(got), optimizer)
    # what to clip: the parameters as prepared (FSDP replaces them with sharded ones that hold the gradients)
    params = [p for p in policy.parameters() if p.requires_grad]
    if gathered_moments is not None:
        load_full_optimizer_state(policy, getattr(optimizer, "optimizer", optimizer), gathered_moments)
    run = Run(config, accelerator, got, policy, optimizer, scheduler, params, reference, judge, records, eval_sets,
              log, partitioned_optimizer(accelerator))
    return run, start


def collect_rollouts(run: Run, step: int) -> Rollouts:
    """1-2. This process's share of the step's prompts, a group of samples each, judged; then, with
    ``plan_prompts_per_step``, groups of images drawn from plans a person could write (rows after the own-plan
    rows of every rank)."""
    config, rank, world = run.config, run.accelerator.process_index, run.accelerator.num_processes
    mine, generation = rank_share(batch_for_step(run.records, step, config.prompts_per_step, config.seed),
                                  config.generation(step), rank, world)
    with full_parameters(run.policy):  # whole weights for decoding even when training shards them
        result, rewards = rollout(run.got, run.judge, [r["prompt"] for r in mine], generation)
        drawn, variety = rewards, rollout_variety(result, config.group_size)
        sampling = {"groups_drawn": float(len(mine))}
        if config.dynamic_sampling_rounds:
            result, rewards, sampling = refill(run, step, result, rewards, first_group=rank * len(mine))
        plan_rewards = None
        if config.plan_prompts_per_step:
            planned, plan_generation = rank_share(
                step_plans(run.records, step, config), dataclasses.replace(
                    config.generation(step), first_index=config.prompts_per_step * config.group_size), rank, world)
            plan_result, plan_rewards = rollout(run.got, run.judge, [r["prompt"] for r in planned], plan_generation,
                                                [r["chain"] for r in planned])
            result = joined(result, plan_result)
    return Rollouts(result, rewards, plan_rewards, drawn, variety, sampling)


REFILL_SEED = 104_729  # the refill rounds' shuffles of the prompts: apart from the step's own and the plans'


def refill(run: Run, step: int, result: GenerationResult, rewards, first_group: int):
    """DAPO's dynamic sampling (arXiv 2503.14476, §3.2): replace every group whose samples all scored alike.

    Such a group has zero advantage, so it adds nothing to the gradient but
    still dilutes the loss; as the policy gets good (or collapses) most groups
    are like that and the effective batch shrinks. In round ``k`` (up to
    ``dynamic_sampling_rounds``) each such group ``g`` of the step is drawn
    again for prompt ``g`` of a fresh shuffle ``(seed + k * REFILL_SEED)``, on
    random streams of its own — a fixed function of (seed, step, k, g), so the
    batch is the same however many processes share the step, and a resumed run
    redraws it. Rounds stop when no process has such a group left; a group
    still alike after the last round stays (with zero advantage). Returns the
    kept result and rewards, and counts: groups drawn (the step's own and the
    refills), groups still alike, rounds run.
    """
    config, group = run.config, run.config.group_size
    groups = [(result.select(rows), rewards.select(rows))
              for rows in (range(g * group, (g + 1) * group) for g in range(len(result.prompts) // group))]
    stride = (config.prompts_per_step + config.plan_prompts_per_step) * group  # rows of one round of the step
    generation = config.generation(step)
    counts = {"groups_drawn": float(len(groups)), "rounds": 0.0}
    for k in range(1, config.dynamic_sampling_rounds + 1):
        alike = [g for g, (_, r) in enumerate(groups) if zero_advantage(r, group)[0]]
        if not int(run.accelerator.reduce(torch.tensor(len(alike), device=run.device), reduction="sum")):
            break  # every process agrees: no more rounds
        counts["rounds"] = float(k)
        if not alike:
            continue  # this process's groups are done; the others still draw
        fresh = batch_for_step(run.records, step, config.prompts_per_step, config.seed + k * REFILL_SEED)
        streams = [k * stride + (first_group + g) * group + i for g in alike for i in range(group)]
        new, new_rewards = rollout(run.got, run.judge, [fresh[first_group + g]["prompt"] for g in alike],
                                   generation, streams=streams)
        for n, g in enumerate(alike):
            rows = range(n * group, (n + 1) * group)
            groups[g] = (new.select(rows), new_rewards.select(rows))
        counts["groups_drawn"] += len(alike)
    counts["groups_still_alike"] = float(sum(zero_advantage(r, group)[0] for _, r in groups))
    return (GenerationResult.concat([r for r, _ in groups]), type(rewards).concat([w for _, w in groups]), counts)


def step_objective(run: Run, rollouts: Rollouts) -> Objective:
    """3. Advantages, shared by every token of a sample (a given plan's tokens are not the policy's and never
    train); each token's weight in the step's loss over all ranks; the micro-batches; the sampling policy's
    log-probs (teacher-forced like the loss, so the ratio is exactly 1 at the first epoch) when there is more
    than one epoch, and the reference's when there is a KL term."""
    config, result, accelerator, device = run.config, rollouts.result, run.accelerator, run.device
    totals = rollouts.rewards.total + ([] if rollouts.plan_rewards is None else rollouts.plan_rewards.total)
    advantages = group_advantages(torch.tensor(totals), config.group_size).to(device)
    mask = objective_mask(result, len(rollouts.rewards), config.stages).to(device)
    weights = token_weights(mask, config.loss_normalisation, accelerator.reduce(mask.sum(), reduction="sum"),
                            accelerator.reduce(mask.any(dim=1).sum(), reduction="sum"))
    n = len(result.prompts)
    chunks = [list(range(i, min(i + config.micro_batch, n))) for i in range(0, n, config.micro_batch)]
    with torch.no_grad():
        old = None
        if config.ppo_epochs > 1:
            old = torch.cat([torch.cat(run.policy(result.select(c)), dim=1) for c in chunks])
        ref = None
        if config.beta:  # the frozen copy, or under LoRA the policy's own forward without its adapters
            with adapters_disabled(run.got.model) if run.lora else contextlib.nullcontext():
                ref = torch.cat([torch.cat(sequence_logprobs(run.reference, result.select(c)) if run.reference
                                           else run.policy(result.select(c)), dim=1) for c in chunks]).to(device)
    return Objective(advantages, mask, weights, chunks, old, ref)


def update_policy(run: Run, rollouts: Rollouts, objective: Objective) -> dict[str, float]:
    """4. ``ppo_epochs`` optimiser steps, each over the whole batch in micro-batches; returns the loss, KL, clip
    fraction (and entropy) as weighted over every rank, and the gradient norm before clipping."""
    config, accelerator, policy, optimizer = run.config, run.accelerator, run.policy, run.optimizer
    o, world = objective, accelerator.num_processes
    run.got.model.train()
    stats = {"loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, **({"entropy": 0.0} if config.entropy_coef else {})}
    for _ in range(config.ppo_epochs):
        optimizer.zero_grad(set_to_none=True)
        for rows in o.chunks:
            idx = torch.tensor(rows, device=run.device)
            # accumulate: gradients reduced across ranks (DDP) / the engine stepped (DeepSpeed) at the last only
            with accelerator.accumulate(policy):
                with accelerator.autocast():
                    out = policy(rollouts.result.select(rows), entropy=bool(config.entropy_coef))
                logp = torch.cat(out[:2], dim=1)
                entropy = torch.cat(out[2:], dim=1) if config.entropy_coef else None
                old_rows = logp.detach() if o.old is None else o.old[idx]
                loss, parts = grpo_loss(logp, old_rows, None if o.ref is None else o.ref[idx], o.advantages[idx],
                                        o.mask[idx], config.clip_eps, config.beta, config.clip_eps_high,
                                        o.weights[idx], entropy, config.entropy_coef)
                # x world: DDP/DeepSpeed average over ranks; x micro-batches: accelerate divides by them
                accelerator.backward(loss * world * len(o.chunks))
            share = float(o.weights[idx].sum())  # this micro-batch's part of the step's loss
            stats["loss"] += loss.item() / config.ppo_epochs
            for key in stats.keys() & parts.keys() - {"loss"}:
                stats[key] += parts[key] * share / config.ppo_epochs
        if config.grad_clip:
            stats["grad_norm"] = float(accelerator.clip_grad_norm_(run.params, config.grad_clip))
        optimizer.step()
    run.scheduler.step()
    stats.update({k: float(accelerator.reduce(torch.tensor(v, device=run.device), reduction="sum"))
                  for k, v in stats.items() if k != "grad_norm"})
    return stats


def keep(run: Run, step: int, last: int, rollouts: Rollouts, stats: dict, tick: float) -> dict | None:
    """5. Figures of every rank: warn on collapse, log (returns what was logged, or None), write a sample sheet,
    evaluate, checkpoint atomically."""
    config, accelerator, done = run.config, run.accelerator, step + 1

    def summed(sums: dict[str, float]) -> dict[str, float]:
        return {k: float(accelerator.reduce(torch.tensor(v, device=run.device), reduction="sum"))
                for k, v in sums.items()}

    every_reward = gathered(accelerator, rollouts.drawn)  # the step's own prompts as drawn, before any refill
    watched = {**variety_stats(summed(rollouts.variety)), **reward_stats(every_reward, config.group_size)}
    run.first_watched = run.first_watched or watched
    for key, message in collapse_warnings(run.first_watched, watched, config).items():
        if key not in run.warned and accelerator.is_main_process:
            run.warned.add(key)  # once per run and kind: the curves show the rest
            warnings.warn(f"gotr1-train grpo, step {done}: {message}", RuntimeWarning, stacklevel=3)
    every_plan_reward = None if rollouts.plan_rewards is None else gathered(accelerator, rollouts.plan_rewards)
    sampling = summed({k: v for k, v in rollouts.sampling.items() if k != "rounds"})
    if "rounds" in rollouts.sampling:  # the same on every process
        sampling["rounds"] = rollouts.sampling["rounds"]
        sampling["kept_informative"] = 1 - sampling["groups_still_alike"] / len(every_reward) * config.group_size
    n = sampling["groups_drawn"] * config.group_size + (0 if every_plan_reward is None else len(every_plan_reward))
    run.samples_seen += n
    values = None
    if done % config.log_every == 0 or done == last:
        values = {**watched, **{f"train/{k}": v for k, v in stats.items()},
                  **{f"sampling/{k}": v for k, v in sampling.items()},
                  **(plan_stats(every_plan_reward) if every_plan_reward is not None else {}),
                  "train/lr": run.scheduler.get_last_lr()[0], "perf/samples_per_s": n / (time.time() - tick),
                  "perf/peak_memory_mb": peak_memory_mb(run.device)}
        run.log.log(done, values)
    if config.sample_every and done % config.sample_every == 0 and accelerator.is_main_process:
        write_sample_sheet(run.run_dir, done, rollouts.result, rollouts.rewards, config.group_size)
    if config.eval_every and done % config.eval_every == 0:
        with full_parameters(run.policy):
            run.log.log(done, run_evals(run.got, run.judge, run.eval_sets, config, accelerator))
    if done % config.save_every == 0 or done == last:
        tensors = checkpoint_tensors(policy_weights(run.policy, run.got), run.lora)
        inner = getattr(run.optimizer, "optimizer", run.optimizer)  # accelerate's wrapper holds torch's
        moments = optimizer_checkpoint(run.policy, inner, run.partitioned)  # every process: it gathers
        if accelerator.is_main_process:
            save_checkpoint(run.run_dir, done, tensors,
                            {**moments, "optimizer_partitioned": run.partitioned,
                             "scheduler": run.scheduler.state_dict(), "rng": rng_state(),
                             "data_position": done * config.prompts_per_step}, config.keep_last)
        accelerator.wait_for_everyone()  # no rank runs ahead of a checkpoint still being written
    return values


def finish_run(run: Run, began: float) -> dict:
    """Evaluate the final policy, log the run's figures, and export it (LoRA merged) as a model folder."""
    config, accelerator = run.config, run.accelerator
    with full_parameters(run.policy):
        evals = run_evals(run.got, run.judge, run.eval_sets, config, accelerator)
    metrics = {"train/seconds": time.time() - began, "steps": config.steps,
               "perf/samples_per_s": run.samples_seen / max(time.time() - began, 1e-9),
               "perf/peak_memory_mb": peak_memory_mb(run.device), **evals}
    run.log.log(config.steps, {k: v for k, v in metrics.items() if "/" in k})
    run.log.close()
    sharded = sharding_kind(run.policy) != "none"
    weights = policy_weights(run.policy, run.got) if sharded else None
    got = run.got
    if accelerator.is_main_process:
        if sharded:  # a whole copy on the CPU to write from
            got = load_policy(dataclasses.replace(config, gradient_checkpointing=False), "cpu")
            restore_tensors(got.model, checkpoint_tensors(weights, run.lora), run.lora)
        export_policy(got, run.lora, config, run.run_dir / "model", metrics)
    return metrics


def eval_prompt_sets(config: GRPOConfig) -> dict[str, list[str]]:
    """Name -> prompts of each evaluation source (the same seeds SFT evaluation uses)."""
    sets = {}
    for source in config.eval_prompts:
        name = source.split(":", 1)[1] if source.startswith("shapeworld:") else Path(source).stem
        sets[name] = eval_prompts(source, config.eval_count)
    return sets


def run_evals(got: GotModel, judge, eval_sets: dict[str, list[str]], config: GRPOConfig,
              accelerator=None) -> dict[str, float]:
    """Evaluation metrics of every set, the prompts split across processes.

    Rank ``r`` evaluates a contiguous share of each set starting at its global
    row, so each prompt gets the sample it gets in a one-process run; the means
    are combined weighted by each share's size.
    """
    got.model.eval()
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    metrics = {}
    for name, prompts in eval_sets.items():
        bounds = np.linspace(0, len(prompts), world + 1).astype(int)
        mine = prompts[bounds[rank]:bounds[rank + 1]]
        local = (evaluate(got, judge, mine, seed=config.seed, max_batch=config.rollout_batch, prefix=f"eval/{name}/",
                          first_index=int(bounds[rank])) if mine else {})
        shares = [(len(mine), local)]
        if world > 1:
            from accelerate.utils import gather_object

            shares = gather_object(shares)
        counted = [(count, values) for count, values in shares if count]
        for key in set.intersection(*(set(values) for _, values in counted)) if counted else ():
            metrics[key] = sum(count * values[key] for count, values in counted) / sum(c for c, _ in counted)
    return metrics


# -- export --------------------------------------------------------------------------------

def export_policy(got: GotModel, lora: bool, config: GRPOConfig, destination: Path, metrics: dict | None) -> Path:
    """Write the policy (LoRA merged) as a model folder with a model card; the base card is kept inside."""
    from .sft import git_commit

    model = got.model
    if lora:
        model = copy.deepcopy(model)
        merge_lora(model)
    model.eval().requires_grad_(False)
    out = save_model(dataclasses.replace(got, model=model), destination, max_shard_size="4GB")
    card_path = model_path(config.model) / "model_card.json"
    base_card = json.loads(card_path.read_text(encoding="utf-8")) if card_path.exists() else None
    card = {"name": f"{(base_card or {}).get('name', 'model')}-grpo",
            "trained_with": "gotr1-train grpo", "git_commit": git_commit(), "seed": config.seed,
            "reward": {"judge": config.judge, "quality_model": config.quality_model,
                       "formula": config.formula().describe(), "expression": config.formula().expression,
                       "judge_questions": config.judge_questions},
            "config": dataclasses.asdict(config), "metrics": metrics, "base_model_card": base_card}
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return out


def export_run(run: str | Path, destination: str | Path, device: str = "cpu", step: int | None = None) -> Path:
    """``gotr1-train export RUN DST [--step N]``: the newest checkpoint of a GRPO run (or the one of step ``N``,
    e.g. from before the policy narrowed) as a loadable model folder."""
    run_dir = Path(run)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a GRPO run folder (no config.yaml)")
    found = find_checkpoint(run_dir) if step is None else step_checkpoint(run_dir, step)
    if found is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint to export")
    config = load_config(GRPOConfig, run_dir / "config.yaml")
    got = load_policy(dataclasses.replace(config, gradient_checkpointing=False), device)
    tensors, state = load_checkpoint(found)
    restore_tensors(got.model, tensors, bool(config.lora_rank))
    return export_policy(got, bool(config.lora_rank), config, Path(destination), {"exported_step": state["step"]})
