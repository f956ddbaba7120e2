"""Shared pieces of the GRPO tests: a fast, learnable judge and a tiny run config."""

from __future__ import annotations

from pathlib import Path

from gotr1_core.rewards.base import Rewards
from trainer.grpo import GRPOConfig

PROMPTS = "a red circle\na blue square left of a green circle\ntwo cats on a sofa\n"
HELD_OUT = "a green triangle\nthree dogs\n"


class LongChainJudge:
    """Rewards longer chains (up to 80 characters). The tiny model's chains stop early (its stop
    token is boosted); holding that one logit back is learnable in a few GRPO steps."""

    name = "long-chain"

    def score(self, prompts, chains, layouts, images):
        long = [min(1.0, len(c) / 80) for c in chains]
        ones = [1.0] * len(chains)
        return Rewards(long, ones, ones, ones)


class EasyPromptJudge(LongChainJudge):
    """As :class:`LongChainJudge`, except that every sample of ``a red circle`` scores 1: its groups have zero
    advantage, the ones dynamic sampling replaces."""

    def score(self, prompts, chains, layouts, images):
        rewards = super().score(prompts, chains, layouts, images)
        rewards.r_sem = [1.0 if p == "a red circle" else r for p, r in zip(prompts, rewards.r_sem)]
        return rewards


def tiny_run_config(folder: Path, model: Path, **overrides) -> GRPOConfig:
    prompts = folder / "prompts.txt"
    prompts.write_text(PROMPTS, encoding="utf-8")
    held_out = folder / "held_out.txt"
    held_out.write_text(HELD_OUT, encoding="utf-8")
    options = dict(output_dir=str(folder / "run"), model=str(model), prompts=str(prompts), steps=6,
                   prompts_per_step=3, group_size=4, micro_batch=8, lr=1e-3, beta=0.01, eval_prompts=[str(held_out)],
                   eval_count=3, save_every=2, sample_every=0, device="cpu")
    options.update(overrides)
    return GRPOConfig(**options)
