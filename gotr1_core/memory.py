"""How much memory a generation needs, before it runs: weights, key/value cache, activations, VQ decode.

Out-of-memory is the failure people meet first with Janus-Pro / GoT-R1: the
7B model's weights alone are ~14 GB in bf16, and the key/value cache of 16
images with CFG (32 rows of ~1,300 tokens) adds ~19 GB. :func:`plan_memory`
computes, from a model config and the generation's shape, the bytes each part
takes *as this package allocates them*:

* **weights** — every loaded parameter and buffer, in the storage of the
  weights mode (generation-only loading: the understanding path is not
  counted);
* **key/value cache** — the preallocated buffers of
  :class:`~gotr1_core.decoding.Decoder` for each stage, with a prefix that
  several rows continue stored once (the prompt of the chains; one given chain
  and its unconditional row for all images);
* **activations** — the largest transient tensors of a stage: the prefill
  (hidden states, MLP, attention scores, masks) or a decoding step (logits in
  float32 over the vocabulary or the image codebook);
* **VQ decode** — the decoder's feature maps for the images decoded at once.

The peak is the weights plus the largest of the three stages (chains, image
tokens, decoding); :func:`largest_chunk` finds how many images fit a budget.
"""

from __future__ import annotations

import dataclasses

from .model.quantize import QUANTIZED_MODES, WEIGHT_MODES, is_quantized_layer, quantized_bytes

TYPICAL_PROMPT_TOKENS = 48


def _element_bytes(dtype: str) -> int:
    return {"fp32": 4, "bf16": 2, "fp16": 2}[dtype]


def compute_dtype(mode: str, device: str) -> str:
    """What the arithmetic (and the key/value cache) runs in for a weights mode on a device."""
    if mode not in WEIGHT_MODES:
        raise ValueError(f"unknown weights mode {mode!r}; use one of {', '.join(WEIGHT_MODES)}")
    if mode in ("bf16", "fp16", "fp32"):
        return mode
    return "bf16" if device == "cuda" else "fp32"


@dataclasses.dataclass(frozen=True)
class Stage:
    """A decoding stage's batch: ``rows`` continue ``unique`` prefilled rows of ``width`` tokens by ``extra``."""

    rows: int
    unique: int
    width: int
    extra: int


def kv_cache_bytes(stage: Stage, layers: int, kv_heads: int, head_dim: int, element: int) -> tuple[int, int]:
    """(held while decoding, peak while setting up) key/value bytes of a stage, as ``Decoder`` allocates.

    The prefill writes ``unique`` rows into buffers sized for every token to
    come. When rows repeat (at least two per prefilled row) the prefix is
    kept once and each row gets a buffer for its own tokens; otherwise the
    prefilled rows are copied out to every row.
    """
    per_token = 2 * layers * kv_heads * head_dim * element  # keys and values, every layer
    prefill = stage.unique * (stage.width + stage.extra)
    if stage.unique == stage.rows:
        return prefill * per_token, prefill * per_token
    if 2 * stage.unique <= stage.rows:
        held = stage.unique * stage.width + stage.rows * stage.extra
        return held * per_token, max(prefill + stage.unique * stage.width, held) * per_token
    held = stage.rows * (stage.width + stage.extra)
    return held * per_token, (prefill + held) * per_token


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """Bytes of each part of a generation of ``images`` images (``chunk`` at a time)."""

    model: str
    weights_mode: str
    device: str
    images: int
    chunk: int
    weights: int
    kv_cache: int                 # the larger stage's held key/value buffers
    activations: int              # the larger stage's transient tensors
    vq_decode: int
    stage_peaks: dict             # stage -> bytes beyond the weights

    @property
    def peak(self) -> int:
        return self.weights + max(self.stage_peaks.values())

    def table(self, budget: int | None = None) -> str:
        rows = [("weights", self.weights), ("key/value cache", self.kv_cache), ("activations", self.activations),
                ("VQ decode", self.vq_decode), ("peak (weights + largest stage)", self.peak)]
        lines = [f"{self.model}: {self.images} image(s), {self.chunk} per chunk, weights {self.weights_mode} "
                 f"on {self.device}"]
        lines += [f"  {name:<32}{human(value):>10}" for name, value in rows]
        if budget is not None:
            lines.append(f"  {'budget':<32}{human(budget):>10}")
        return "\n".join(lines)


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def parse_bytes(text: str) -> int:
    """``12GB``, ``800 MB``, ``1.5GiB`` or a plain number of bytes."""
    units = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "mb": 1024 ** 2, "mib": 1024 ** 2, "gb": 1024 ** 3,
             "gib": 1024 ** 3, "tb": 1024 ** 4, "tib": 1024 ** 4}
    raw = str(text).strip().lower().replace(" ", "")
    number = raw.rstrip("kmgtib")
    unit = raw[len(number):]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise ValueError(f"cannot read a memory size from {text!r}; write it like 12GB or 800MB")
    return int(value * units[unit])


