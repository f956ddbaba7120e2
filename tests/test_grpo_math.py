"""GRPO pieces pinned on hand-computed numbers."""

import math

import pytest
import torch

from trainer.grpo_math import clipped_surrogate, group_advantages, grpo_loss, k3_kl, token_mask, token_weights


def test_group_advantages_by_hand():
    # Group 1: rewards 0, 1, 2, 3 -> mean 1.5, population std sqrt(1.25) = 1.118034
    # Group 2: all 2.0 -> no preference: zeros.
    adv = group_advantages(torch.tensor([0.0, 1.0, 2.0, 3.0, 2.0, 2.0, 2.0, 2.0]), group_size=4, eps=0.0)
    std = math.sqrt(1.25)
    assert adv[:4].tolist() == pytest.approx([-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std])
    assert adv[4:].tolist() == [0.0, 0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(torch.zeros(4), 3)


def test_group_advantages_eps():
    # Rewards 0 and 2: mean 1, std 1; with eps 1 the advantages halve.
    assert group_advantages(torch.tensor([0.0, 2.0]), 2, eps=1.0).tolist() == pytest.approx([-0.5, 0.5])


def test_clipped_surrogate_by_hand():
    # ratio = exp(logp - old): e^0 = 1, e^{ln 1.5} = 1.5, e^{ln 0.5} = 0.5 ; clip 0.2 -> [0.8, 1.2]
    logp = torch.log(torch.tensor([[1.0, 1.5, 0.5], [1.0, 1.5, 0.5]]))
    old = torch.zeros(2, 3)
    adv = torch.tensor([2.0, -1.0])
    loss, clipped = clipped_surrogate(logp, old, adv, clip_eps=0.2)
    # A = 2: min(1*2, 1*2)=2; min(1.5*2, 1.2*2)=2.4 (clipped); min(0.5*2, 0.8*2)=1.0 (not clipped)
    # A = -1: min(-1, -1)=-1; min(-1.5, -1.2)=-1.5 (not clipped); min(-0.5, -0.8)=-0.8 (clipped)
    assert loss.tolist() == [pytest.approx([-2.0, -2.4, -1.0]), pytest.approx([1.0, 1.5, 0.8])]
    assert clipped.tolist() == [[False, True, False], [False, False, True]]


def test_k3_kl_by_hand():
    logp = torch.tensor([0.0, -1.0, -2.0])
    ref = torch.tensor([0.0, -2.0, -1.0])
    # delta = ref - logp = 0, -1, +1 -> e^0-0-1 = 0; e^-1+1-1 = 0.367879; e^1-1-1 = 0.718282
    assert k3_kl(logp, ref).tolist() == pytest.approx([0.0, math.exp(-1), math.e - 2])
    assert (k3_kl(torch.randn(100), torch.randn(100)) >= 0).all()


def test_token_mask_stages():
    reason = torch.tensor([[1, 1, 0]])
    image = torch.tensor([[1, 1]])
    assert token_mask(reason, image).tolist() == [[True, True, False, True, True]]
    assert token_mask(reason, image, "reason").tolist() == [[True, True, False, False, False]]
    assert token_mask(reason, image, "image").tolist() == [[False, False, False, True, True]]
    with pytest.raises(ValueError, match="stages"):
        token_mask(reason, image, "text")


def test_grpo_loss_masks_and_kl_by_hand():
    logp = torch.log(torch.tensor([[1.0, 1.5, 9.0]]))  # third token is padding: ignored whatever its value
    old = torch.zeros(1, 3)
    ref = torch.log(torch.tensor([[1.0, 1.0, 1.0]]))
    mask = torch.tensor([[True, True, False]])
    loss, stats = grpo_loss(logp, old, ref, torch.tensor([2.0]), mask, clip_eps=0.2, beta=0.5)
    # surrogate: -2, -2.4 ; kl: 0 and e^{-ln 1.5} + ln 1.5 - 1 = 0.0721318
    kl2 = 1 / 1.5 + math.log(1.5) - 1
    assert float(loss) == pytest.approx((-2.0 + -2.4 + 0.5 * kl2) / 2)
    assert stats["clip_fraction"] == pytest.approx(0.5) and stats["kl"] == pytest.approx(kl2 / 2)
    # Without beta, the reference is not needed and contributes nothing.
    plain, _ = grpo_loss(logp, old, None, torch.tensor([2.0]), mask, clip_eps=0.2)
    assert float(plain) == pytest.approx(-2.2)


def test_gradient_pushes_up_good_samples():
    logp = torch.zeros(2, 4, requires_grad=True)
    loss, _ = grpo_loss(logp, logp.detach(), None, torch.tensor([1.0, -1.0]), torch.ones(2, 4, dtype=torch.bool))
    loss.backward()
    assert (logp.grad[0] < 0).all() and (logp.grad[1] > 0).all()  # descent raises logp of the better sample


def test_rollout_variety_by_hand():
    """Entropy from the sampled tokens' log-probs (masked reasoning tokens only) and distinct plans per group, the
    plans compared as the world draws them."""
    from types import SimpleNamespace

    from gotr1_core.layout import Layout
    from trainer.grpo import rollout_variety, variety_stats

    def plan(x):
        return Layout.from_chain(f"<|obj_start|>red circle<|obj_end|><|box_start|>({x},100),({x + 300},400)<|box_end|>")

    result = SimpleNamespace(
        prompts=["a red circle"] * 4,
        layouts=[plan(100), plan(101), plan(500), plan(500)],  # 101 is drawn as 100: group 1 has 1 plan, group 2 one
        reason_mask=torch.tensor([[True, True, False]] * 4),
        reason_logprobs=torch.tensor([[-1.0, -2.0, -9.0]] * 4),  # the masked -9 is not a token
        image_logprobs=torch.tensor([[-0.5, -1.5]] * 4))
    sums = rollout_variety(result, group_size=2)
    assert sums == {"chain_nll": 12.0, "chain_tokens": 8.0, "image_nll": 8.0, "image_tokens": 8.0,
                    "distinct_plans": 2.0, "groups": 2.0}
    assert variety_stats(sums) == {"policy/entropy_chain": 1.5, "policy/entropy_image": 1.0,
                                   "policy/distinct_plans": 1.0}
    result.layouts[3] = plan(700)
    assert variety_stats(rollout_variety(result, 2))["policy/distinct_plans"] == 1.5


def test_zero_advantage_groups_counts_groups_not_samples():
    """Group 1 (totals 0, 0.5, 1) has a preference, though its middle sample has advantage 0; group 2 (all 0.5)
    has none. Half the groups, not two thirds of the samples."""
    from gotr1_core.rewards.base import Rewards
    from trainer.grpo import reward_stats, zero_advantage

    totals = [0.0, 0.5, 1.0, 0.5, 0.5, 0.5]  # r_pi, with r_sem = r_ri = 1 and r_spa = 0
    rewards = Rewards([1.0] * 6, [0.0] * 6, [1.0] * 6, totals)
    advantages = group_advantages(torch.tensor(totals), 3)
    assert (advantages == 0).sum() == 4  # the middle sample of group 1, and all of group 2
    assert zero_advantage(rewards, 3) == [False, True]
    assert reward_stats(rewards, 3)["reward/zero_advantage_groups"] == 0.5


def test_clip_higher_by_hand():
    """DAPO's clip-higher: with A > 0 the ratio may rise to 1 + eps_high; the lower bound stays 1 - eps."""
    logp = torch.log(torch.tensor([[1.5, 0.5]]))
    old = torch.zeros(1, 2)
    up, clipped = clipped_surrogate(logp, old, torch.tensor([2.0]), clip_eps=0.2, clip_eps_high=0.28)
    assert up.tolist() == [pytest.approx([-2.56, -1.0])] and clipped.tolist() == [[True, False]]
    down, _ = clipped_surrogate(logp, old, torch.tensor([-1.0]), clip_eps=0.2, clip_eps_high=0.28)
    assert down.tolist() == [pytest.approx([1.5, 0.8])]  # min(-1.5, -1.28) = -1.5; min(-0.5, -0.8) = -0.8


def test_token_and_sample_normalisation_by_hand():
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert token_weights(mask, "token").tolist() == [pytest.approx([1 / 3, 1 / 3, 0]), pytest.approx([1 / 3, 0, 0])]
    # sample: each of the 2 samples weighs 1/2, shared among its own tokens
    assert token_weights(mask, "sample").tolist() == [pytest.approx([0.25, 0.25, 0]), pytest.approx([0.5, 0, 0])]
    # a step's totals (here 6 tokens, 4 samples over all micro-batches and ranks) set the scale
    assert token_weights(mask, "token", total_tokens=6)[0, 0] == pytest.approx(1 / 6)
    assert token_weights(mask, "sample", total_samples=4)[1, 0] == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="token, sample"):
        token_weights(mask, "batch")
    # per-token losses 1, 2 (sample 0) and 4 (sample 1): token mean 7/3, sample mean (1.5 + 4) / 2 = 2.75.
    # With A = -1 and no clipping in reach, L_clip = ratio = exp(logp - old): set the ratios to those losses.
    old = torch.zeros(2, 3)
    logp = torch.log(torch.tensor([[1.0, 2.0, 1.0], [4.0, 1.0, 1.0]]))
    loss_t, _ = grpo_loss(logp, old, None, torch.tensor([-1.0, -1.0]), mask, clip_eps=10.0,
                          weights=token_weights(mask, "token"))
    loss_s, _ = grpo_loss(logp, old, None, torch.tensor([-1.0, -1.0]), mask, clip_eps=10.0,
                          weights=token_weights(mask, "sample"))
    assert float(loss_t) == pytest.approx(7 / 3) and float(loss_s) == pytest.approx(2.75)


