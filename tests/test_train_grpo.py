import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.logprobs import sequence_logprobs
from gotr1_core.model.loading import load_model
from gotr1_core.shapeworld.scenes import evaluation_scenes
from gotr1_core.rewards.base import Rewards
from trainer.checkpoint import find_checkpoint
from trainer.config import ConfigError, load_config
from trainer.evaluate import evaluate
from trainer.grpo import GRPOConfig, export_run, load_policy, train_grpo
from trainer.plan import ADAM_BYTES

from grpo_helpers import LongChainJudge, tiny_run_config
from tiny_janus import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    # stop_bias makes the random chains end after a few tokens, at different lengths per sample
    return make_tiny_model(tmp_path_factory.mktemp("policy") / "model", stop_bias=3.0)


def _prompts(config):
    return Path(config.prompts).read_text().split("\n")[:3]


def test_smoke_grpo_raises_the_reward_of_fixed_prompts(tmp_path, tiny_model):
    config = tiny_run_config(tmp_path, tiny_model, steps=8)
    judge = LongChainJudge()
    before = evaluate(load_model(tiny_model, device="cpu"), judge, _prompts(config) * 4, seed=7)["total"]
    metrics = train_grpo(config, progress=False, judge=judge)
    after = evaluate(load_model(tmp_path / "run" / "model", device="cpu"), judge, _prompts(config) * 4,
                     seed=7)["total"]
    assert after > before + 0.02, (before, after)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert len(losses) == 8 and all(torch.isfinite(torch.tensor(losses)))
    for key in ("reward/total_mean", "reward/r_sem_std", "train/kl", "train/clip_fraction", "train/lr",
                "perf/samples_per_s", "perf/peak_memory_mb"):
        assert key in rows[0], key
    assert all(r["policy/entropy_chain"] > 0 and r["policy/entropy_image"] > 0 for r in rows if "train/loss" in r)
    assert all(1 <= r["policy/distinct_plans"] <= config.group_size for r in rows if "train/loss" in r)
    card = json.loads((tmp_path / "run" / "model" / "model_card.json").read_text())
    assert card["trained_with"] == "gotr1-train grpo" and card["config"]["steps"] == 8
    assert metrics["eval/held_out/total"] == pytest.approx(card["metrics"]["eval/held_out/total"])


def test_rollouts_by_speculative_jacobi_decoding_train(tmp_path, tiny_model):
    """Rollout images drawn by speculative Jacobi decoding: the run trains on them (their log-probabilities are
    the teacher-forced ones: tests/test_speculative.py) and logs the passes it saved."""
    config = tiny_run_config(tmp_path, tiny_model, steps=2, image_decoding="jacobi")
    train_grpo(config, progress=False, judge=LongChainJudge())
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "train/loss" in r]
    assert len(steps) == 2 and all(np.isfinite(r["train/loss"]) for r in steps)
    assert load_config(GRPOConfig, tmp_path / "run" / "config.yaml", []).image_decoding == "jacobi"


def test_evaluation_prompts_are_never_trained_on(tmp_path, tiny_model):
    """Through the trainer itself: training prompts that reword the run's own evaluation prompts (relation read
    from the other side, other phrasings) or a scene of an evaluation split never reach a rollout."""
    config = tiny_run_config(tmp_path, tiny_model)
    with pytest.raises(ValueError, match="also an evaluation prompt"):
        train_grpo(dataclasses.replace(config, eval_prompts=[config.prompts]), progress=False,
                   judge=LongChainJudge())

    class RecordingJudge(LongChainJudge):
        calls: list = []

        def score(self, prompts, chains, layouts, images):
            self.calls.append(list(prompts))
            return super().score(prompts, chains, layouts, images)

    mine = tmp_path / "mine.txt"  # the run's own evaluation list: training-split scenes
    mine.write_text("a red circle left of a blue square\ntwo yellow circles and a purple square\n")
    test_scene = evaluation_scenes("test", 1)[0].prompt
    prompts = tmp_path / "train.txt"
    prompts.write_text("A blue square to the right of a red circle.\n"         # the first, reworded
                       "a purple square, 2 yellow circles\n"                   # the second, reworded
                       f"{test_scene.upper()}.\n"                              # a test-split scene
                       "a green triangle\ntwo cats on a sofa\n")
    run = dataclasses.replace(config, prompts=str(prompts), eval_prompts=[str(mine)], steps=1, prompts_per_step=5,
                              output_dir=str(tmp_path / "clean"))
    judge = RecordingJudge()
    train_grpo(run, progress=False, judge=judge)
    assert set(judge.calls[0]) == {"a green triangle", "two cats on a sofa"}  # 5 rollout prompts: no others