# -- parameters --------------------------------------------------------------------------------

def weight_bytes(config, mode: str = "auto", device: str = "cuda", understanding: bool = False,
                 compute: str | None = None) -> int:
    """Bytes of the parameters and buffers a model of ``config`` holds when loaded in ``mode``.

    The decoder layers' projections are stored as the mode says
    (:func:`~gotr1_core.model.quantize.quantized_bytes`: fp8 and int8 one
    byte per weight and a float32 scale per row, int4 NF4 half a byte and its
    block statistics); everything else is in the compute dtype (``compute``
    where the loader is given one, else the mode's on ``device``).
    """
    from .model.loading import UNDERSTANDING, build_skeleton, within

    element = _element_bytes(compute or compute_dtype(mode, device))
    skeleton = build_skeleton(config)  # parameters on the meta device: sizes without memory
    total, seen = 0, set()
    for name, module in skeleton.named_modules():
        if not understanding and within(name, UNDERSTANDING):
            continue
        for pname, param in module.named_parameters(recurse=False):
            if id(param) in seen:  # tied weights are stored once
                continue
            seen.add(id(param))
            quantized = mode in QUANTIZED_MODES and pname == "weight" and is_quantized_layer(name)
            total += quantized_bytes(param.shape, mode) if quantized else param.numel() * element
        for buffer in module.buffers(recurse=False):
            total += buffer.numel() * (element if buffer.is_floating_point() else buffer.element_size())
    return total


# -- the plan ------------------------------------------------------------------------------------

def _text(config):
    """The language model's config, its key/value heads and head size."""
    text = config.text_config
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    return text, text.num_key_value_heads, head_dim


def _stage_activations(config, stage: Stage, element: int, vocabulary: int) -> int:
    """Largest transient bytes of a stage: its prefill or one decoding step, whichever is larger."""
    text = config.text_config
    hidden, inner = text.hidden_size, text.intermediate_size
    u, w = stage.unique, stage.width
    # one layer at a time: its attention (residual, normed input, q/k, v, output) or its MLP (residual, normed
    # input, gate, activation, up, product); fused attention kernels never hold the [w, w] scores
    per_token = max(5 * hidden, 2 * hidden + 3 * inner) * element
    prefill = (u * w * per_token
               + u * w * w * element                                 # the additive prefill mask
               + u * text.vocab_size * element)                      # logits of each row's last position
    step = stage.rows * per_token + 3 * stage.rows * vocabulary * 4  # + logits in float32, sampled
    masks = stage.rows * (stage.width + stage.extra) * element        # the step mask, kept for the stage
    return max(prefill, step) + masks


def vq_decode_bytes(config, images: int, element: int) -> int:
    """The VQ decoder's feature maps for ``images`` decoded at once: at the widest resolution a residual
    block holds its input, normalised and activated copies, two convolution outputs and the sum (seven maps,
    as measured on the CPU)."""
    vq = config.vq_config
    side = vq.num_patches
    multipliers = list(vq.channel_multiplier)
    largest = 0
    for level, multiplier in enumerate(reversed(multipliers)):
        channels = vq.base_channels * multiplier
        largest = max(largest, 7 * channels * (side * 2 ** level) ** 2)
    final = 3 * (side * 2 ** (len(multipliers) - 1)) ** 2 * 4  # the float32 image
    return images * (largest * element + final)


