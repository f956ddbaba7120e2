"""``gotr1-train vq``: train the image tokenizer (Janus' generation VQ) on ShapeWorld pictures.

The decoder and codebook are transformers' ``JanusVQVAE`` built from the same
config the full model uses; they ship inside the model and turn generated
tokens into pixels. Codes are compared by cosine similarity (both the encoder
output and the codebook are l2-normalised), which is exactly how ``decode``
reads the codebook at generation time, so trained tokens decode as they were
learned.

The encoder is :class:`PatchEncoder`: each 8x8 patch is embedded on its own,
so a token is a function of its patch only and the same picture piece always
gets the same token. (A convolutional encoder with attention spreads one white
patch over ~190 codes depending on what is around it, which the generator then
has to model — context it cannot see.) The encoder is only needed to make
training targets; it is saved in the VQ run (``patch_encoder.safetensors``),
not in the model, and ``JanusVQVAE.encoder`` inside the model is unused.
Loss: L1 reconstruction (pixels of patches holding an object weighted
``object_weight`` against empty background, which covers most of the canvas)
+ codebook + ``beta`` * commitment; codes left unused for ``restart_every``
steps are re-seeded from current encoder outputs.

Reports reconstruction error and the share of ground-truth scenes whose tokens
decode to a picture the exact judge calls correct.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from gotr1_core.model.configs import small_janus_config
from gotr1_core.rewards import ShapeWorldJudge
from gotr1_core.shapeworld.scenes import evaluation_scenes, generate_split

from .checkpoint import find_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import positive, save_config
from .metrics import MetricsLog


@dataclasses.dataclass
class VQConfig:
    output_dir: str
    seed: int = 0
    steps: int = 4000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 100
    grid_size: int = 8
    vq_levels: int = 4
    vq_channels: int = 32
    vq_multipliers: list[int] = dataclasses.field(default_factory=lambda: [1, 1, 2, 2])
    codebook_size: int = 256
    codebook_dim: int = 8
    beta: float = 0.25
    object_weight: float = 10.0
    restart_every: int = 200
    train_scenes: int = 8000
    eval_scenes: int = 300
    save_every: int = 500
    keep_last: int = 2
    log_every: int = 50
    device: str = "auto"

    def problems(self) -> list[str]:
        found = positive(self, "steps", "batch_size", "lr", "grid_size", "vq_levels", "vq_channels", "codebook_size",
                         "codebook_dim", "train_scenes", "eval_scenes", "save_every", "log_every", "restart_every")
        if self.vq_channels % 32:
            found.append(f"vq_channels: must be a multiple of 32, got {self.vq_channels}")
        if len(self.vq_multipliers) != self.vq_levels:
            found.append(f"vq_multipliers: needs {self.vq_levels} entries (one per level), got {self.vq_multipliers}")
        if self.warmup_steps < 0:
            found.append("warmup_steps: must be >= 0")
        return found

    def vq_config(self):
        config = small_janus_config(vocab_size=16, grid_size=self.grid_size, codebook_size=self.codebook_size,
                                    codebook_dim=self.codebook_dim, vq_channels=self.vq_channels,
                                    vq_levels=self.vq_levels, vq_multipliers=self.vq_multipliers)
        return config.vq_config


class PatchEncoder(torch.nn.Module):
    """Embeds every ``cell`` x ``cell`` patch independently: ``[B, 3, H, W] -> [B, dim, H/cell, W/cell]``."""

    def __init__(self, cell: int, dim: int, hidden: int = 256):
        super().__init__()
        self.cell = cell
        self.net = torch.nn.Sequential(torch.nn.Linear(3 * cell * cell, hidden), torch.nn.GELU(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.GELU(), torch.nn.Linear(hidden, dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        b, _, h, w = pixels.shape
        patches = F.unfold(pixels, self.cell, stride=self.cell).transpose(1, 2)  # [B, patches, 3*cell*cell]
        return self.net(patches).transpose(1, 2).reshape(b, -1, h // self.cell, w // self.cell)


class ImageTokenizer(torch.nn.Module):
    """What ``vq`` trains: the patch encoder (training targets) and the JanusVQVAE (codebook + decoder)."""

    def __init__(self, config: "VQConfig"):
        super().__init__()
        from transformers.models.janus.modeling_janus import JanusVQVAE

        self.vq = JanusVQVAE(config.vq_config())
        # one token per patch of the decoder's upsampling factor (2 per level after the first)
        self.patch_encoder = PatchEncoder(2 ** (config.vq_levels - 1), config.codebook_dim)


def build_vq(config: VQConfig) -> ImageTokenizer:
    torch.manual_seed(config.seed)
    return ImageTokenizer(config)


def load_image_tokenizer(run: str | Path, config: VQConfig) -> ImageTokenizer:
    """The trained tokenizer of a finished VQ run."""
    tokenizer = ImageTokenizer(config)
    tokenizer.vq.load_state_dict(load_file(str(Path(run) / "vq.safetensors")))
    tokenizer.patch_encoder.load_state_dict(load_file(str(Path(run) / "patch_encoder.safetensors")))
    return tokenizer.eval()


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B, H, W, 3]`` -> float ``[B, 3, H, W]`` in -1..1 (the VQ's pixel range)."""
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def quantise(tokenizer: ImageTokenizer, pixels: torch.Tensor):
    """Encoder output (normalised), the normalised codebook, and the nearest code per position (cosine)."""
    unit = F.normalize(tokenizer.patch_encoder(pixels), dim=1)
    codes = F.normalize(tokenizer.vq.quantize.embedding.weight, dim=1)
    flat = unit.permute(0, 2, 3, 1).reshape(-1, unit.shape[1])
    index = (flat @ codes.t()).argmax(dim=1)
    return unit, codes, index