RUNNER = textwrap.dedent("""
    import os, signal, sys
    sys.path[:0] = [{root!r}, {tests!r}]
    from grpo_helpers import LongChainJudge, tiny_run_config
    from pathlib import Path
    import trainer.checkpoint, trainer.grpo
    kill = os.environ.get("KILL")
    if kill == "training":          # die in the middle of step 5, after the step-4 checkpoint
        real = trainer.grpo.rollout
        calls = []
        def rollout(*args):
            calls.append(1)
            if len(calls) == 5:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*args)
        trainer.grpo.rollout = rollout
    if kill == "writing":           # die inside the second checkpoint write, model written, state not
        real_save = trainer.checkpoint.save_file
        calls = []
        def save_file(tensors, path):
            real_save(tensors, path)
            calls.append(path)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        trainer.checkpoint.save_file = save_file
    config = tiny_run_config(Path(sys.argv[1]), Path(sys.argv[2]), steps=6, eval_count=1)
    trainer.grpo.train_grpo(config, resume="--resume" in sys.argv, progress=False, judge=LongChainJudge())
""")


def _run(folder: Path, model: Path, kill: str | None = None, resume: bool = False) -> int:
    script = RUNNER.format(root=str(ROOT), tests=str(ROOT / "tests"))
    env = {**os.environ, "KILL": kill or ""}
    args = [sys.executable, "-c", script, str(folder), str(model)] + (["--resume"] if resume else [])
    return subprocess.run(args, env=env, capture_output=True, timeout=300).returncode