def plan_memory(config, images: int = 1, weights: str = "auto", device: str = "cuda", cfg: bool = True,
                prompt_tokens: int = TYPICAL_PROMPT_TOKENS, reason_tokens: int = 600, chain_given: bool = False,
                chunk: int | None = None, model_name: str = "model", understanding: bool = False,
                known_weight_bytes: int | None = None) -> MemoryPlan:
    """The memory of generating ``images`` images of one prompt, ``chunk`` at a time (default: all at once).

    ``reason_tokens``: the chain budget (or, with ``chain_given``, the given
    chain's length). Worst case for sampled chains: every chain of a different
    length, so no unconditional row repeats. A given chain is one prefix for
    every image (and one for its unconditional rows). ``known_weight_bytes``:
    :func:`weight_bytes` of the same config and mode, already counted (it walks
    a whole model skeleton; a search over chunk sizes counts it once).
    """
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    chunk = min(chunk or images, images)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    element = _element_bytes(compute_dtype(weights, device))
    text, kv_heads, head_dim = _text(config)
    layers = text.num_hidden_layers
    image_tokens = config.vq_config.num_patches ** 2
    codebook = config.vq_config.num_embeddings
    stages: dict[str, tuple[Stage, int]] = {}
    if not chain_given:
        stages["chains"] = (Stage(chunk, 1, prompt_tokens, reason_tokens), text.vocab_size)
    width = prompt_tokens + reason_tokens + 1  # + the image-start token
    halves = 2 if cfg else 1
    unique = halves if chain_given else halves * chunk
    stages["image tokens"] = (Stage(halves * chunk, unique, width, image_tokens), codebook)
    # a quantized layer computes with its weight cast to the compute dtype, one layer at a time
    dequantized = text.hidden_size * text.intermediate_size * element if weights in QUANTIZED_MODES else 0
    peaks, kv_held, acts = {}, {}, {}
    for name, (stage, vocabulary) in stages.items():
        held, setup = kv_cache_bytes(stage, layers, kv_heads, head_dim, element)
        kv_held[name], acts[name] = held, _stage_activations(config, stage, element, vocabulary) + dequantized
        peaks[name] = max(setup, held + acts[name])
    decode = vq_decode_bytes(config, chunk, element)
    peaks["VQ decode"] = decode
    largest = max(kv_held, key=kv_held.get)
    if known_weight_bytes is None:
        known_weight_bytes = weight_bytes(config, weights, device, understanding)
    return MemoryPlan(model=model_name, weights_mode=weights, device=device, images=images, chunk=chunk,
                      weights=known_weight_bytes, kv_cache=kv_held[largest],
                      activations=max(acts.values()), vq_decode=decode, stage_peaks=peaks)


def largest_chunk(config, budget: int, images: int, **options) -> int:
    """The most images per chunk whose plan fits ``budget`` bytes (weights included); raises if not one does."""
    one = plan_memory(config, images, chunk=1, **options)
    if one.peak > budget:
        raise ValueError(f"{one.model} needs {human(one.peak)} for one image with weights {one.weights_mode} "
                         f"(weights alone {human(one.weights)}); the budget is {human(budget)}. Use a smaller "
                         "weights mode (fp8, int8, int4) or a device with more memory")
    low, high = 1, images
    while low < high:  # the peak grows with the chunk
        middle = (low + high + 1) // 2
        if plan_memory(config, images, chunk=middle, **{**options, "known_weight_bytes": one.weights}).peak <= budget:
            low = middle
        else:
            high = middle - 1
    return low


# -- published models ------------------------------------------------------------------------------

PUBLISHED = {  # the language model of each (DeepSeek-LLM 1.3B / 7B); Janus-Pro's SigLIP-L tower and VQ
    "GoT-R1-1B": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=24, num_attention_heads=16),
    "GoT-R1-7B": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=30, num_attention_heads=32),
}


def published_config(name: str):
    """The ``JanusConfig`` of a published GoT-R1 / Janus-Pro size (for plans without the weights)."""
    from transformers import JanusConfig

    if name not in PUBLISHED:
        raise ValueError(f"no published config {name!r}; known: {', '.join(PUBLISHED)}")
    text = PUBLISHED[name]
    hidden = text["hidden_size"]
    return JanusConfig(
        text_config=dict(model_type="llama", vocab_size=102400, max_position_embeddings=16384,
                         num_key_value_heads=text["num_attention_heads"], **text),
        vision_config=dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, image_size=384,
                           patch_size=16, mlp_ratio=4.0, projection_dim=hidden, depth=2),
        vq_config=dict(num_embeddings=16384, embed_dim=8, base_channels=128, channel_multiplier=[1, 1, 2, 2, 4],
                       num_res_blocks=2, projection_dim=hidden, image_token_embed_dim=hidden, num_patches=24),
    )
