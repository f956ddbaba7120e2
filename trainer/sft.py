"""``gotr1-train sft``: teacher-forced training of the two-stage sequence on ShapeWorld.

Each example is ``BOS + template(prompt) + chain + <begin_of_image>`` followed
by the scene's image tokens (from a trained VQ run). The loss is cross-entropy
on the chain tokens (LM head) and on the image tokens (generation head); the
prompt is context only. With probability ``uncond_prob`` an example's text is
replaced by the unconditional row generation uses for classifier-free guidance
(BOS, pads, ``<begin_of_image>``) and only its image tokens are learned, so
the guided branch has something to guide against. Plans people write are
conditioning: a ``person_plans`` share of the examples carries its plan in a
person's wording (prose around the tags), a ``free_coordinates`` share has
boxes at arbitrary integer coordinates that the world draws as the scene's
boxes, and from those only the image is learned.

The model is ``JanusForConditionalGeneration`` with a small config; its
tokenizer is trained on the world's text. The result is exported as an
HF-format folder that :func:`gotr1_core.model.loading.load_model` reads, with
``model_card.json`` recording config, seed, git commit and metrics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from gotr1_core.generation import unconditional_ids
from gotr1_core.layout import ObjectBox
from gotr1_core.model.configs import small_janus_config
from gotr1_core.model.loading import GenerationSpec, GotModel, save_model
from gotr1_core.model.tokenizer import IMAGE_PLACEHOLDER, check_chain_tokens, encode_prompt_ids, train_tokenizer
from gotr1_core.rewards import ShapeWorldJudge
from gotr1_core.shapeworld.plans import prose_chain
from gotr1_core.shapeworld.scenes import model_wording
from gotr1_core.shapeworld.scenes import EVALUATION_SPLITS, any_plan_box, generate_split

from .checkpoint import find_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import load_config, positive, save_config
from .evaluate import eval_prompts, evaluate
from .metrics import MetricsLog
from .vq import VQConfig, encode_images, load_image_tokenizer

IGNORE = -100


@dataclasses.dataclass
class SFTConfig:
    output_dir: str
    vq_run: str
    seed: int = 0
    vocab_size: int = 512
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 4
    steps: int = 3000
    batch_size: int = 32
    lr: float = 0.001
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    uncond_prob: float = 0.1
    person_plans: float = 0.3
    free_coordinates: float = 0.5
    split_digits: bool = True
    train_scenes: int = 20000
    eval_scenes: int = 200
    eval_text_temperature: float = 0.7
    eval_image_temperature: float = 0.7
    eval_cfg: float = 1.0
    eval_cfg_plausibility: float = 0.0
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 25
    device: str = "auto"

    def problems(self) -> list[str]:
        found = positive(self, "vocab_size", "hidden_size", "num_layers", "num_heads", "steps", "batch_size", "lr",
                         "train_scenes", "eval_scenes", "save_every", "log_every")
        if not 0 <= self.uncond_prob < 1:
            found.append(f"uncond_prob: must be in [0, 1), got {self.uncond_prob}")
        for name in ("person_plans", "free_coordinates"):
            if not 0 <= getattr(self, name) < 1:
                found.append(f"{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.hidden_size % self.num_heads:
            found.append(f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        vq = Path(self.vq_run)
        if not all((vq / name).exists() for name in ("vq.safetensors", "patch_encoder.safetensors", "config.yaml")):
            found.append(f"vq_run: {vq} holds no finished VQ run (vq.safetensors, patch_encoder.safetensors, "
                         "config.yaml); train one with gotr1-train vq")
        return found


def scene_chains(scenes, person_plans: float, free_coordinates: float, seed: int) -> list[tuple[str, bool]]:
    """(chain, learn the chain) per scene.

    The model learns to write its own plans in the world's wording with the
    boxes the world draws exactly. Plans as people write them are given as
    conditioning and only the image is learned from them: a ``person_plans``
    share has prose around the same tags
    (:func:`~gotr1_core.shapeworld.plans.prose_chain`), a ``free_coordinates``
    share (drawn independently) has each box at random integer coordinates that
    the world draws as that object (:func:`~gotr1_core.shapeworld.scenes.any_plan_box`),
    so every number of the 0-1000 grid occurs.
    """
    rng = np.random.default_rng([seed, 7])
    out = []
    for scene in scenes:
        prose, free = rng.random() < person_plans, rng.random() < free_coordinates
        objects = list(scene.layout.objects)
        if free:
            objects = [ObjectBox(o.label, any_plan_box(so.pixel_box, rng)) for o, so in zip(objects, scene.objects)]
        chain = prose_chain(objects, scene.spec, rng) if prose else model_wording(objects, scene.spec)
        out.append((chain, not (prose or free)))
    return out


def world_corpus(scenes, chains: list[tuple[str, bool]], spec: GenerationSpec) -> list[str]:
    return [spec.format_prompt(s.prompt) + chain for s, (chain, _) in zip(scenes, chains)]


def build_model(config: SFTConfig, vq_config: VQConfig, scenes, chains: list[tuple[str, bool]]):
    """Tokenizer, model (VQ weights in place) and spec for a fresh run."""
    from transformers import JanusForConditionalGeneration

    spec = GenerationSpec(max_reason_tokens=160, cfg_scale=config.eval_cfg,
                          cfg_plausibility=config.eval_cfg_plausibility,
                          text_temperature=config.eval_text_temperature,
                          image_temperature=config.eval_image_temperature, plan_wording="shapeworld")
    tokenizer = train_tokenizer(world_corpus(scenes[:4000], chains[:4000], spec), vocab_size=config.vocab_size,
                                split_digits=config.split_digits)
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id, "pad": tokenizer.pad_token_id,
           "image_placeholder": tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)}
    janus = small_janus_config(
        vocab_size=-(-len(tokenizer) // 64) * 64, hidden_size=config.hidden_size, num_layers=config.num_layers,
        num_heads=config.num_heads, grid_size=vq_config.grid_size, codebook_size=vq_config.codebook_size,
        codebook_dim=vq_config.codebook_dim, vq_channels=vq_config.vq_channels, vq_levels=vq_config.vq_levels,
        vq_multipliers=vq_config.vq_multipliers, max_positions=512, special_ids=ids)
    torch.manual_seed(config.seed)
    model = JanusForConditionalGeneration(janus)
    model.model.vqmodel.load_state_dict(load_file(str(Path(config.vq_run) / "vq.safetensors")))
    model.model.vqmodel.requires_grad_(False)
    return model, tokenizer, spec


def encode_examples(tokenizer, spec: GenerationSpec, scenes, chains: list[tuple[str, bool]],
                    image_tokens: torch.Tensor) -> list[tuple]:
    """(prompt ids, chain ids, image ids, learn the chain) per scene."""
    examples = []
    for scene, (chain, learn), tokens in zip(scenes, chains, image_tokens):
        prompt = encode_prompt_ids(tokenizer, spec.format_prompt(scene.prompt))
        examples.append((prompt, tokenizer.encode(chain, add_special_tokens=False), tokens.tolist(), learn))
    return examples


def collate(examples: list[tuple], pad: int, drop: torch.Tensor):
    """Right-padded batch: text ids, image ids, and the targets of both heads.

    Position ``t`` predicts token ``t+1``: chain tokens through the LM head
    (for examples whose chain is learned), image tokens through the generation
    head. ``drop[i]`` turns example ``i`` into its unconditional form (image
    targets only).
    """
    texts = []
    for (prompt, chain, _, _), dropped in zip(examples, drop.tolist()):
        text = prompt + chain
        texts.append(unconditional_ids(text, pad) if dropped else text)
    n_image = len(examples[0][2])
    length = max(len(t) for t in texts) + n_image
    batch = len(examples)
    text_ids = torch.full((batch, length), pad, dtype=torch.long)
    image_ids = torch.zeros((batch, length), dtype=torch.long)
    is_image = torch.zeros((batch, length), dtype=torch.bool)
    text_target = torch.full((batch, length), IGNORE, dtype=torch.long)
    image_target = torch.full((batch, length), IGNORE, dtype=torch.long)
    for i, ((prompt, chain, image, learn), text, dropped) in enumerate(zip(examples, texts, drop.tolist())):
        n = len(text)
        text_ids[i, :n] = torch.tensor(text)
        image_ids[i, n:n + n_image] = torch.tensor(image)
        is_image[i, n:n + n_image] = True
        if learn and not dropped:
            text_target[i, len(prompt) - 1:n - 1] = torch.tensor(chain)
        image_target[i, n - 1:n - 1 + n_image] = torch.tensor(image)
    return text_ids, image_ids, is_image, text_target, image_target


def sft_loss(model, text_ids, image_ids, is_image, text_target, image_target):
    embeds = model.get_input_embeddings()(text_ids)
    image_embeds = model.prepare_embeddings_for_image_generation(image_ids)
    embeds = torch.where(is_image[..., None], image_embeds, embeds)
    hidden = model.model.language_model(inputs_embeds=embeds).last_hidden_state
    text_mask, image_mask = text_target != IGNORE, image_target != IGNORE
    text_loss = F.cross_entropy(model.lm_head(hidden[text_mask]).float(), text_target[text_mask])
    image_loss = F.cross_entropy(model.model.generation_head(hidden[image_mask]).float(), image_target[image_mask])
    return text_loss + image_loss, text_loss, image_loss


def require_one_process(accelerator, command: str) -> None:
    """Refuse a multi-process launch of a trainer that is not data-parallel: every process would draw the same
    batches and update its own copy without syncing gradients — N times the compute for one process's result."""
    if accelerator.num_processes > 1:
        raise ValueError(f"gotr1-train {command} runs in one process (it is not data-parallel), but was launched "
                         f"with {accelerator.num_processes}: run it without accelerate launch / torchrun, on one "
                         "device (the built-in model's SFT takes about 2 minutes on one GPU)")


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def train_sft(config: SFTConfig, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> dict:
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(cpu=config.device == "cpu")
    require_one_process(accelerator, "sft")
    vq_config = load_config(VQConfig, Path(config.vq_run) / "config.yaml")
    scenes = generate_split("train", config.train_scenes, config.seed)
    chains = scene_chains(scenes, config.person_plans, config.free_coordinates, config.seed)
    model, tokenizer, spec = build_model(config, vq_config, scenes, chains)
    image_tokens = encode_images(load_image_tokenizer(config.vq_run, vq_config),
                                 torch.from_numpy(np.stack([s.render() for s in scenes])))
    examples = encode_examples(tokenizer, spec, scenes, chains, image_tokens)
    trainable = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trainable if p.ndim >= 2]
    no_decay = [p for p in trainable if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr, betas=(0.9, 0.98))

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
        return config.lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / config.steps)))

    start = 0
    if resume and (found := find_checkpoint(run_dir)) is not None:
        tensors, state = load_checkpoint(found)
        model.load_state_dict(tensors)
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        start = state["step"]
    save_config(config, run_dir / "config.yaml")
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    accelerator.unwrap_model(model).model.vqmodel.eval()  # frozen: no dropout/statistics updates
    log = MetricsLog(run_dir, accelerator.is_main_process)
    generator = torch.Generator()
    last = min(config.steps, stop_after or config.steps)
    bar = tqdm(range(start, last), initial=start, total=config.steps, disable=not progress, desc="sft")
    began = time.time()
    pad = tokenizer.pad_token_id
    for step in bar:
        generator.manual_seed(config.seed * 1_000_003 + step)  # the batch of a step depends only on (seed, step)
        pick = torch.randint(len(examples), (config.batch_size,), generator=generator)
        drop = torch.rand(config.batch_size, generator=generator) < config.uncond_prob
        batch = [t.to(accelerator.device) for t in collate([examples[i] for i in pick.tolist()], pad, drop)]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss, text_loss, image_loss = sft_loss(accelerator.unwrap_model(model), *batch)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if config.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if (step + 1) % config.log_every == 0:
            log.log(step + 1, {"train/loss": loss.item(), "train/text_loss": text_loss.item(),
                               "train/image_loss": image_loss.item(), "lr": lr_at(step)})
            bar.set_postfix(text=f"{text_loss.item():.3f}", image=f"{image_loss.item():.3f}")
        if ((step + 1) % config.save_every == 0 or step + 1 == last) and accelerator.is_main_process:
            save_checkpoint(run_dir, step + 1, accelerator.unwrap_model(model).state_dict(),
                            {"optimizer": optimizer.state_dict(), "rng": rng_state()}, config.keep_last)
    if last < config.steps:
        return {"stopped_at": last}
    trained = accelerator.unwrap_model(model).eval().requires_grad_(False)
    got = GotModel(model=trained, tokenizer=tokenizer, spec=spec,
                   token_ids=check_chain_tokens(tokenizer, spec.pad_token, spec.image_start_token))
    metrics = {"train/seconds": time.time() - began, "steps": config.steps}
    for split in EVALUATION_SPLITS:
        prompts = eval_prompts(f"shapeworld:{split}", config.eval_scenes)
        metrics.update(evaluate(got, ShapeWorldJudge(), prompts, seed=config.seed, prefix=f"{split}/"))
    log.log(config.steps, {k: v for k, v in metrics.items() if "/" in k})
    log.close()
    if accelerator.is_main_process:
        out = save_model(got, run_dir / "model", max_shard_size="100MB")
        card = {"name": "shapeworld-tiny", "trained_with": "gotr1-train sft", "git_commit": git_commit(),
                "seed": config.seed, "config": dataclasses.asdict(config),
                "vq_config": dataclasses.asdict(vq_config), "metrics": metrics,
                "vq_metrics": json.loads((Path(config.vq_run) / "vq_metrics.json").read_text())
                if (Path(config.vq_run) / "vq_metrics.json").exists() else None}
        (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return metrics
