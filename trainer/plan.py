"""``gotr1-train grpo --dry-run``: check a run and plan its GPU memory without running a step.

A 7B GRPO run holds four models at once — the policy, its frozen reference,
the MLLM judge and the quality model — plus optimizer moments, gradients and
the rollouts' key/value cache. Finding out on the cluster that they do not fit
costs a queue wait and a crash; the dry run reads only configs. Every model is
built as a skeleton (parameters on the meta device, sizes without memory) from
the ``config.json`` of its folder, so a typo in a folder or a config fails here.

The plan counts bytes *per GPU* for ``gpus`` data-parallel processes:

* **policy, reference** — :func:`trainer.grpo.planned_weight_bytes` (float32
  master policy, reference in the mixed-precision dtype or quantized; LoRA: the
  bf16 base plus float32 adapters, no reference copy). With ``zero2`` (several
  GPUs, full fine-tune) each GPU holds a bf16 copy of the policy and a
  ``1/gpus`` share of the float32 masters, moments and gradients (DeepSpeed
  ZeRO-2).
* **optimizer, gradients** — AdamW's 8 bytes of moments and 4 of gradient per
  trained parameter.
* **judge, quality model** — their parameters in the compute dtype (bf16 on a
  GPU); a served judge runs elsewhere and counts 0 here.
* **rollouts** — :func:`gotr1_core.memory.plan_memory` for ``rollout_batch``
  images with CFG: the key/value cache and the largest stage's activations.
* **training activations** — an estimate, not a measurement: per micro-batch
  row one hidden state per layer and one layer's ~16 during its recomputation
  (gradient checkpointing), or ~16 per layer (without), plus float32 logits and
  log-probabilities over the vocabulary (chain tokens) and the codebook (image
  tokens).

The peak is everything held plus the larger of the rollout and training working
memory (they never coexist).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gotr1_core.memory import human, parse_bytes, plan_memory, weight_bytes

ADAM_BYTES = 8      # two float32 moments per trained parameter
GRAD_BYTES = 4      # a float32 gradient per trained parameter
MASTER_BYTES = 4    # ZeRO-2's float32 master copy (its bf16 working copy is the policy row)
ACTIVATIONS_PER_LAYER = 16  # hidden-sized tensors a decoder layer keeps for backward without checkpointing


@dataclass
class RunPlan:
    """Bytes per GPU of each part of a GRPO run, and what they add up to."""

    setup: str
    held: dict[str, int]
    working: dict[str, int]
    trained_parameters: int

    @property
    def peak(self) -> int:
        return sum(self.held.values()) + max(self.working.values())

    def table(self, budget: int | None = None) -> str:
        count = self.trained_parameters
        lines = [f"{self.setup}: {count / 1e9:.2f} B trained parameters" if count >= 1e8 else
                 f"{self.setup}: {count / 1e6:.1f} M trained parameters", "  held:"]
        lines += [f"    {name:<46}{human(value):>10}" for name, value in self.held.items()]
        lines.append("  working (the larger counts):")
        lines += [f"    {name:<46}{human(value):>10}" for name, value in self.working.items()]
        lines.append(f"  {'peak per GPU':<48}{human(self.peak):>10}")
        if budget is not None:
            verdict = "fits" if self.peak <= budget else f"does NOT fit ({human(self.peak - budget)} over)"
            lines.append(f"  {'GPU memory':<48}{human(budget):>10}  {verdict}")
        return "\n".join(lines)


PUBLISHED_REWARD_MODELS = {
    # Qwen2.5-VL-7B-Instruct's config.json (the paper's reward model), sizes only
    "Qwen2.5-VL-7B-Instruct": {
        "model_type": "qwen2_5_vl", "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "text_config": {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944,
                        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                        "tie_word_embeddings": False},
        "vision_config": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                          "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "window_size": 112,
                          "fullatt_block_indexes": [7, 15, 23, 31]},
    },
    # HPS v2.1: OpenCLIP ViT-H-14 (what `gotr1 convert-hps` writes for it)
    "HPS-v2.1": {
        "model_type": "clip", "architectures": ["CLIPModel"], "projection_dim": 1024,
        "vision_config": {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
                          "num_attention_heads": 16, "patch_size": 14, "image_size": 224, "hidden_act": "gelu"},
        "text_config": {"vocab_size": 49408, "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
                        "num_attention_heads": 16, "max_position_embeddings": 77, "hidden_act": "gelu"},
    },
}


def write_skeleton(name: str, folder: str | Path) -> Path:
    """A folder holding only the config.json of a published model (GoT-R1-1B/7B, the judge, HPS): enough for
    ``--dry-run`` to plan a run before any weights are fetched."""
    from gotr1_core.memory import PUBLISHED, published_config

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if name in PUBLISHED:
        published_config(name).to_json_file(str(folder / "config.json"))
    elif name in PUBLISHED_REWARD_MODELS:
        (folder / "config.json").write_text(json.dumps(PUBLISHED_REWARD_MODELS[name], indent=2), encoding="utf-8")
    else:
        raise ValueError(f"no published config {name!r}; known: {', '.join([*PUBLISHED, *PUBLISHED_REWARD_MODELS])}")
    return folder


def _skeleton_bytes(folder: Path, element: int) -> int:
    """Parameters of the model in ``folder`` (a Qwen2.5-VL judge or a CLIP quality model) built on the meta
    device from its config.json, at ``element`` bytes each."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, CLIPModel, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    kinds = {"qwen2_5_vl": Qwen2_5_VLForConditionalGeneration, "clip": CLIPModel}
    if config.model_type not in kinds:
        raise ValueError(f"{folder}: model_type {config.model_type!r} is neither a Qwen2.5-VL judge nor a CLIP "
                         "quality model")
    with init_empty_weights(include_buffers=False):
        skeleton = kinds[config.model_type](config)
    return sum(p.numel() for p in skeleton.parameters()) * element


