"""GRPO over several processes (torchrun, gloo on the CPU) does one process's work, split.

Two processes with half the prompts each must draw exactly the samples one
process draws (the same random streams), judge each sample once, and end with
the same weights (up to float summation order), since the loss is normalised
by the token count of all ranks and DDP averages the gradients.
"""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tiny_janus import make_tiny_model
from trainer.checkpoint import find_checkpoint

DRIVER = Path(__file__).parent / "grpo_dp_driver.py"
FSDP_DRIVER = Path(__file__).parent / "grpo_fsdp_driver.py"
ROOT = Path(__file__).resolve().parents[1]
STEPS = 2


def _run(folder: Path, model: Path, processes: int, *args: str, kill_rank: int | None = None,
         dynamic_rounds: int = 0) -> int:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                "--master_port", "29517"] if processes > 1 else [sys.executable]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "KILL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), DYNAMIC_ROUNDS=str(dynamic_rounds),
               **({"KILL_RANK": str(kill_rank)} if kill_rank else {}))
    done = subprocess.run([*launcher, str(DRIVER), str(folder), str(model), *(args or [str(STEPS)])], env=env,
                          capture_output=True, text=True, timeout=600)
    if kill_rank is None:
        assert done.returncode == 0, done.stderr[-3000:]
    return done.returncode


def _training_samples(folder: Path, rank: int) -> list[tuple[str, str]]:
    held_out = set((folder / "held_out.txt").read_text().split("\n"))
    return [tuple(pair) for pair in json.loads((folder / f"judged-{rank}.json").read_text())
            if pair[0] not in held_out]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dp")
    model = make_tiny_model(root / "model", stop_bias=3.0)
    _run(root / "one", model, 1)
    _run(root / "two", model, 2)
    return root


def test_each_process_draws_its_own_share_of_the_step(runs):
    alone = _training_samples(runs / "one", 0)
    rank0, rank1 = _training_samples(runs / "two", 0), _training_samples(runs / "two", 1)
    assert len(alone) == STEPS * 4 * 2 and len(rank0) == len(rank1) == len(alone) // 2  # half the work each
    assert Counter(rank0) + Counter(rank1) == Counter(alone)  # together: exactly one process's samples


def test_two_processes_make_the_update_of_one(runs):
    step = f"step-{STEPS:08d}"
    one = load_file(str(runs / "one" / "run" / "checkpoints" / step / "model.safetensors"))
    two = load_file(str(runs / "two" / "run" / "checkpoints" / step / "model.safetensors"))
    base = load_file(str(runs / "model" / "model.safetensors"))
    moved = max((one[k] - base[k]).abs().max().item() for k in one if k in base)
    assert moved > 1e-3  # the update is real
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-4, msg=name)


def test_logged_rewards_are_those_of_every_process(runs):
    def logged(folder):
        rows = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["reward/total_mean"], r["train/loss"], r["train/grad_norm"]) for r in rows
                if "train/loss" in r]

    one, two = logged(runs / "one"), logged(runs / "two")
    assert [s for s, *_ in one] == [s for s, *_ in two] == list(range(1, STEPS + 1))
    for (_, r1, l1, g1), (_, r2, l2, g2) in zip(one, two):
        assert r2 == pytest.approx(r1, abs=1e-9) and l2 == pytest.approx(l1, abs=1e-5)
        # the gradient itself (before clipping; AdamW's first steps barely depend on its scale, so the weights
        # alone would not show a loss normalised per process instead of over all of them)
        assert g2 == pytest.approx(g1, rel=1e-4)


def test_evaluation_is_split_across_processes_and_gives_the_one_process_figures(runs):
    def final(folder):
        rows = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
        return {k: v for r in rows for k, v in r.items() if k.startswith("eval/")}

    one, two = final(runs / "one"), final(runs / "two")
    assert one and set(one) == set(two)
    for key, value in one.items():
        assert two[key] == pytest.approx(value, abs=1e-6), key
    held_out = set((runs / "one" / "held_out.txt").read_text().splitlines())
    judged = [[p for p, _ in json.loads((runs / "two" / f"judged-{r}.json").read_text()) if p in held_out]
              for r in (0, 1)]
    assert len(judged[0]) == len(judged[1]) == 1  # each process judged one of the two evaluation prompts


def test_dynamic_sampling_refills_the_same_groups_however_many_processes_share_the_step(tmp_path, runs):
    """A refilled group's prompt and random streams are a function of (seed, step, round, group): two processes,
    each refilling its own groups and drawing rounds until neither has a zero-advantage group left, judge exactly
    one process's samples and end with its weights; the easy prompt's groups were replaced."""
    for processes in (1, 2):
        _run(tmp_path / str(processes), runs / "model", processes, dynamic_rounds=3)
    alone = _training_samples(tmp_path / "1", 0)
    split = Counter(_training_samples(tmp_path / "2", 0)) + Counter(_training_samples(tmp_path / "2", 1))
    assert split == Counter(alone) and len(alone) > STEPS * 4 * 2  # refills were drawn, and the same ones

    def logged(folder):
        rows = [json.loads(line) for line in (folder / "run" / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k.startswith("sampling/") or k == "reward/zero_advantage_groups"}
                for r in rows if "train/loss" in r]

    one, two = logged(tmp_path / "1"), logged(tmp_path / "2")
    assert one == two and all(r["sampling/groups_drawn"] > 4 for r in one)  # every step drew the easy prompt
    # the kept batch teaches more than the step's own draw did
    assert all(r["sampling/kept_informative"] > 1 - r["reward/zero_advantage_groups"] for r in one)
    a, b = (load_file(str(tmp_path / str(n) / "run" / "model" / "model.safetensors")) for n in (1, 2))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-4, msg=key)


def test_two_process_run_killed_in_one_rank_resumes_to_the_uninterrupted_weights(tmp_path, runs):
    model = runs / "model"
    _run(tmp_path / "straight", model, 2, "4", "2")
    assert _run(tmp_path / "killed", model, 2, "4", "2", kill_rank=1) != 0  # rank 1 died in step 3
    assert find_checkpoint(tmp_path / "killed" / "run").name == "step-00000002"
    _run(tmp_path / "killed", model, 2, "4", "2", "--resume")
    a = load_file(str(tmp_path / "straight" / "run" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "run" / "model" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)


def test_gradient_clipping_sees_the_sharded_gradients(tmp_path):
    """Under FSDP the parameters to clip are the sharded ones ``prepare`` returns: the clipped norm two FSDP2
    processes log is the whole batch's norm that one unsharded process logs, not 0."""
    model = make_tiny_model(tmp_path / "model", stop_bias=3.0)
    norms = []
    for processes, name in ((1, "one"), (2, "two")):
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                    "--master_port", "29518"] if processes > 1 else [sys.executable]
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
        env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        done = subprocess.run([*launcher, str(FSDP_DRIVER), str(tmp_path / name), str(model)], env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        rows = [json.loads(line) for line in (tmp_path / name / "run" / "metrics.jsonl").read_text().splitlines()]
        norms.append(next(r["train/grad_norm"] for r in rows if "train/grad_norm" in r))
    assert norms[0] > 1e-2
    assert norms[1] == pytest.approx(norms[0], rel=1e-3)