@pytest.mark.parametrize("moment", ["training", "writing"])
def test_sigkill_then_resume_ends_with_the_uninterrupted_weights(tmp_path, tiny_model, moment):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir(), killed.mkdir()
    assert _run(straight, tiny_model) == 0
    assert _run(killed, tiny_model, kill=moment) == -signal.SIGKILL
    found = find_checkpoint(killed / "run")
    if moment == "training":
        assert found.name == "step-00000004"
    else:  # the second write died half way: its folder never got its final name, the first stays newest
        assert found.name == "step-00000002"
        assert list((killed / "run" / "checkpoints").glob(".tmp-step-*"))
    assert _run(killed, tiny_model, resume=True) == 0
    a = load_file(str(straight / "run" / "model" / "model.safetensors"))
    b = load_file(str(killed / "run" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_lora_run_exports_merged_weights_that_generate_like_the_policy(tmp_path, tiny_model):
    config = tiny_run_config(tmp_path, tiny_model, steps=2, lora_rank=4, lora_alpha=8.0, lr=5e-3,
                             eval_prompts=[], save_every=2)
    train_grpo(config, progress=False, judge=LongChainJudge())
    exported = export_run(tmp_path / "run", tmp_path / "exported")
    got = load_model(exported, device="cpu")  # the public loader, as the nodes use it
    result = generate(got, "a red circle", GenerationConfig(num_samples=2, seed=3))
    assert result.images.shape[0] == 2

    base = load_model(tiny_model, device="cpu")
    policy = load_policy(config, "cpu")  # base + fresh adapters, then the checkpoint's adapters
    from trainer.checkpoint import load_checkpoint
    from trainer.grpo import restore_tensors

    restore_tensors(policy.model, load_checkpoint(find_checkpoint(tmp_path / "run"))[0], lora=True)
    with torch.no_grad():
        merged = torch.cat(sequence_logprobs(got, result), 1)
        adapted = torch.cat(sequence_logprobs(policy, result), 1)
        untouched = torch.cat(sequence_logprobs(base, result), 1)
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=0)
    assert (merged - untouched).abs().max() > 1e-3  # the adapters changed something, and it was kept


def test_export_of_an_earlier_step_writes_that_steps_weights_and_a_missing_step_lists_the_kept_ones(
        tmp_path, tiny_model, capsys):
    from trainer import cli
    from trainer.checkpoint import load_checkpoint, step_dir

    config = tiny_run_config(tmp_path, tiny_model, steps=2, lr=5e-3, eval_prompts=[], save_every=1, keep_last=3)
    train_grpo(config, progress=False, judge=LongChainJudge())
    assert cli.main(["export", str(tmp_path / "run"), str(tmp_path / "first"), "--step", "1"]) == 0
    first = load_file(str(tmp_path / "first" / "model.safetensors"))
    at_step_1 = load_checkpoint(step_dir(tmp_path / "run", 1))[0]
    final = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    key = next(k for k in at_step_1 if k in first and not torch.equal(at_step_1[k], final[k]))  # the steps differ
    torch.testing.assert_close(first[key], at_step_1[key], rtol=0, atol=0)
    assert cli.main(["export", str(tmp_path / "run"), str(tmp_path / "x"), "--step", "7"]) == 1
    assert "kept steps: 1, 2" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_export_of_a_run_without_checkpoints_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        export_run(tmp_path, tmp_path / "out")


def test_bad_grpo_config_names_every_field(tmp_path, tiny_model):
    with pytest.raises(ConfigError) as info:
        load_config(GRPOConfig, None, [f"output_dir={tmp_path}", f"model={tmp_path / 'nothing'}", "group_size=1",
                                       "stages=images", "lr_schedule=linear", "clip_eps=-1", "judge=gpt",
                                       "prompts=prompts.csv", "colour=red"])
    text = str(info.value)
    for needle in ("unknown key 'colour'",):
        assert needle in text
    with pytest.raises(ConfigError) as info:
        load_config(GRPOConfig, None, [f"output_dir={tmp_path}", f"model={tmp_path / 'nothing'}", "group_size=1",
                                       "stages=images", "lr_schedule=linear", "clip_eps=-1", "judge=gpt",
                                       "prompts=prompts.csv", "eval_prompts=[shapeworld:nowhere]",
                                       "image_decoding=parallel"])
    text = str(info.value)
    for needle in ("model:", "group_size:", "stages:", "lr_schedule:", "clip_eps:", "judge:", "prompts.csv",
                   "'nowhere'", "image_decoding: use sequential or jacobi"):
        assert needle in text, needle
    config = load_config(GRPOConfig, None, [f"output_dir={tmp_path}", f"model={tiny_model}"])
    assert config.group_size == 8 and config.stages == "both"


def test_shipped_configs_validate(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths in the configs resolve as on a fresh checkout
    configs = ROOT / "trainer" / "configs"
    # The ShapeWorld recipe starts from the SFT run's output; on a clean checkout that is all that is missing.
    with pytest.raises(ConfigError) as info:
        load_config(GRPOConfig, configs / "shapeworld_grpo.yaml")
    assert len(info.value.problems) == 1 and "runs/shapeworld-sft/model" in info.value.problems[0]
    shapeworld = load_config(GRPOConfig, configs / "shapeworld_grpo.yaml", ["model=builtin"])
    assert shapeworld.judge == "shapeworld" and shapeworld.prompts == "shapeworld:train+shapeworld:rl_heldout"
    ablation = load_config(GRPOConfig, configs / "shapeworld_grpo_train_only.yaml", ["model=builtin"])
    assert ablation.prompts == "shapeworld:train" and ablation.output_dir != shapeworld.output_dir
    # the ablation's choice (docs/training.md), so the configs alone reproduce the built-in model
    assert shapeworld.loss_normalisation == ablation.loss_normalisation == "sample"
    # the second stage starts where the first ends and weights held-out compositions twice
    with pytest.raises(ConfigError) as info:
        load_config(GRPOConfig, configs / "shapeworld_grpo_heldout.yaml")
    assert len(info.value.problems) == 1 and shapeworld.output_dir + "/model" in info.value.problems[0]
    second = load_config(GRPOConfig, configs / "shapeworld_grpo_heldout.yaml", ["model=builtin"])
    assert second.prompts.split("+").count("shapeworld:rl_heldout") == 2 and second.output_dir != shapeworld.output_dir
    # accelerate launch configs: the trainer sets gradient accumulation (its micro-batches per step); a fixed
    # value in a DeepSpeed config would override it and step the engine after every micro-batch.
    from accelerate.commands.config.config_args import ClusterConfig

    for launch in sorted(configs.glob("accelerate_*.yaml")):
        cluster = ClusterConfig.from_yaml_file(str(launch))
        assert cluster.num_processes == 8 and "gradient_accumulation_steps" not in (cluster.deepspeed_config or {})
    # The 7B recipe names local folders a user provides; with none present, only those are reported.
    with pytest.raises(ConfigError) as info:
        load_config(GRPOConfig, configs / "gotr1_7b_grpo.yaml")
    assert len(info.value.problems) == 4
    assert all(any(word in p for word in ("model:", "judge:", "not found")) for p in info.value.problems)


def test_eval_command_prints_both_judges_intervals_and_diversity(tmp_path, capsys):
    from trainer.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval", "builtin", "--split", "zeroshot", "--count", "4", "--samples", "2", "--output", str(out),
                 "--disagreements", str(tmp_path / "d.png")]) == 0
    table = capsys.readouterr().out
    for key in ("renderback_correct_ci", "judges_agree", "diversity/world/pairwise_distance", "chains_name_objects"):
        assert key in table, key
    assert "per_scene" not in table
    metrics = json.loads(out.read_text())
    assert metrics["count"] == 4 and metrics["scenes"] == 4 and metrics["chains_clean"] == 1.0
    low, high = metrics["renderback_correct_ci"]
    assert low <= metrics["renderback_correct"] <= high
    assert [r["prompt"] for r in metrics["per_scene"]] == [s.prompt for s in evaluation_scenes("zeroshot", 4)]
    scenes = [r["renderback_correct"] for r in metrics["per_scene"]]
    assert np.mean(scenes) == pytest.approx(metrics["renderback_correct"])
    assert 1 <= metrics["diversity/distinct_layouts"] <= 2 and metrics["diversity/world/distinct_layouts"] == 2
    assert (tmp_path / "d.png").exists() == (metrics["judges_agree"] < 1)


