"""Per-token log-probabilities of generated sequences, recomputed by teacher forcing.

GRPO needs, for every token a rollout sampled, its log-probability under the
current policy (with gradients), under the policy that sampled it, and under
the reference model. This recomputes them in one batched forward — the
conditional rows ``prompt | chain | image tokens`` and, for image tokens with
CFG, the unconditional rows built exactly as generation builds them — and
returns them under the same distribution :func:`gotr1_core.generation.generate`
reports: text logits / text temperature; image logits combined by
:func:`gotr1_core.generation.guide` — ``uncond + cfg * (cond - uncond)`` with
the same plausibility floor (``cfg_plausibility``) the rollout sampled under —
then / image temperature (plain softmax where a temperature is 0). A token the
floor removed has log-probability -inf under both, so none was sampled. Top-k /
top-p filtering is not modelled: rollouts meant for training should not use it.
"""

from __future__ import annotations

import torch

from .generation import GenerationResult, chain_for_image, guide, unconditional_ids
from .model.loading import GotModel


def _scale(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return logits.float() / temperature if temperature > 0 else logits.float()


def _forward(got: GotModel, texts: list[list[int]], images: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Hidden states of right-padded ``text | image tokens`` rows; returns them and each text length."""
    model = got.model
    pad = got.token_ids.pad
    n_image = images.shape[1]
    lengths = [len(t) for t in texts]
    width = max(lengths) + n_image
    device = got.device
    text_ids = torch.full((len(texts), width), pad, dtype=torch.long, device=device)
    image_ids = torch.zeros((len(texts), width), dtype=torch.long, device=device)
    is_image = torch.zeros((len(texts), width), dtype=torch.bool, device=device)
    for i, (text, n) in enumerate(zip(texts, lengths)):
        text_ids[i, :n] = torch.tensor(text, device=device)
        image_ids[i, n:n + n_image] = images[i].to(device)
        is_image[i, n:n + n_image] = True
    embeds = model.get_input_embeddings()(text_ids)
    embeds = torch.where(is_image[..., None], model.prepare_embeddings_for_image_generation(image_ids), embeds)
    return model.model.language_model(inputs_embeds=embeds).last_hidden_state, lengths


def _entropy(lp: torch.Tensor) -> torch.Tensor:
    """Entropy of each row's distribution from its log-probabilities (0 where a token is impossible)."""
    return -(lp.exp() * lp.clamp(min=torch.finfo(lp.dtype).min)).sum(dim=-1)


def sequence_logprobs(got: GotModel, result: GenerationResult, entropy: bool = False):
    """``(reason_logprobs [N, R], image_logprobs [N, T])`` of a generation result's tokens, and with ``entropy``
    also the entropy of the whole next-token distribution at each of those positions (same shapes; what an
    entropy bonus differentiates).

    Runs with gradients when the caller has them enabled (the policy) and without
    under ``torch.no_grad()`` (old policy, reference). Positions outside
    ``result.reason_mask`` are 0.
    """
    settings = result.settings
    cfg, t_text, t_image = settings["cfg_scale"], settings["text_temperature"], settings["image_temperature"]
    reasons = [row[mask].tolist() for row, mask in zip(result.reason_ids, result.reason_mask)]
    conds = [p + chain_for_image(got, r) for p, r in zip(result.prompt_ids, reasons)]
    images = result.image_ids
    rows = conds + ([unconditional_ids(c, got.token_ids.pad) for c in conds] if cfg != 1.0 else [])
    hidden, lengths = _forward(got, rows, torch.cat([images, images]) if cfg != 1.0 else images)
    n, n_image = len(conds), images.shape[1]
    device = hidden.device

    reason_lp = torch.zeros(result.reason_ids.shape, dtype=torch.float32, device=device)
    reason_h = torch.zeros_like(reason_lp)
    image_lp, image_h = [], []
    head = got.model.model.generation_head
    for i in range(n):
        start = len(result.prompt_ids[i])
        if not result.chain_given and reasons[i]:
            logits = got.model.lm_head(hidden[i, start - 1:start - 1 + len(reasons[i])])
            lp = torch.log_softmax(_scale(logits, t_text), dim=-1)
            target = torch.tensor(reasons[i], device=device)
            reason_lp[i, :len(reasons[i])] = lp.gather(1, target[:, None]).squeeze(1)
            if entropy:
                reason_h[i, :len(reasons[i])] = _entropy(lp)
        end = lengths[i]
        logits = head(hidden[i, end - 1:end - 1 + n_image]).float()
        if cfg != 1.0:
            uncond = head(hidden[n + i, lengths[n + i] - 1:lengths[n + i] - 1 + n_image]).float()
            logits = guide(logits, uncond, cfg, settings.get("cfg_plausibility", 0.0))
        lp = torch.log_softmax(_scale(logits, t_image), dim=-1)
        image_lp.append(lp.gather(1, images[i].to(device)[:, None]).squeeze(1))
        if entropy:
            image_h.append(_entropy(lp))
    if entropy:
        return reason_lp, torch.stack(image_lp), reason_h, torch.stack(image_h)
    return reason_lp, torch.stack(image_lp)
