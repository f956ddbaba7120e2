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
       L_clip_t = -min(rho_t * A, clip(rho_t, 1 - eps_low, 1 + eps_high) * A)

   ``eps_high > eps_low`` is DAPO's *clip-higher* (arXiv 2503.14476, §3.1):
   a low-probability token with positive advantage may grow further before its
   gradient is cut, which keeps exploration alive (entropy from collapsing).

3. KL to the reference with the k3 estimator (unbiased, always >= 0)::

       KL_t = exp(ref_t - logp_t) - (ref_t - logp_t) - 1

4. Optional entropy bonus ``- c * H_t``, with ``H_t`` the entropy of the
   policy's whole next-token distribution at ``t`` (not of the sampled token).

5. Loss = ``sum_t w_t * (L_clip_t + beta * KL_t - c * H_t)`` over the valid
   tokens (real generated tokens of the stages being trained), with weights
   :func:`token_weights` that sum to 1 over the step's batch:

   * ``token``: ``w_t = 1 / (tokens in the batch)`` — every token counts the
     same (DAPO's token-level mean, §3.3);
   * ``sample``: ``w_t = 1 / (|o_i| * samples in the batch)`` — the mean over
     samples of each sample's token mean, as GRPO is written in DeepSeekMath
     (arXiv 2402.03300, eq. 3) and GoT-R1.
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
                      clip_eps: float, clip_eps_high: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token ``-min(rho * A, clip(rho, 1 - clip_eps, 1 + clip_eps_high) * A)`` and where clipping decided it.

    ``logp``/``old`` are ``[B, T]``; ``advantages`` is ``[B]`` (one per sample); ``clip_eps_high`` defaults to
    ``clip_eps`` (symmetric clipping).
    """
    high = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logp - old)
    adv = advantages[:, None]
    unclipped = ratio * adv
    clipped = ratio.clamp(1 - clip_eps, 1 + high) * adv
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


LOSS_NORMALISATIONS = ("token", "sample")


def token_weights(mask: torch.Tensor, normalisation: str, total_tokens: float | torch.Tensor | None = None,
                  total_samples: float | torch.Tensor | None = None) -> torch.Tensor:
    """Each token's weight in the loss (see the module docstring): ``mask / total_tokens`` (``token``) or
    ``mask / (tokens of its row * total_samples)`` (``sample``). The totals default to this batch's; a step split
    over micro-batches and processes passes the whole step's, so the pieces add up to one full-batch loss."""
    weights = mask.float()
    if normalisation == "token":
        total = weights.sum() if total_tokens is None else total_tokens
        return weights / torch.as_tensor(total, dtype=weights.dtype).clamp(min=1.0)
    if normalisation == "sample":
        per_row = weights.sum(dim=1, keepdim=True)
        samples = (per_row > 0).sum() if total_samples is None else total_samples
        return weights / per_row.clamp(min=1.0) / torch.as_tensor(samples, dtype=weights.dtype).clamp(min=1.0)
    raise ValueError(f"loss normalisation must be one of {', '.join(LOSS_NORMALISATIONS)}, got {normalisation!r}")


def grpo_loss(logp: torch.Tensor, old: torch.Tensor, ref: torch.Tensor | None, advantages: torch.Tensor,
              mask: torch.Tensor, clip_eps: float = 0.2, beta: float = 0.0, clip_eps_high: float | None = None,
              weights: torch.Tensor | None = None, entropy: torch.Tensor | None = None,
              entropy_coef: float = 0.0) -> tuple[torch.Tensor, dict]:
    """``sum_t w_t (L_clip_t + beta KL_t - entropy_coef H_t)``; returns the loss and its parts for logging (each a
    weighted mean over this batch's tokens). ``weights`` default to the token-level mean of ``mask``."""
    surrogate, clipped = clipped_surrogate(logp, old, advantages, clip_eps, clip_eps_high)
    per_token = surrogate
    kl = torch.zeros_like(logp)
    if ref is not None and beta:
        kl = k3_kl(logp, ref)
        per_token = per_token + beta * kl
    if entropy is not None and entropy_coef:
        per_token = per_token - entropy_coef * entropy
    weights = token_weights(mask, "token") if weights is None else weights * mask.float()
    loss = (per_token * weights).sum()
    with torch.no_grad():
        share = weights.sum().clamp(min=1e-12)
        stats = {"kl": ((kl * weights).sum() / share).item(),
                 "clip_fraction": ((clipped.float() * weights).sum() / share).item(),
                 "surrogate": ((surrogate * weights).sum() / share).item()}
        if entropy is not None:
            stats["entropy"] = ((entropy * weights).sum() / share).item()
    return loss, stats
