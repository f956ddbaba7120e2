"""One process of a 2-process FSDP2 run (torchrun, gloo on the CPU) for test_sharding.py.

usage: fsdp_driver.py MODEL_FOLDER OUT_FOLDER

Shards the tiny Janus model as accelerate's FSDP2 does (each decoder layer,
then the root), then on every rank: generates inside ``full_parameters`` and
without it, takes one optimiser step on this rank's half of a batch through
the sharded forward, and generates again; then checkpoints the optimizer state
gathered whole and resumes it into a fresh sharded policy for a second step. Writes ``rank-<r>.json`` and, on
rank 0, the unsharded reference (same batch, one process, whole) next to it.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gotr1_core.generation import GenerationConfig, generate  # noqa: E402
from gotr1_core.model.loading import load_model  # noqa: E402
from trainer.grpo import PolicyLogprobs, trainable_modules  # noqa: E402
from trainer.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from trainer.sharding import (full_optimizer_state, full_parameters, full_state_dict,  # noqa: E402
                              load_full_optimizer_state, sharding_kind)

PROMPTS = ["a red circle left of a blue square", "a green triangle", "two blue squares", "a cat"]
CONFIG = GenerationConfig(num_samples=1, seed=5, cfg_scale=2.0)


def trainable(model_dir: Path):
    got = load_model(model_dir, device="cpu", dtype="float32")
    for module in trainable_modules(got.model):
        module.requires_grad_(True)
    return got


def step(policy, optimizer, result, rows, total_rows) -> None:
    """One AdamW step on the mean image log-prob of ``rows`` (of ``total_rows`` over all ranks)."""
    optimizer.zero_grad()
    _, image = policy(result.select(rows))
    (-image.sum(dim=1).sum() / total_rows).backward()
    optimizer.step()


if __name__ == "__main__":
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)

    got = trainable(model_dir)
    reference = generate(got, PROMPTS, CONFIG)
    for name in ("reason_ids", "reason_mask", "image_ids"):  # outside inference mode, as rollouts keep them
        setattr(reference, name, getattr(reference, name).clone())
    if rank == 0:  # the unsharded run: the whole batch, one process
        whole = PolicyLogprobs(trainable(model_dir))
        opt = torch.optim.AdamW([p for p in whole.parameters() if p.requires_grad], lr=1e-2)
        step(whole, opt, reference, list(range(len(PROMPTS))), len(PROMPTS))
        save_file({k: v.detach().clone().contiguous() for k, v in whole.state_dict().items()},
                  str(out / "unsharded.safetensors"))
        tokens = generate(whole._got, PROMPTS, CONFIG).image_ids
        save_file({"image_ids": tokens}, str(out / "unsharded_tokens.safetensors"))

    from torch.distributed.fsdp import fully_shard

    policy = PolicyLogprobs(got)
    for layer in got.model.model.language_model.layers:
        fully_shard(layer)
    fully_shard(policy)
    report = {"kind": sharding_kind(policy)}
    with full_parameters(policy):
        inside = generate(got, PROMPTS, CONFIG)
        whole_tensors = all(not hasattr(p, "to_local") for p in got.model.parameters())
    report.update(inside_tokens=inside.image_ids.tolist(), reference_tokens=reference.image_ids.tolist(),
                  inside_reason=inside.chains, reference_reason=reference.chains,
                  image_gap=float((inside.images - reference.images).abs().max()), whole_inside=whole_tensors,
                  sharded_after=all(hasattr(p, "to_local") for p in got.model.parameters()))

    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-2)
    half = len(PROMPTS) // world
    mine = list(range(rank * half, (rank + 1) * half))
    optimizer.zero_grad()
    _, image = policy(reference.select(mine))
    (-image.sum(dim=1).sum() / len(PROMPTS) * world).backward()  # FSDP averages gradients over the ranks
    optimizer.step()
    state = full_state_dict(policy)
    with full_parameters(policy):
        trained = generate(got, PROMPTS, CONFIG)
    if rank == 0:
        save_file({k: v.detach().clone().contiguous() for k, v in state.items()}, str(out / "sharded.safetensors"))
        save_file({"image_ids": trained.image_ids}, str(out / "sharded_tokens.safetensors"))
    # Resuming from a checkpoint: the moments gathered whole, written and read back as the trainer's checkpoints
    # hold them, loaded into a fresh sharded policy made from the step-1 weights; one more step on both. A
    # third policy resumes the weights but not the moments (what a checkpoint without them would give).
    moments = full_optimizer_state(policy, optimizer)
    if rank == 0:
        save_checkpoint(out / "run", 1, state, {"optimizer": moments}, keep_last=1)
    dist.barrier()
    _, saved = load_checkpoint(find_checkpoint(out / "run"))
    resumed, fresh = [], []
    for keep_moments, into in ((True, resumed), (False, fresh)):
        again = PolicyLogprobs(trainable(model_dir))
        again.load_state_dict(state)
        for layer in again.model.model.language_model.layers:
            fully_shard(layer)
        fully_shard(again)
        opt = torch.optim.AdamW([p for p in again.parameters() if p.requires_grad], lr=1e-2)
        if keep_moments:
            load_full_optimizer_state(again, opt, saved["optimizer"])
        into.append((again, opt))
    for model, opt in [(policy, optimizer), resumed[0], fresh[0]]:
        opt.zero_grad()
        _, image = model(reference.select(mine))
        (-image.sum(dim=1).sum() / len(PROMPTS) * world).backward()
        opt.step()
    after = [full_state_dict(m) for m in (policy, resumed[0][0], fresh[0][0])]
    gap = lambda a, b: max(float((a[k] - b[k]).abs().max()) for k in a)  # noqa: E731
    report.update(resumed_gap=gap(after[0], after[1]), fresh_gap=gap(after[0], after[2]),
                  saved_moments=len(saved["optimizer"]["state"]))
    try:
        report["without"] = generate(got, PROMPTS, CONFIG).image_ids.tolist()
    except Exception as exc:  # noqa: BLE001 - what happens without gathering is what the test reports
        report["without"] = f"{type(exc).__name__}: {exc}"[:300]
    (out / f"rank-{rank}.json").write_text(json.dumps(report), encoding="utf-8")
    dist.destroy_process_group()