def plan_run(config, gpus: int = 1, device: str = "cuda") -> RunPlan:
    """The memory plan of GRPO ``config`` on ``gpus`` GPUs (ZeRO-2 for a full fine-tune on several)."""
    from gotr1_core.model.loading import janus_config, read_config_json
    from gotr1_core.rewards import is_judge_url

    from .evaluate import model_path
    from .grpo import FROZEN_DTYPES, planned_weight_bytes

    folder = model_path(config.model)
    model_config = janus_config(read_config_json(folder), folder / "config.json")
    weights = planned_weight_bytes(config, model_config, device)
    trained = weights["trained_parameters"]
    frozen = FROZEN_DTYPES[config.mixed_precision]
    element = 2 if device == "cuda" else 4  # judges load in bf16 on a GPU ("auto"), float32 elsewhere
    zero2 = gpus > 1 and not config.lora_rank
    held = {}
    if zero2:
        held[f"policy ({frozen} working copy)"] = weight_bytes(model_config, frozen, device)
        if frozen != "fp32":
            held[f"float32 masters (1/{gpus})"] = MASTER_BYTES * trained // gpus
    else:
        held["policy" + (" (base + LoRA)" if config.lora_rank else " (float32)")] = weights["policy"]
    if weights["reference"] and config.ref_device != "cpu":
        held["reference"] = weights["reference"]
    share = gpus if zero2 else 1
    held["optimizer moments" + (f" (1/{gpus})" if zero2 else "")] = ADAM_BYTES * trained // share
    held["gradients" + (f" (1/{gpus})" if zero2 else "")] = GRAD_BYTES * trained // share
    if config.judge != "shapeworld" and not is_judge_url(config.judge):
        held["judge"] = _skeleton_bytes(Path(config.judge).expanduser(), element)
    if config.quality_model:
        held["quality model (HPS)"] = _skeleton_bytes(Path(config.quality_model).expanduser(), element)
    rollout = plan_memory(model_config, config.rollout_batch, weights=frozen, device=device,
                          cfg=config.cfg_scale != 1.0, reason_tokens=config.max_reason_tokens or 600,
                          known_weight_bytes=0)
    text = model_config.text_config
    reason, image = config.max_reason_tokens or 600, model_config.vq_config.num_patches ** 2
    row = (48 + reason + image) * text.hidden_size * element  # one hidden state of a training row
    kept = (text.num_hidden_layers + ACTIVATIONS_PER_LAYER if config.gradient_checkpointing  # + the recomputed layer
            else ACTIVATIONS_PER_LAYER * text.num_hidden_layers)
    logits = 2 * 4 * (reason * text.vocab_size + image * model_config.vq_config.num_embeddings)  # + log-softmax
    training = config.micro_batch * (row * kept + logits)
    working = {f"rollouts ({config.rollout_batch} images, KV + activations)": rollout.peak,
               f"training (micro_batch {config.micro_batch}, estimate)": training}
    kind = f"LoRA r={config.lora_rank}" if config.lora_rank else "ZeRO-2" if zero2 else "full fine-tune"
    setup = f"{gpus} GPU{'s' if gpus > 1 else ''}, {kind}"
    return RunPlan(setup, held, working, trained)


def dry_run(config, gpus: int = 1, gpu_memory: str | None = None) -> str:
    """What ``--dry-run`` prints: the validated settings that shape the run, then the memory plan."""
    budget = parse_bytes(gpu_memory) if gpu_memory else None
    plan = plan_run(config, gpus)
    formula = config.formula()
    lines = [f"config valid: {config.steps} steps x {config.prompts_per_step} prompts x {config.group_size} samples, "
             f"lr {config.lr}, " + (f"LoRA r={config.lora_rank}" if config.lora_rank else "full fine-tune"),
             f"reward: judge {config.judge}" + (f", quality {config.quality_model}" if config.quality_model else "")
             + f", total = {formula.expression} ({formula.describe()}), questions {config.judge_questions}",
             plan.table(budget), "dry run: nothing was trained or written"]
    return "\n".join(lines)

