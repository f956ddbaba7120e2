import pytest
import torch

from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.logprobs import sequence_logprobs
from gotr1_core.model.loading import load_model
from tiny_janus import make_tiny_model

CHAIN = "a <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)<|box_end|><begin_of_image>"


@pytest.fixture(scope="module")
def got(tmp_path_factory):
    return load_model(make_tiny_model(tmp_path_factory.mktemp("lp") / "m", stop_bias=2.0), device="cpu",
                      dtype=torch.float64)


@pytest.mark.parametrize("settings", [
    dict(cfg_scale=3.0, text_temperature=1.0, image_temperature=0.8),
    dict(cfg_scale=1.0, text_temperature=0.7, image_temperature=1.0),
    dict(cfg_scale=2.0, text_temperature=0.0, image_temperature=0.0),
    dict(cfg_scale=3.0, cfg_plausibility=0.3, text_temperature=0.7, image_temperature=0.7),  # the built-in's
])
def test_teacher_forced_logprobs_equal_the_rollout(got, settings):
    """Ratio exp(logp - old) is 1 at the first GRPO step: recomputation matches generation exactly."""
    result = generate(got, ["a red circle", "two blue squares"], GenerationConfig(
        num_samples=3, seed=5, max_reason_tokens=14, **settings), decode=False)
    reason_lp, image_lp = sequence_logprobs(got, result)
    assert reason_lp.shape == result.reason_logprobs.shape and image_lp.shape == result.image_logprobs.shape
    assert torch.allclose(reason_lp.float(), result.reason_logprobs, atol=1e-5)
    assert torch.allclose(image_lp.float(), result.image_logprobs, atol=1e-5)
    assert (reason_lp[~result.reason_mask] == 0).all()


def test_given_chains_have_no_reasoning_logprobs_and_gradients_flow(got):
    result = generate(got, "a red circle", GenerationConfig(num_samples=2, cfg_scale=3.0), chains=CHAIN,
                      decode=False)
    got.model.requires_grad_(True)
    try:
        reason_lp, image_lp = sequence_logprobs(got, result)
        assert (reason_lp == 0).all()
        assert torch.allclose(image_lp.float(), result.image_logprobs, atol=1e-5)
        image_lp.sum().backward()
        assert got.model.model.generation_head.vision_head.weight.grad is not None
    finally:
        got.model.requires_grad_(False)
        got.model.zero_grad(set_to_none=True)


def test_entropies_are_those_of_the_whole_distribution(got):
    """With ``entropy``, each position also gets the entropy of the distribution its token was drawn from
    (guidance, floor and temperature included), as torch's Categorical computes it; log-probs unchanged."""
    from gotr1_core.generation import guide

    config = GenerationConfig(num_samples=2, seed=3, max_reason_tokens=10, cfg_scale=3.0, cfg_plausibility=0.3,
                              text_temperature=0.7, image_temperature=0.7)
    result = generate(got, ["a red circle"], config, decode=False)
    reason_lp, image_lp, reason_h, image_h = sequence_logprobs(got, result, entropy=True)
    plain = sequence_logprobs(got, result)
    assert torch.equal(reason_lp, plain[0]) and torch.equal(image_lp, plain[1])
    assert (reason_h[~result.reason_mask] == 0).all() and (reason_h[result.reason_mask] > 0).all()
    # the first image position by hand: the rows generation ran, guided and floored, at temperature 0.7
    from gotr1_core.generation import chain_for_image, unconditional_ids
    from gotr1_core.logprobs import _forward

    reasons = result.reason_ids[0][result.reason_mask[0]].tolist()
    cond = result.prompt_ids[0] + chain_for_image(got, reasons)
    hidden, lengths = _forward(got, [cond, unconditional_ids(cond, got.token_ids.pad)],
                               torch.cat([result.image_ids[:1]] * 2))
    head = got.model.model.generation_head
    logits = guide(head(hidden[0, lengths[0] - 1]).float(), head(hidden[1, lengths[1] - 1]).float(), 3.0, 0.3)
    expected = torch.distributions.Categorical(logits=logits / 0.7).entropy()
    assert float(image_h[0, 0]) == pytest.approx(float(expected), rel=1e-6)
