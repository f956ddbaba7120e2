"""Runs a tiny GRPO run in one process of a ``torchrun`` launch (or alone) for test_grpo_data_parallel.py.

usage: grpo_dp_driver.py RUN_FOLDER MODEL_FOLDER STEPS [SAVE_EVERY] [--resume]
Each process writes ``judged-<rank>.json``: the (prompt, chain) pairs its judge scored.
With ``DYNAMIC_ROUNDS=n`` the run uses dynamic sampling (n rounds) and a judge that scores one prompt's groups alike.
With ``KILL_RANK=r`` in the environment, rank r SIGKILLs itself as its rollout of step 3 begins.
"""

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from grpo_helpers import EasyPromptJudge, LongChainJudge, tiny_run_config  # noqa: E402

import trainer.grpo  # noqa: E402


def recording(judge):
    judge.judged = []
    score = judge.score

    def recorded(prompts, chains, layouts, images):
        judge.judged += list(zip(prompts, chains))
        return score(prompts, chains, layouts, images)

    judge.score = recorded
    return judge


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--resume"]
    folder, model, steps = Path(args[0]), Path(args[1]), int(args[2])
    save_every = int(args[3]) if len(args) > 3 else steps
    rank = int(os.environ.get("RANK", "0"))
    if os.environ.get("KILL_RANK") == str(rank):
        real, calls = trainer.grpo.rollout, []

        def rollout(*a, **k):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)

        trainer.grpo.rollout = rollout
    folder.mkdir(parents=True, exist_ok=True)
    rounds = int(os.environ.get("DYNAMIC_ROUNDS", "0"))
    config = tiny_run_config(folder, model, steps=steps, prompts_per_step=4, group_size=2, micro_batch=3,
                             save_every=save_every, dynamic_sampling_rounds=rounds)
    judge = recording(EasyPromptJudge() if rounds else LongChainJudge())
    trainer.grpo.train_grpo(config, resume="--resume" in sys.argv, progress=False, judge=judge)
    (folder / f"judged-{rank}.json").write_text(json.dumps(judge.judged), encoding="utf-8")
