"""Generation under sharded training: ``full_parameters`` gathers what FSDP splits across processes.

accelerate turns FSDP on only for GPU-type devices (on the CPU it wraps the
model in DDP), so the driver shards the tiny Janus model with torch's own
``fully_shard`` (FSDP2), as accelerate's ``fsdp_version: 2`` does — each
decoder layer, then the root — over gloo with 2 CPU processes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gotr1_core.model.loading import load_model
from trainer.sharding import full_parameters, full_state_dict, sharding_kind

from tiny_janus import make_tiny_model

DRIVER = Path(__file__).parent / "fsdp_driver.py"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fsdp_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    model = make_tiny_model(root / "model", stop_bias=3.0)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29531", str(DRIVER), str(model), str(root)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_sharded_policy_generates_what_the_whole_one_does(fsdp_run):
    for rank in (0, 1):
        report = json.loads((fsdp_run / f"rank-{rank}.json").read_text())
        assert report["kind"] == "fsdp2"
        assert report["whole_inside"] and report["sharded_after"]  # gathered for the block, given back after
        assert report["inside_tokens"] == report["reference_tokens"]
        assert report["inside_reason"] == report["reference_reason"]
        assert report["image_gap"] < 1e-5
        assert isinstance(report["without"], str) and "DTensor" in report["without"]  # why it is needed


def test_sharded_update_and_its_gathered_weights_match_the_unsharded_run(fsdp_run):
    whole = load_file(str(fsdp_run / "unsharded.safetensors"))
    sharded = load_file(str(fsdp_run / "sharded.safetensors"))
    assert set(whole) == set(sharded)
    assert max(float((whole[k] - sharded[k]).abs().max()) for k in whole) < 1e-5
    start = load_model(fsdp_run / "model", device="cpu", dtype="float32").model.state_dict()
    moved = max(float((whole["model." + k] - v).abs().max()) for k, v in start.items())
    assert moved > 1e-3  # the step did change the weights the comparison is about
    # and the sharded policy, gathered again, samples exactly what the unsharded trained one samples
    assert torch.equal(load_file(str(fsdp_run / "sharded_tokens.safetensors"))["image_ids"],
                       load_file(str(fsdp_run / "unsharded_tokens.safetensors"))["image_ids"])


def test_a_sharded_optimizer_state_checkpoints_whole_and_resumes_into_new_shards(fsdp_run):
    """The AdamW moments of an FSDP2 run, gathered whole, written as a checkpoint and loaded into a fresh
    sharded policy: its next step equals the uninterrupted run's; without the moments it does not."""
    for rank in (0, 1):
        report = json.loads((fsdp_run / f"rank-{rank}.json").read_text())
        assert report["saved_moments"] > 0
        assert report["resumed_gap"] < 1e-6, report["resumed_gap"]
        assert report["fresh_gap"] > 1e-3, report["fresh_gap"]


def test_unsharded_modules_pass_through():
    module = torch.nn.Linear(3, 2)
    assert sharding_kind(module) == "none"
    with full_parameters(module):
        assert module.weight.shape == (2, 3)
    assert full_state_dict(module).keys() == module.state_dict().keys()
