"""Speculative Jacobi decoding of image tokens: the acceptance rule, in a few functions.

Stage 2 writes ``grid**2`` image tokens one forward pass each. Speculative
Jacobi decoding (SJD, Teng et al., arXiv 2410.01699) guesses the next ``W``
tokens (the *draft*), runs them through the model in one pass, and keeps the
longest run of guesses the model agrees with, plus one token of its own: one
pass then writes one token or more. Each guess ``x`` was drawn from a known
distribution ``q``; the pass gives the model's distribution ``p`` there.
Speculative sampling's rule keeps the output distributed exactly as
sequential sampling from ``p``:

* accept ``x`` with probability ``min(1, p(x) / q(x))``, in order, stopping at
  the first refusal;
* at the refused place draw from the residual ``max(0, p - q)`` (normalised):
  ``P(token = y) = q(y) min(1, p(y)/q(y)) + P(refuse) · residual(y) = p(y)``.

A place is only judged with ``p`` computed from accepted tokens before it, so
each ``p`` is the exact conditional. Greedy decoding (temperature 0) accepts a
guess when it is the model's most likely token and otherwise writes that
token: the tokens of sequential greedy decoding. Any ``q`` keeps the rule
exact, so the guesses are free to be good ones: how the image stage makes them
(the model's distribution where a pass saw it after accepted guesses, else
the token one grid row above as a point mass) is in
:func:`gotr1_core.generation._draw_jacobi`.
"""

from __future__ import annotations

import torch


def accepted_run(ok: torch.Tensor) -> torch.Tensor:
    """``[rows, W]`` booleans -> per row, how many leading drafts were accepted (stops at the first refusal)."""
    return ok.long().cumprod(dim=1).sum(dim=1)


def accept(draft: torch.Tensor, logp: torch.Tensor, logq: torch.Tensor, coins: torch.Tensor) -> torch.Tensor:
    """Which draft tokens pass the test ``u < p(x) / q(x)``.

    ``draft [rows, W]`` tokens, ``logp``/``logq`` ``[rows, W, vocab]`` the model's and the draft's
    log-probabilities at those places, ``coins [rows, W]`` uniform in (0, 1). A token ``q`` never draws
    cannot be a draft, so ``q(x) > 0``; where ``p(x) = 0`` (outside top-k, under the plausibility floor)
    the guess is refused.
    """
    lp = logp.gather(-1, draft[..., None]).squeeze(-1)
    lq = logq.gather(-1, draft[..., None]).squeeze(-1)
    return torch.log(coins) < lp - lq


def residual(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Log of ``max(0, p - q)`` normalised, over the last dimension: what to draw from at a refused place.

    Where ``p <= q`` everywhere (then ``p = q``, and a refusal cannot happen) it returns ``logp``.
    """
    left = (logp.exp() - logq.exp()).clamp(min=0)
    total = left.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, torch.log(left / total.clamp(min=1e-30)), logp)
