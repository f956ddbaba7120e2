"""Full parameters of a sharded policy, for the code that runs it outside its wrapped forward.

Under DeepSpeed ZeRO-3 and FSDP every process keeps only a shard of each
weight between forwards; the wrapped ``forward`` gathers them for the loss.
Rollouts, evaluation, checkpoints and export call the model's pieces directly
(KV-cached decoding, the VQ decoder, ``state_dict``), so they would see empty
or partial tensors. :func:`full_parameters` gathers every weight for the
duration of a block and gives the memory back after — each library's own
mechanism:

* ZeRO-3: ``deepspeed.zero.GatheredParameters`` (read-only: no rank's edits
  are written back);
* FSDP2 (``torch.distributed.fsdp.fully_shard``, accelerate's
  ``fsdp_version: 2``): ``unshard()`` / ``reshard()`` of every sharded module;
* FSDP1: ``FullyShardedDataParallel.summon_full_params`` (no write-back).

Elsewhere (one process, DDP, ZeRO-1/2) parameters are whole already and the
block runs as is. Every process must enter the block together: gathering is a
collective operation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def sharding_kind(module: torch.nn.Module) -> str:
    """``zero3``, ``fsdp2``, ``fsdp1`` or ``none``: how ``module``'s parameters are split across processes."""
    if any(hasattr(p, "ds_id") for p in module.parameters()):  # DeepSpeed tags the parameters it partitions
        return "zero3"
    from torch.distributed.fsdp import FSDPModule, FullyShardedDataParallel

    modules = list(module.modules())
    if any(isinstance(m, FSDPModule) for m in modules):
        return "fsdp2"
    if any(isinstance(m, FullyShardedDataParallel) for m in modules):
        return "fsdp1"
    return "none"


@contextlib.contextmanager
def full_parameters(module: torch.nn.Module) -> Iterator[None]:
    """Every parameter of ``module`` (the model as ``accelerator.prepare`` returned it) whole inside the block.

    Pass the outermost wrapper: FSDP1 finds its root there, and FSDP2's root
    module holds the parameters no inner shard owns (embeddings, heads).
    """
    kind = sharding_kind(module)
    if kind == "zero3":
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(module.parameters()), modifier_rank=None):
            yield
    elif kind == "fsdp2":
        from torch.distributed.fsdp import FSDPModule

        sharded = [m for m in module.modules() if isinstance(m, FSDPModule)]  # the outermost first
        sharded[0]._get_fsdp_state()._lazy_init()  # settle which module is the root, as its first forward would
        kept = [_forward_resharding(m) for m in sharded]
        for m in sharded:
            m.set_reshard_after_forward(False, recurse=False)  # decoding calls each layer once per token
            m.unshard()
        try:
            yield
        finally:
            for m, state in zip(sharded, kept):
                _restore_forward_resharding(m, state)
                m.reshard()
    elif kind == "fsdp1":
        from torch.distributed.fsdp import FullyShardedDataParallel

        with FullyShardedDataParallel.summon_full_params(module, writeback=False):
            yield
    else:
        yield


def _forward_resharding(module) -> tuple:
    """What FSDP2 does after a forward of ``module`` (so it can be put back exactly: the root, for one, is
    left gathered after its forward while inner modules free theirs)."""
    state = module._get_fsdp_state()
    return state._auto_reshard_after_forward, [g.post_forward_mesh_info for g in state._fsdp_param_groups]


def _restore_forward_resharding(module, saved: tuple) -> None:
    state = module._get_fsdp_state()
    state._auto_reshard_after_forward = saved[0]
    for group, info in zip(state._fsdp_param_groups, saved[1]):
        group.post_forward_mesh_info = info


def full_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Whole tensors of every weight of ``module`` (a checkpoint's or an export's), on every process.

    FSDP's own ``state_dict`` holds this rank's shards only; torch's
    ``get_model_state_dict`` gathers them. Under ZeRO-3 the gathered tensors
    live only inside the block, so they are copied out (to the CPU).
    """
    kind = sharding_kind(module)
    if kind in ("fsdp1", "fsdp2"):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True))
    if kind == "zero3":
        with full_parameters(module):
            return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
    return module.state_dict()


def full_optimizer_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The whole optimizer state of an FSDP-sharded ``module`` (every process must call it: it gathers),
    keyed by parameter name rather than by position, on the CPU of the main process (others get ``{}``).

    Under FSDP each process holds the AdamW moments of its shards only; this
    is what a checkpoint written by the main process can hold, and what
    :func:`load_full_optimizer_state` puts back into the shards.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(module, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_full_optimizer_state(module: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load :func:`full_optimizer_state` (read from a checkpoint by every process) into the optimizer of an
    FSDP-sharded ``module``: each process keeps the part of the moments its shards own. A trainable weight
    without moments is one no step has updated yet (AdamW creates them at its first gradient, and a stage
    switch leaves some heads without one): it starts fresh, as it would have."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(module, optimizer, optim_state_dict=state,
                             options=StateDictOptions(full_state_dict=True, strict=False))


def partitioned_optimizer(accelerator) -> str | None:
    """The scheme splitting the optimizer state across processes (DeepSpeed ZeRO, FSDP), or None.

    Each process then holds only its part of the AdamW moments, which a
    checkpoint written by the main process cannot hold.
    """
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return f"DeepSpeed ZeRO-{accelerator.state.deepspeed_plugin.zero_stage}"
    if accelerator.distributed_type == DistributedType.FSDP:
        return "FSDP"
    return None
