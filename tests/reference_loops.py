"""Naive reference generation: one row at a time, every step recomputed from scratch.

No KV cache, no padding, no batching — the plainest possible reading of the
GoT-R1 procedure. The fast implementation must produce the same tokens.
``pick(logits [1, V], step) -> (token, logprob)`` chooses each token.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def reason(got, prompt_ids: list[int], max_tokens: int, pick) -> tuple[list[int], list[float]]:
    stops = {got.token_ids.image_start, got.token_ids.eos}
    ids, out, lps = list(prompt_ids), [], []
    for step in range(max_tokens):
        logits = got.model(input_ids=torch.tensor([ids])).logits[:, -1]
        token, lp = pick(logits, step)
        out.append(token)
        lps.append(lp)
        ids.append(token)
        if token in stops:
            break
    return out, lps


@torch.no_grad()
def image_logits(got, text_ids: list[int], image_ids: list[int]) -> torch.Tensor:
    embeds = got.model.get_input_embeddings()(torch.tensor([text_ids]))
    if image_ids:
        image_embeds = got.model.prepare_embeddings_for_image_generation(torch.tensor([image_ids]))
        embeds = torch.cat([embeds, image_embeds], dim=1)
    hidden = got.model.model.language_model(inputs_embeds=embeds).last_hidden_state[:, -1]
    return got.model.model.generation_head(hidden)


@torch.no_grad()
def draw(got, cond_ids: list[int], cfg: float, pick) -> tuple[list[int], list[float]]:
    """Image tokens with CFG; the unconditional row is BOS + pads + image-start, as upstream builds it."""
    pad = got.token_ids.pad
    uncond_ids = [cond_ids[0]] + [pad] * (len(cond_ids) - 2) + [cond_ids[-1]]
    out, lps = [], []
    for step in range(got.num_image_tokens):
        cond = image_logits(got, cond_ids, out)
        logits = cond
        if cfg != 1.0:
            uncond = image_logits(got, uncond_ids, out)
            logits = uncond + cfg * (cond - uncond)
        token, lp = pick(logits, step)
        out.append(token)
        lps.append(lp)
    return out, lps


def greedy(logits: torch.Tensor, step: int) -> tuple[int, float]:
    token = int(torch.argmax(logits[0]))
    return token, float(torch.log_softmax(logits[0].float(), dim=-1)[token])