@torch.no_grad()
def encode_images(tokenizer: ImageTokenizer, images: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Token ids ``[B, grid*grid]`` of uint8 images ``[B, H, W, 3]`` (row-major, as generation emits them)."""
    out = []
    device = tokenizer.vq.quantize.embedding.weight.device
    for chunk in images.split(batch):
        _, _, index = quantise(tokenizer, to_model_range(chunk.to(device)))
        out.append(index.view(chunk.shape[0], -1).cpu())
    return torch.cat(out)


@torch.no_grad()
def decode_tokens(vq, tokens: torch.Tensor) -> torch.Tensor:
    """Images ``[B, H, W, 3]`` in 0..1 from token ids, through the model's own decode path."""
    pixels = vq.decode(tokens.to(vq.quantize.embedding.weight.device))
    return ((pixels.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu()


def vq_loss(tokenizer: ImageTokenizer, pixels: torch.Tensor, beta: float, object_weight: float = 1.0):
    """Reconstruction (L1, pixels of patches that hold an object weighted ``object_weight`` against
    empty background patches) + codebook + ``beta`` * commitment."""
    unit, codes, index = quantise(tokenizer, pixels)
    chosen = codes[index].view(unit.shape[0], unit.shape[2], unit.shape[3], -1).permute(0, 3, 1, 2)
    codebook = F.mse_loss(chosen, unit.detach())
    commitment = F.mse_loss(unit, chosen.detach())
    straight = unit + (chosen - unit).detach()
    recon = tokenizer.vq.decoder(tokenizer.vq.post_quant_conv(straight))
    # Weight every pixel of a patch (one token's area) that holds part of an object, background included:
    # the white corners of a circle's patches are what tell it from a square, so they must count as much.
    cell = pixels.shape[-1] // unit.shape[-1]
    on_object = (pixels < 0.99).any(dim=1, keepdim=True).float()  # white background is 1.0 in every channel
    on_patch = F.interpolate(F.max_pool2d(on_object, cell), scale_factor=cell, mode="nearest")
    weight = 1.0 + (object_weight - 1.0) * on_patch
    reconstruction = ((recon - pixels).abs() * weight).mean() / weight.mean()
    return reconstruction + codebook + beta * commitment, reconstruction, index


def evaluate(tokenizer: ImageTokenizer, scenes) -> dict[str, float]:
    """Reconstruction error and judge-correctness of decoded ground-truth tokens."""
    images = torch.from_numpy(np.stack([s.render() for s in scenes]))
    tokens = encode_images(tokenizer, images)
    decoded = decode_tokens(tokenizer.vq, tokens)
    mse = float(((decoded - images.float() / 255) ** 2).mean())
    rewards = ShapeWorldJudge().score([s.prompt for s in scenes], [s.chain for s in scenes], None, decoded)
    return {"eval/mse": mse, "eval/correct": float(np.mean(rewards.correct)),
            "eval/total": float(np.mean(rewards.total)), "eval/codes_used": float(tokens.unique().numel())}


def train_vq(config: VQConfig, resume: bool = False, progress: bool = True, stop_after: int | None = None) -> dict:
    """Run (or resume) a VQ training run; returns the final metrics.

    ``stop_after`` ends this invocation after that step (with a checkpoint), as
    a time-limited job would; ``resume`` continues it to ``config.steps``.
    """
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(cpu=config.device == "cpu")
    tokenizer = build_vq(config)
    tokenizer.vq.encoder.requires_grad_(False)  # unused: targets come from the patch encoder
    tokenizer.vq.quant_conv.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in tokenizer.parameters() if p.requires_grad], lr=config.lr,
                                 betas=(0.9, 0.99))

    def lr_at(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
        return config.lr * warm * 0.5 * (1 + math.cos(math.pi * step / config.steps))

    start = 0
    usage = torch.zeros(config.codebook_size)
    if resume and (found := find_checkpoint(run_dir)) is not None:
        tensors, state = load_checkpoint(found)
        tokenizer.load_state_dict(tensors)
        optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        usage = state["usage"]
        start = state["step"]
    save_config(config, run_dir / "config.yaml")
    tokenizer, optimizer = accelerator.prepare(tokenizer, optimizer)
    tokenizer.train()

    # The tokenizer is the image vocabulary, so it sees the held-out colour-shape pairs: half its pictures are
    # compositions with them that are not evaluation scenes (rl_heldout); held-out pairs stay unseen by SFT only.
    # Zero-shot pairs it never sees; its evaluation pictures are the evaluation splits' fixed scenes.
    half = config.train_scenes // 2
    pictures = generate_split("train", half, config.seed) + \
        generate_split("rl_heldout", config.train_scenes - half, config.seed + 1000)
    train = torch.from_numpy(np.stack([s.render() for s in pictures]))
    held = evaluation_scenes("test", config.eval_scenes // 2) + \
        evaluation_scenes("heldout", config.eval_scenes - config.eval_scenes // 2)
    log = MetricsLog(run_dir, accelerator.is_main_process)
    generator = torch.Generator().manual_seed(config.seed)
    last = min(config.steps, stop_after or config.steps)
    bar = tqdm(range(start, last), initial=start, total=config.steps, disable=not progress, desc="vq")
    began = time.time()
    for step in bar:
        # The batch of step s depends only on (seed, s): a resumed run sees the same data.
        generator.manual_seed(config.seed * 1_000_003 + step)
        batch = train[torch.randint(len(train), (config.batch_size,), generator=generator)]
        pixels = to_model_range(batch.to(accelerator.device))
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss, reconstruction, index = vq_loss(tokenizer, pixels, config.beta, config.object_weight)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        usage += torch.bincount(index.cpu(), minlength=config.codebook_size)
        if (step + 1) % config.restart_every == 0:
            _restart_dead_codes(accelerator.unwrap_model(tokenizer), pixels, usage, generator)
            usage.zero_()
        if (step + 1) % config.log_every == 0:
            log.log(step + 1, {"train/loss": loss.item(), "train/l1": reconstruction.item(), "lr": lr_at(step)})
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % config.save_every == 0 or step + 1 == last:
            if accelerator.is_main_process:
                save_checkpoint(run_dir, step + 1, accelerator.unwrap_model(tokenizer).state_dict(),
                                {"optimizer": optimizer.state_dict(), "rng": rng_state(), "usage": usage},
                                config.keep_last)
    model = accelerator.unwrap_model(tokenizer).eval()
    if last < config.steps:
        return {"stopped_at": last}
    metrics = {**evaluate(model, held), "train/seconds": time.time() - began, "steps": config.steps}
    log.log(config.steps, {k: v for k, v in metrics.items() if k.startswith("eval/")})
    log.close()
    if accelerator.is_main_process:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.vq.state_dict().items()}, str(run_dir / "vq.safetensors"))
        save_file({k: v.contiguous() for k, v in model.patch_encoder.state_dict().items()},
                  str(run_dir / "patch_encoder.safetensors"))
        (run_dir / "vq_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


@torch.no_grad()
def _restart_dead_codes(tokenizer: ImageTokenizer, pixels: torch.Tensor, usage: torch.Tensor,
                        generator: torch.Generator) -> None:
    dead = torch.nonzero(usage == 0).squeeze(1)
    if dead.numel() == 0:
        return
    unit, _, _ = quantise(tokenizer, pixels)
    pool = unit.permute(0, 2, 3, 1).reshape(-1, unit.shape[1])
    pick = torch.randint(len(pool), (dead.numel(),), generator=generator)
    tokenizer.vq.quantize.embedding.weight[dead.to(pool.device)] = pool[pick.to(pool.device)]
