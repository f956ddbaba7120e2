"""GRPO's plan rollouts: prompts that come with a plan a person could write, images drawn from it."""

import json

import numpy as np
import pytest
import torch

from gotr1_core.generation import GenerationConfig, encode_chain, generate
from gotr1_core.layout import Layout
from gotr1_core.logprobs import sequence_logprobs
from gotr1_core.model.loading import load_model
from gotr1_core.reasoning import parse_chain
from gotr1_core.shapeworld import parse_prompt
from gotr1_core.shapeworld.plans import person_plan, valid_plan
from trainer.config import ConfigError, load_config
from trainer.evaluate import eval_prompts
from trainer.grpo import GRPOConfig, joined, objective_mask, step_plans, train_grpo
from trainer.prompts import training_records

from grpo_helpers import LongChainJudge, tiny_run_config
from tiny_janus import make_tiny_model

PROMPTS = ["a red circle left of a blue square", "two green triangles and a yellow circle"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = make_tiny_model(tmp_path_factory.mktemp("policy") / "model", stop_bias=3.0)
    return folder, load_model(folder, device="cpu")


def test_person_plans_are_valid_and_varied():
    spec = parse_prompt(PROMPTS[0])
    chains = [person_plan(spec, np.random.default_rng(i)) for i in range(40)]
    for chain in chains:
        parsed = parse_chain(chain, strict=True)
        assert valid_plan(list(Layout.from_chain(parsed).objects), spec), chain
    boxes = [o.box for c in chains for o in Layout.from_chain(parse_chain(c)).objects]
    assert any(v % 125 for b in boxes for v in (b.x1, b.y1, b.x2, b.y2))         # not only the old grid
    assert any(v % 2 for b in boxes for v in (b.x1, b.y1, b.x2, b.y2))           # off the world's lattice
    assert any(c.split("<|obj_start|>")[0].strip() for c in chains)               # prose before the first tag
    assert any(not c.split("<|obj_start|>")[0].strip() for c in chains)           # the model's own wording


def test_joined_batch_has_the_logprobs_of_its_parts(tiny):
    _, got = tiny
    config = GenerationConfig(num_samples=2, seed=3, cfg_scale=2.0)
    own = generate(got, PROMPTS, config)
    plans = [person_plan(parse_prompt(p), np.random.default_rng(i)) for i, p in enumerate(PROMPTS)]
    planned = generate(got, PROMPTS, GenerationConfig(num_samples=2, seed=3, cfg_scale=2.0, first_index=4),
                       chains=plans)
    both = joined(own, planned)
    assert len(both.prompts) == 8 and not both.chain_given
    with torch.no_grad():
        reason, image = sequence_logprobs(got, both)
        own_reason, own_image = sequence_logprobs(got, own)
        _, planned_image = sequence_logprobs(got, planned)
    torch.testing.assert_close(image, torch.cat([own_image, planned_image]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(reason[:4, :own_reason.shape[1]], own_reason, atol=1e-5, rtol=1e-5)
    for row, plan in zip(range(4, 8), [plans[0]] * 2 + [plans[1]] * 2):  # the given chain, as the image saw it
        assert both.reason_ids[row][both.reason_mask[row]].tolist() == encode_chain(got, plan)


def test_given_plans_never_enter_the_objective_as_reasoning(tiny):
    _, got = tiny
    own = generate(got, PROMPTS[:1], GenerationConfig(num_samples=2, seed=1))
    planned = generate(got, PROMPTS[:1], GenerationConfig(num_samples=2, seed=1, first_index=2),
                       chains=[person_plan(parse_prompt(PROMPTS[0]), np.random.default_rng(0))])
    both = joined(own, planned)
    mask = objective_mask(both, 2, "both")
    width = both.reason_ids.shape[1]
    assert torch.equal(mask[:2, :width], both.reason_mask[:2]) and mask[:2, :width].any()
    assert not mask[2:, :width].any()                   # the plan's tokens: not the policy's choice
    assert mask[:, width:].all()                        # every image token trains
    assert not objective_mask(both, 2, "reason")[:, width:].any()


class RecordingJudge(LongChainJudge):
    def __init__(self):
        self.calls = []

    def score(self, prompts, chains, layouts, images):
        self.calls.append(list(zip(prompts, chains)))
        return super().score(prompts, chains, layouts, images)


def test_plan_rollouts_draw_from_the_steps_person_plans(tmp_path, tiny):
    folder, _ = tiny
    config = tiny_run_config(tmp_path, folder, prompts="shapeworld:train", prompt_count=50, steps=1,
                             prompts_per_step=2, plan_prompts_per_step=2, group_size=2,
                             eval_prompts=["shapeworld:test"], eval_count=1, save_every=1)
    judge = RecordingJudge()
    train_grpo(config, progress=False, judge=judge)
    own, planned = judge.calls[:2]
    assert len(own) == 4 and len(planned) == 4
    records = training_records(config.prompts, config.prompt_count, config.seed, eval_prompts("shapeworld:test", 1))
    assert planned == [(r["prompt"], r["chain"]) for r in step_plans(records, 0, config) for _ in range(2)]
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert logged["plans/r_ri_mean"] == pytest.approx(1.0) and "reward/total_mean" in logged


def test_plan_prompts_need_shapeworld_prompts(tmp_path, tiny):
    folder, _ = tiny
    prompts = tmp_path / "p.txt"
    prompts.write_text("a cat\n")
    with pytest.raises(ConfigError, match="plan_prompts_per_step"):
        load_config(GRPOConfig, None, [f"output_dir={tmp_path}", f"model={folder}", f"prompts={prompts}",
                                       "plan_prompts_per_step=2"])
    assert load_config(GRPOConfig, None, [f"output_dir={tmp_path}", f"model={folder}",
                                          "prompts=shapeworld:train+shapeworld:rl_heldout",
                                          "plan_prompts_per_step=2"]).plan_prompts_per_step == 2