@pytest.mark.parametrize("stages, frozen, trained", [("reason", "model.generation_head", "lm_head"),
                                                     ("image", "lm_head", "model.generation_head")])
def test_stage_switch_trains_only_that_stages_head(tmp_path, tiny_model, stages, frozen, trained):
    """Only reasoning tokens reach the LM head and only image tokens the image head, so the other stage's head
    must come out bit-identical (no weight decay) — with two PPO epochs, the old-policy path included."""
    config = tiny_run_config(tmp_path, tiny_model, steps=2, stages=stages, ppo_epochs=2, beta=0.0, lr=5e-3,
                             eval_prompts=[])
    train_grpo(config, progress=False, judge=LongChainJudge())
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    frozen_keys = [k for k in after if k.startswith(frozen + ".")]
    trained_keys = [k for k in after if k.startswith(trained + ".")]
    assert frozen_keys and trained_keys
    assert all(torch.equal(before[k], after[k]) for k in frozen_keys)
    assert any(not torch.equal(before[k], after[k]) for k in trained_keys)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["train/clip_fraction"] <= 1.0 for r in rows if "train/clip_fraction" in r)


class SameRewardJudge(LongChainJudge):
    """Every sample scores the same: all advantages are 0, so only an entropy bonus can move the policy."""

    def score(self, prompts, chains, layouts, images):
        ones = [1.0] * len(chains)
        return Rewards(ones, ones, ones, ones)


