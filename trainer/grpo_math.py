"""The GRPO objective, piece by piece, as GoT-R1 applies it to reasoning + image tokens.

For a prompt, G samples are drawn (a *group*); each sample ``i`` has a scalar
reward ``r_i`` and a sequence of generated tokens (its chain, then its image
tokens) with log-probabilities under the current policy (``logp``), under the
policy that sampled them (``old``), and under a frozen reference (``ref``).

1. Group-normalised advantage, shared by every token of a sample::

       A_i = (r_i - mean_g r) / (std_g r + eps)

   with the population standard deviation of the group. A group whose rewards
   are all equal carries no preference: its advantages are exactly 0.

2. Token-level clipped importance ratio (PPO's surrogate)::

       rho_t = exp(logp_t - old_t)
       L_clip_t = -min(rho_t * A, clip(rho_t, 1 - eps_c, 1 + eps_c) * A)

3. KL to the reference with the k3 estimator (unbiased, always >= 0)::

       KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1

4. Loss = mean over the valid tokens of the batch of ``L_clip_t + beta * KL_t``.
   Valid tokens are real generated tokens (no padding, nothing after the stop
   token) of the stages being trained.
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4) -> torch.Tensor:
    """``A_i = (r_i - mean_g) / (std_g + eps)`` for consecutive groups of ``group_size`` samples."""
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = rewards.float().view(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, unbiased=False, keepdim=True)
    centred = groups - mean
    safe = torch.where(std > 0, std + eps, torch.ones_like(std))  # equal rewards: 0 / 1, never 0 / 0
    return torch.where(std > 0, centred / safe, torch.zeros_like(centred)).view(-1)


def clipped_surrogate(logp: torch.Tensor, old: torch.Tensor, advantages: torch.Tensor,
                      clip_eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``-min(rho * A, clip(rho) * A)`` and where clipping decided the value.

    ``logp``/``old`` are ``[B, T]``; ``advantages`` is ``[B]`` (one per sample).
    """
    ratio = torch.exp(logp - old)
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_eps, 1 + clip_eps) * adv
    return -torch.minimum(unclipped, clipped), clipped < unclipped


def k3_kl(logp: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Per-token ``exp(ref - logp) - (ref - logp) - 1`` (>= 0, zero where the two agree)."""
    delta = ref - logp
    return torch.exp(delta) - delta - 1


def token_mask(reason_mask: torch.Tensor, image_mask: torch.Tensor, stages: str = "both") -> torch.Tensor:
    """Which tokens of ``[reasoning | image]`` enter the objective (``both``, ``reason`` or ``image``)."""
    if stages not in ("both", "reason", "image"):
        raise ValueError(f"stages must be 'both', 'reason' or 'image', got {stages!r}")
    reason = reason_mask if stages in ("both", "reason") else torch.zeros_like(reason_mask)
    image = image_mask if stages in ("both", "image") else torch.zeros_like(image_mask)
    return torch.cat([reason, image], dim=1).bool()


def grpo_loss(logp: torch.Tensor, old: torch.Tensor, ref: torch.Tensor | None, advantages: torch.Tensor,
              mask: torch.Tensor, clip_eps: float = 0.2, beta: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Mean over valid tokens of ``L_clip + beta * KL``; returns the loss and its parts for logging."""
    surrogate, clipped = clipped_surrogate(logp, old, advantages, clip_eps)
    per_token = surrogate
    kl = torch.zeros_like(logp)
    if ref is not None and beta:
        kl = k3_kl(logp, ref)
        per_token = per_token + beta * kl
    weights = mask.float()
    count = weights.sum().clamp(min=1.0)
    loss = (per_token * weights).sum() / count
    with torch.no_grad():
        stats = {"kl": ((kl * weights).sum() / count).item(),
                 "clip_fraction": ((clipped.float() * weights).sum() / count).item(),
                 "surrogate": ((surrogate * weights).sum() / count).item()}
    return loss, stats
