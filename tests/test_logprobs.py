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