def test_the_entropy_bonus_raises_entropy_and_nothing_else_moves_without_it(tmp_path, tiny_model):
    """With every advantage 0 (and no KL), a run without the bonus leaves the weights exactly as they were; with it
    (plus clip-higher and sample normalisation, which must run alongside) the entropy of the policy's distribution
    at the same tokens rises."""
    probe = generate(load_model(tiny_model, device="cpu"), ["a red circle", "two cats"],
                     GenerationConfig(num_samples=2, seed=1, max_reason_tokens=12), decode=False)

    def mean_entropy(folder):
        _, _, reason_h, image_h = sequence_logprobs(load_model(folder, device="cpu"), probe, entropy=True)
        return float(reason_h[probe.reason_mask].mean()), float(image_h.mean())

    before = mean_entropy(tiny_model)
    for coef in (0.0, 0.5):
        folder = tmp_path / str(coef)
        folder.mkdir()
        config = tiny_run_config(folder, tiny_model, steps=2, entropy_coef=coef, clip_eps_high=0.28,
                                 loss_normalisation="sample", eval_prompts=[], lr=1e-3, beta=0.0)
        with pytest.warns(RuntimeWarning, match="100% of the groups have zero advantage"):  # said once per run
            train_grpo(config, progress=False, judge=SameRewardJudge())
        rows = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
        assert ("train/entropy" in rows[0]) == bool(coef)
        after = mean_entropy(folder / "run" / "model")
        if coef:
            assert after[0] > before[0] + 0.01 and after[1] > before[1] + 0.01, (before, after)
        else:
            assert after == pytest.approx(before, abs=1e-6)


@pytest.mark.parametrize("normalisation", ["token", "sample"])
def test_micro_batches_accumulate_the_gradient_of_the_whole_batch(tmp_path, tiny_model, normalisation):
    """One step in 1 micro-batch or in 3: the same rollouts, so the same gradient (logged before clipping), with
    either loss normalisation (each token's weight is the whole step's, whatever micro-batch it is in)."""
    norms = []
    for micro_batch in (12, 4):
        (tmp_path / str(micro_batch)).mkdir()
        config = tiny_run_config(tmp_path / str(micro_batch), tiny_model, steps=1, micro_batch=micro_batch,
                                 eval_count=1, save_every=1, loss_normalisation=normalisation)
        train_grpo(config, progress=False, judge=LongChainJudge())
        row = json.loads((tmp_path / str(micro_batch) / "run" / "metrics.jsonl").read_text().splitlines()[0])
        norms.append(row["train/grad_norm"])
    assert norms[0] > 0 and norms[1] == pytest.approx(norms[0], rel=1e-4)


def test_run_with_a_deepspeed_partitioned_optimizer_refuses_to_resume_and_still_exports(tmp_path, tiny_model,
                                                                                         monkeypatch):
    """Under DeepSpeed the AdamW moments live in its engine, split across processes: the checkpoint keeps whole
    weights but no optimizer state, and resuming says so instead of silently restarting the moments."""
    import trainer.grpo

    monkeypatch.setattr(trainer.grpo, "partitioned_optimizer", lambda accelerator: "DeepSpeed ZeRO-3")
    config = tiny_run_config(tmp_path, tiny_model, steps=4, eval_count=1)
    assert train_grpo(config, progress=False, judge=LongChainJudge(), stop_after=2) == {"stopped_at": 2}
    with pytest.raises(ValueError, match="DeepSpeed ZeRO-3 run: its optimizer state is split.*gotr1-train export"):
        train_grpo(config, resume=True, progress=False, judge=LongChainJudge())
    exported = export_run(tmp_path / "run", tmp_path / "exported")
    assert load_model(exported, device="cpu").model is not None


