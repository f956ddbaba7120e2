"""Generation in chunks that fit the device: sized by the memory plan, halved when memory still runs out.

A batch of images is drawn in chunks of at most the number the memory plan
(:mod:`gotr1_core.memory`) fits into the memory that is free. If the device
still runs out — other programs, fragmentation, an estimate on the low side —
the chunk that failed is halved and tried again, down to one image, before a
clear error that names the model, its weights and the memory. Every image
draws from its own random stream (seed, index), so the result does not depend
on the chunking: chunks of any size give the images one call would.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from .generation import GenerationConfig, GenerationResult, PreviewCallback, ProgressCallback, generate
from .memory import human, largest_chunk, plan_memory, weight_bytes
from .model.loading import GotModel


def free_memory_bytes(device: torch.device) -> int | None:
    """Memory free for new tensors on ``device``: CUDA's free memory plus what torch holds cached; on the
    CPU the kernel's ``MemAvailable``; ``None`` where unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def weights_mode(got: GotModel) -> str:
    """The memory plan's name for how the model's weights are stored."""
    dtypes = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
    return got.extra.get("quantize") or dtypes[got.dtype]


def plan_options(got: GotModel, config: GenerationConfig, chain_given: bool, prompt_tokens: int) -> dict:
    """This generation on this model, as the memory plan's arguments (the checkpoint's defaults filled in)."""
    cfg = got.spec.cfg_scale if config.cfg_scale is None else config.cfg_scale
    return dict(weights=weights_mode(got), device=got.device.type, cfg=cfg != 1.0, prompt_tokens=prompt_tokens,
                reason_tokens=config.max_reason_tokens or got.spec.max_reason_tokens, chain_given=chain_given,
                model_name=got.path.name if got.path else "model")


def fitting_chunk(got: GotModel, images: int, config: GenerationConfig, chain_given: bool, prompt_tokens: int,
                  free_bytes: int | None) -> int:
    """The most images per chunk the plan fits into ``free_bytes`` beside the loaded weights (at most
    ``config.max_batch``); unknown free memory: ``config.max_batch``."""
    if free_bytes is None:
        return min(config.max_batch, images)
    options = plan_options(got, config, chain_given, prompt_tokens)
    weights = weight_bytes(got.model.config, options["weights"], options["device"])
    try:
        chunk = largest_chunk(got.model.config, free_bytes + weights, images, known_weight_bytes=weights, **options)
    except ValueError:
        chunk = 1  # the plan says even one may not fit: try it, and say so if it does not
    return max(1, min(chunk, config.max_batch, images))


def generate_fitting(got: GotModel, prompt: str, config: GenerationConfig, chains: str | None = None,
                     images: bool = True, chunk: int | None = None, free_bytes: int | None = None,
                     callback: ProgressCallback | None = None, preview: PreviewCallback | None = None,
                     log: Callable[[str], None] = print) -> GenerationResult:
    """``generate(got, prompt, config, chains)`` in chunks that fit (one prompt, ``config.num_samples`` images).

    ``chunk``: images per chunk to start with; default the plan's largest for
    ``free_bytes`` (default: what the device has free). On out-of-memory the
    failing chunk is halved and retried; a chunk of one that does not fit raises
    ``torch.OutOfMemoryError`` naming the model, weights mode and memory.
    """
    from .generation import encode_prompt

    total = config.num_samples
    if chunk is None:
        free = free_bytes if free_bytes is not None else free_memory_bytes(got.device)
        chunk = fitting_chunk(got, total, config, chains is not None, len(encode_prompt(got, prompt)), free)

    def run(start: int, size: int) -> GenerationResult:
        part_config = dataclasses.replace(config, num_samples=size, first_index=config.first_index + start,
                                          max_batch=size)
        return generate(got, prompt, part_config, chains=chains, images=images, callback=callback, preview=preview)

    def give_up() -> torch.OutOfMemoryError:
        free = free_memory_bytes(got.device)
        plan = plan_memory(got.model.config, 1, **plan_options(got, config, chains is not None,
                                                                len(encode_prompt(got, prompt))))
        return torch.OutOfMemoryError(
            f"{plan.model} ({plan.weights_mode} weights, {human(plan.weights)}) ran out of memory on "
            f"{got.device} generating one image (planned peak {human(plan.peak)}, free now "
            f"{human(free) if free is not None else 'unknown'}). Free memory (close other models), use "
            "smaller weights (fp8, int8, int4), or a device with more memory.")

    return GenerationResult.concat(in_halving_chunks(total, chunk, run, got.device, "images", give_up, log))


def in_halving_chunks(total: int, chunk: int, run: Callable[[int, int], object], device: torch.device, what: str,
                      give_up: Callable[[], Exception], log: Callable[[str], None] = print) -> list:
    """``[run(start, size), ...]`` over ``total`` items in chunks of at most ``chunk``, in order.

    A chunk that runs out of memory is halved and tried again (the console
    says so); when one item alone does not fit, ``give_up()`` is the error.
    """
    chunk = max(1, min(chunk, total))
    parts, done = [], 0
    while done < total:
        size = min(chunk, total - done)
        try:
            parts.append(run(done, size))
        except torch.OutOfMemoryError:
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if size == 1:
                raise give_up() from None
            chunk = size // 2
            log(f"[GoT-R1] out of memory with {size} {what} at once on {device}; retrying {chunk} at a time")
            continue
        done += size
    return parts
