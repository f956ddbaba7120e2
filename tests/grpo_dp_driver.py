"""Runs a tiny GRPO run in one process of a ``torchrun`` launch (or alone) for test_grpo_data_parallel.py.

usage: grpo_dp_driver.py RUN_FOLDER MODEL_FOLDER STEPS
Each process writes ``judged-<rank>.json``: the (prompt, chain) pairs its judge scored.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from grpo_helpers import LongChainJudge, tiny_run_config  # noqa: E402

from trainer.grpo import train_grpo  # noqa: E402


class RecordingJudge(LongChainJudge):
    def __init__(self):
        self.judged = []

    def score(self, prompts, chains, layouts, images):
        self.judged += list(zip(prompts, chains))
        return super().score(prompts, chains, layouts, images)


if __name__ == "__main__":
    folder, model, steps = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    folder.mkdir(parents=True, exist_ok=True)
    config = tiny_run_config(folder, model, steps=steps, prompts_per_step=4, group_size=2, micro_batch=3,
                             save_every=steps)
    judge = RecordingJudge()
    train_grpo(config, progress=False, judge=judge)
    rank = int(os.environ.get("RANK", "0"))
    (folder / f"judged-{rank}.json").write_text(json.dumps(judge.judged), encoding="utf-8")