def test_an_fsdp_run_checkpoints_its_moments_gathered_and_resumes_to_the_uninterrupted_weights(tmp_path, tiny_model,
                                                                                                monkeypatch):
    """Under FSDP the checkpoint holds the AdamW moments gathered by parameter name and a resumed run puts them
    back after ``prepare``: stopped at step 2 and resumed, it ends with the weights of the run that was not
    stopped. (One process here, told it is FSDP; tests/test_sharding.py resumes real FSDP2 shards.)"""
    import trainer.grpo

    monkeypatch.setattr(trainer.grpo, "partitioned_optimizer", lambda accelerator: "FSDP")
    for name in ("whole", "stopped"):
        (tmp_path / name).mkdir()
    whole = tiny_run_config(tmp_path / "whole", tiny_model, steps=4, eval_count=1, save_every=2)
    stopped = tiny_run_config(tmp_path / "stopped", tiny_model, steps=4, eval_count=1, save_every=2)
    train_grpo(whole, progress=False, judge=LongChainJudge())
    assert train_grpo(stopped, progress=False, judge=LongChainJudge(), stop_after=2) == {"stopped_at": 2}
    state = json.loads((find_checkpoint(tmp_path / "stopped" / "run") / "state.json").read_text())
    assert "optimizer_gathered" in json.dumps(state)
    train_grpo(stopped, resume=True, progress=False, judge=LongChainJudge())
    a = load_file(str(find_checkpoint(tmp_path / "whole" / "run") / "model.safetensors"))
    b = load_file(str(find_checkpoint(tmp_path / "stopped" / "run") / "model.safetensors"))
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-6


@pytest.mark.parametrize("options", [dict(), dict(mixed_precision="bf16"),
                                     dict(mixed_precision="bf16", reference_weights="int8"),
                                     dict(mixed_precision="bf16", lora_rank=4, beta=0.01), dict(beta=0.0)])
def test_the_planned_weight_bytes_are_what_the_run_loads(tmp_path, tiny_model, options):
    """The GRPO memory plan (docs/training.md's 7B table comes from it) against the tensors the run holds: a float32
    policy (the master weights), a reference in the mixed-precision dtype or quantized, under LoRA a frozen base in
    that dtype with float32 adapters and no reference copy."""
    from gotr1_core.model.quantize import stored_bytes
    from trainer.grpo import frozen_reference, planned_weight_bytes

    config = tiny_run_config(tmp_path, tiny_model, **options)
    policy = load_policy(config, "cpu")
    plan = planned_weight_bytes(config, policy.model.config, "cpu")
    assert plan["policy"] == stored_bytes(policy.model)
    loads_reference = config.beta and not config.lora_rank
    assert plan["reference"] == (stored_bytes(frozen_reference(config, "cpu").model) if loads_reference else 0)
    assert plan["trained_parameters"] == sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    if options.get("mixed_precision") == "bf16" and not config.lora_rank and config.reference_weights == "full":
        assert 2 * plan["reference"] == pytest.approx(plan["policy"], rel=0.01)  # half a float32 copy


def test_a_quantized_reference_is_stored_small_and_stays_close_to_the_starting_policy(tmp_path, tiny_model):
    """``reference_weights: int8``: the reference is read again with int8 layers; at step 1 (policy = starting
    weights) the KL to a full reference is 0 and to the int8 one small but not 0."""
    from gotr1_core.model.quantize import stored_bytes
    from trainer.grpo import frozen_reference

    config = tiny_run_config(tmp_path, tiny_model, reference_weights="int8")
    policy = load_policy(config, "cpu")
    reference = frozen_reference(config, "cpu")
    assert reference.extra["quantize"] == "int8" and stored_bytes(reference.model) < stored_bytes(policy.model)
    kl = {}
    for weights in ("full", "int8"):
        (tmp_path / weights).mkdir()
        run = tiny_run_config(tmp_path / weights, tiny_model, steps=1, eval_count=1, reference_weights=weights)
        train_grpo(run, progress=False, judge=LongChainJudge())
        kl[weights] = json.loads((tmp_path / weights / "run" / "metrics.jsonl").read_text().splitlines()[0])["train/kl"]
    assert abs(kl["full"]) < 1e-6 and 0 < kl["int8"] < 0.05, kl
    for bad, message in (("reference_weights=nf2", "reference_weights: use full, fp8, int8, int4; got 'nf2'"),
                         ("lora_rank=4", "reference_weights: a LoRA run's reference is its own base weights")):
        with pytest.raises(ConfigError, match=message):
            load_config(GRPOConfig, None, [f"output_dir={tmp_path}", f"model={tiny_model}", "reference_weights=int8",
                                           bad])


