"""One process of a GRPO run whose policy ``accelerator.prepare`` shards with FSDP2, for test_grpo_data_parallel.py.

usage: grpo_fsdp_driver.py RUN_FOLDER MODEL_FOLDER

accelerate turns FSDP on only for GPU-type devices; on the CPU (torchrun,
gloo) ``prepare`` is replaced by what accelerate's ``fsdp_version: 2`` does:
``fully_shard`` each decoder layer, then the root, and point the optimizer at
the sharded parameters. Run alone (one process) the policy stays whole: the
reference the sharded run must match.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import accelerate  # noqa: E402

from grpo_helpers import LongChainJudge, tiny_run_config  # noqa: E402

import trainer.grpo  # noqa: E402


def fsdp2_prepare(self, policy, optimizer):
    from torch.distributed.fsdp import fully_shard

    for layer in policy.model.model.language_model.layers:
        fully_shard(layer)
    fully_shard(policy)
    optimizer.param_groups[0]["params"] = [p for p in policy.parameters() if p.requires_grad]
    return policy, optimizer


if __name__ == "__main__":
    folder, model = Path(sys.argv[1]), Path(sys.argv[2])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        accelerate.Accelerator.prepare = fsdp2_prepare
        trainer.grpo.partitioned_optimizer = lambda accelerator: "FSDP"
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_run_config(folder, model, steps=1, prompts_per_step=4, group_size=2, micro_batch=8,
                             grad_clip=1e-3, eval_prompts=[])
    trainer.grpo.train_grpo(config, progress=False, judge=LongChainJudge())
