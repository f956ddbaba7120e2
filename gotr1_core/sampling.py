"""Token sampling with per-row, batch-independent randomness and no host syncs.

Each row of a batch owns a 32-bit key derived from its seed and its sample
index (:func:`sample_key`): image *i* of seed *s* is the same whatever the
batch size or chunking, and neighbouring seeds give unrelated batches (a key
from ``seed + i`` would make image 1 of seed 0 equal image 0 of seed 1). The noise for
step ``t`` and vocabulary entry ``v`` is a hash of ``(key, stream, t, v)``, so
sample *i* of a seed draws the same noise whether it runs alone, in a batch of
64, or after other rows finished — and all rows are sampled by one vectorised
op. Sampling uses the Gumbel-max trick: ``argmax(log p + g)`` with
``g = -log(-log u)`` draws exactly from ``p``.

The log-probability returned for each token is taken under the distribution
actually sampled from (after temperature and top-k / top-p); with temperature
0 (greedy) it is under the plain softmax. The GRPO trainer recomputes the same
quantity for its importance ratios.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
_MUL = 0x45D9F3B  # < 2**31: products of 32-bit values stay inside int64
STREAM_REASON = 0
STREAM_IMAGE = 1
STREAM_DRAFT = 2  # speculative decoding's guesses
STREAM_CHECK = 3  # its acceptance coins and the draws at refused places


def _hash32_int(x: int) -> int:
    x &= MASK32
    x = (((x >> 16) ^ x) * _MUL) & MASK32
    x = (((x >> 16) ^ x) * _MUL) & MASK32
    return (x >> 16) ^ x


def hash32(x: torch.Tensor) -> torch.Tensor:
    """Integer hash of an int64 tensor holding 32-bit values (same as :func:`_hash32_int`)."""
    x = (((x >> 16) ^ x) * _MUL) & MASK32
    x = (((x >> 16) ^ x) * _MUL) & MASK32
    return (x >> 16) ^ x


def row_key(seed: int) -> int:
    """A 32-bit key for any Python int seed (ComfyUI seeds go up to 2**64 - 1)."""
    seed &= (1 << 64) - 1
    return _hash32_int((seed & MASK32) ^ _hash32_int((seed >> 32) ^ 0x2545F491))


def sample_key(seed: int, index: int) -> int:
    """The 32-bit key of sample ``index`` (0, 1, ...) drawn with ``seed``: a hash of both."""
    return _hash32_int(row_key(seed) ^ _hash32_int((index & MASK32) ^ 0x632BE5AB))


def row_keys(seeds: list[int], indices: list[int], device: torch.device | str = "cpu") -> torch.Tensor:
    return torch.tensor([sample_key(s, i) for s, i in zip(seeds, indices)], dtype=torch.int64, device=device)


class NoiseSource:
    """Uniform noise in (0, 1) for ``[rows, vocab]`` at a given step, from row keys."""

    def __init__(self, vocab_size: int, device: torch.device):
        self.vocab_hash = hash32(torch.arange(vocab_size, dtype=torch.int64, device=device) ^ 0x68E31DA4)

    def uniform(self, keys: torch.Tensor, step: int, stream: int) -> torch.Tensor:
        step_key = _hash32_int(step * 4 + stream + 0x1B873593)
        base = hash32(keys ^ step_key)
        bits = hash32(base[:, None] ^ self.vocab_hash[None, :]) >> 8  # 24 bits: exact in float32
        return (bits.to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """Set logits outside the top-k / nucleus (top-p) to -inf; the best token always survives."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the mass before it already reaches top_p.
        drop_sorted = (torch.cumsum(probs, dim=-1) - probs) >= top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def distribution(logits: torch.Tensor, temperature: float, top_k: int | None = None,
                 top_p: float | None = None) -> torch.Tensor:
    """Log-probabilities of the distribution a token is drawn from: after temperature and top-k / top-p; for
    greedy decoding (temperature <= 0) the plain softmax. Any leading shape ``[..., vocab]``."""
    shape = logits.shape
    logits = logits.float().reshape(-1, shape[-1])
    if temperature > 0:
        logits = filter_logits(logits / temperature, top_k, top_p)
    return torch.log_softmax(logits, dim=-1).view(shape)


def gumbel(noise: NoiseSource, keys: torch.Tensor, step: int, stream: int) -> torch.Tensor:
    """Gumbel noise ``[rows, vocab]``: ``argmax(logp + gumbel)`` draws a token from ``exp(logp)``."""
    return -torch.log(-torch.log(noise.uniform(keys, step, stream)))


def sample(
    logits: torch.Tensor,
    temperature: float,
    keys: torch.Tensor,
    step: int,
    stream: int,
    noise: NoiseSource,
    top_k: int | None = None,
    top_p: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row; returns ``(tokens [B], logprobs [B])``. Greedy when temperature <= 0."""
    logprobs = distribution(logits, temperature, top_k, top_p)
    if temperature <= 0:
        tokens = torch.argmax(logits, dim=-1)
    else:
        tokens = torch.argmax(logprobs + gumbel(noise, keys, step, stream), dim=-1)
    return tokens, logprobs.gather(1, tokens[:, None]).squeeze(1)