def test_dynamic_sampling_replaces_alike_groups_with_fresh_prompts_drawn_on_their_own_streams(tmp_path, tiny_model):
    """DAPO's dynamic sampling: the easy prompt's groups (all samples score 1) leave the batch; each replacement is
    exactly what ``generate`` draws for its prompt on the streams the refill names; the logs describe the step's
    own draw (its zero-advantage share), not the kept batch. Without rounds left, an alike group stays."""
    from grpo_helpers import EasyPromptJudge

    from trainer.grpo import collect_rollouts, start_run, zero_advantage

    config = tiny_run_config(tmp_path, tiny_model, prompts_per_step=3, group_size=4, dynamic_sampling_rounds=4,
                             eval_prompts=[])
    run, _ = start_run(config, resume=False, judge=EasyPromptJudge())
    rollouts = collect_rollouts(run, 0)
    own = [rollouts.result.prompts[g * 4] for g in range(3)]
    assert rollouts.drawn is not rollouts.rewards and zero_advantage(rollouts.drawn, 4).count(True) >= 1
    assert "a red circle" not in own and not any(zero_advantage(rollouts.rewards, 4))
    assert rollouts.sampling["groups_drawn"] > 3 and rollouts.sampling["groups_still_alike"] == 0
    for g in range(3):  # the reference: one plain generate call per group, on the streams it records
        rows = list(range(g * 4, g * 4 + 4))
        kept = rollouts.result.select(rows)
        again = generate(run.got, [own[g]], dataclasses.replace(config.generation(0), num_samples=4),
                         streams=kept.streams, decode=False)
        assert torch.equal(again.image_ids, kept.image_ids) and again.chains == kept.chains
    assert len(set(rollouts.result.streams)) == 12

    (tmp_path / "b").mkdir()
    none_left = tiny_run_config(tmp_path / "b", tiny_model, prompts_per_step=3, group_size=4,
                                dynamic_sampling_rounds=2, eval_prompts=[])
    alike = SameRewardJudge()
    rollouts = collect_rollouts(start_run(none_left, resume=False, judge=alike)[0], 0)
    assert rollouts.sampling == {"groups_drawn": 9.0, "rounds": 2.0, "groups_still_alike": 3.0}
    assert len(rollouts.result.prompts) == 12



def test_reward_settings_are_checked_with_the_config(tmp_path, tiny_model):
    base = [f"output_dir={tmp_path}", f"model={tiny_model}"]
    cases = [(["reward_formula=v2"], "multiplies by R_HPS: set quality_model"),
             (["reward_formula=custom", "reward_expression=__import__('os')"], "is not allowed"),
             (["reward_formula=v3"], "not one of v1, v2, custom"),
             ([f"quality_model={tmp_path / 'nowhere'}"], "no config.json"),
             (["judge_questions=paper"], "asks no questions"),
             (["judge_questions=appendix", "judge=http://127.0.0.1:8000/v1"], "use pack or paper")]
    for overrides, needle in cases:
        with pytest.raises(ConfigError) as info:
            load_config(GRPOConfig, None, base + overrides)
        assert needle in str(info.value), (overrides, str(info.value))