def test_entropy_bonus_by_hand():
    logp = torch.zeros(1, 2)
    mask = torch.ones(1, 2, dtype=torch.bool)
    entropy = torch.tensor([[1.0, 3.0]])
    plain, _ = grpo_loss(logp, logp, None, torch.tensor([1.0]), mask)
    bonus, stats = grpo_loss(logp, logp, None, torch.tensor([1.0]), mask, entropy=entropy, entropy_coef=0.1)
    assert float(plain) == pytest.approx(-1.0) and float(bonus) == pytest.approx(-1.0 - 0.1 * 2.0)
    assert stats["entropy"] == pytest.approx(2.0)


def test_collapse_warnings_by_hand():
    from trainer.grpo import GRPOConfig, collapse_warnings

    config = GRPOConfig(output_dir="x", model="builtin")  # warn below half the first entropy, above half zero groups
    first = {"policy/entropy_chain": 2.0, "policy/entropy_image": 4.0, "reward/zero_advantage_groups": 0.0}
    assert collapse_warnings(first, first, config) == {}
    now = {"policy/entropy_chain": 0.9, "policy/entropy_image": 2.5, "reward/zero_advantage_groups": 0.75}
    found = collapse_warnings(first, now, config)
    assert set(found) == {"policy/entropy_chain", "reward/zero_advantage_groups"}
    assert "fell to 0.900 from 2.000" in found["policy/entropy_chain"] and "75%" in found["reward/zero_advantage_groups"]


def test_clip_higher_is_said_to_do_nothing_in_a_one_epoch_run():
    """With one PPO epoch the ratio is exactly 1 (the rollout policy is the policy), so no clip can bind: the
    ablation measured clip_eps_high 0.28 giving the very same weights as none. The run says so up front."""
    from trainer.grpo import GRPOConfig, inert_settings

    def config(**changes):
        return GRPOConfig(output_dir="x", model="builtin", **changes)

    assert any("clip_eps_high has no effect" in m for m in inert_settings(config(clip_eps_high=0.28)))
    assert inert_settings(config(clip_eps_high=0.28, ppo_epochs=2)) == []
    assert inert_settings(config()) == inert_settings(config(clip_eps_high=0.2)) == []