def test_a_run_with_the_quality_model_trains_on_v2_and_records_it(tmp_path, tiny_model):
    """R_HPS from a quality folder through the run's own loader: logged, multiplied in, written in the card."""
    from tiny_clip import make_tiny_clip

    quality = make_tiny_clip(tmp_path / "hps")
    config = tiny_run_config(tmp_path, tiny_model, steps=2, judge="shapeworld", prompts="shapeworld:train",
                             eval_prompts=["shapeworld:test"], quality_model=str(quality), reward_formula="v2")
    train_grpo(config, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "train/loss" in r]
    assert len(steps) == 2 and all(0 < r["reward/r_hps_mean"] <= 1 for r in steps)
    assert all(r["reward/total_mean"] <= r["reward/r_hps_mean"] + 1e-9 for r in steps)  # v2 totals are <= R_HPS
    assert "eval/test/r_hps" in rows[-1]
    card = json.loads((tmp_path / "run" / "model" / "model_card.json").read_text())
    assert card["reward"]["formula"] == "v2" and card["reward"]["quality_model"] == str(quality)
    assert card["reward"]["expression"] == "r_pi * (r_sem + r_spa) / 2 * r_ri * r_hps"


def test_the_paper_recipe_plans_its_memory_with_skeletons_only(tmp_path, monkeypatch, capsys):
    """``--dry-run`` on the shipped paper recipe: folders holding only config.json (published sizes) are enough;
    it prints the plan per GPU for the paper's 8 GPUs and one 80 GB card and trains nothing."""
    from trainer.cli import main
    from trainer.plan import plan_run, write_skeleton

    monkeypatch.chdir(tmp_path)
    configs = ROOT / "trainer" / "configs" / "gotr1_paper_recipe.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(GRPOConfig, configs)  # on a fresh checkout only the user's folders are missing
    assert len(info.value.problems) == 5 and all(any(w in p for w in ("model:", "judge:", "quality_model:",
                                                                        "not found")) for p in info.value.problems)
    for name, folder in (("GoT-R1-7B", "models/GoT-R1-7B"), ("Qwen2.5-VL-7B-Instruct", "models/judges/Qwen2.5-VL-7B-Instruct"),
                         ("HPS-v2.1", "models/quality/HPS-v2.1")):
        write_skeleton(name, tmp_path / folder)
    (tmp_path / "prompts").mkdir()
    for name in ("train.jsonl", "eval.jsonl"):
        (tmp_path / "prompts" / name).write_text('{"prompt": "a red apple left of a cup"}\n')
    config = load_config(GRPOConfig, configs)
    assert (config.lora_rank, config.group_size, config.lr, config.prompts_per_step, config.steps) == \
        (32, 16, 1e-5, 8, 1000)
    assert config.formula().name == "v2" and config.judge_questions == "paper"
    one = plan_run(config, gpus=1)
    assert one.held["judge"] == pytest.approx(2 * 8.29e9, rel=0.01)  # Qwen2.5-VL-7B in bf16
    assert one.held["quality model (HPS)"] == pytest.approx(2 * 0.986e9, rel=0.01)  # ViT-H/14 in bf16
    assert 70e6 < one.trained_parameters < 80e6  # LoRA r=32 on every projection of 30 layers
    full = plan_run(dataclasses.replace(config, lora_rank=0), gpus=8)
    assert full.held["optimizer moments (1/8)"] == ADAM_BYTES * full.trained_parameters // 8
    assert main(["grpo", "--config", str(configs), "--dry-run", "--gpus", "8", "--gpu-memory", "80GB"]) == 0
    out = capsys.readouterr().out
    assert "8 GPUs, LoRA r=32" in out and "judge" in out and "quality model (HPS)" in out and "fits" in out
    assert "nothing was trained" in out and not (tmp_path / "runs").exists()
    assert main(["grpo", "--config", str(configs), "--dry-run", "--gpu-memory", "20GB"]) == 0
    assert "does NOT fit" in capsys.readouterr().out
