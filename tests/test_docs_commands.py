"""Every command README and docs/ tell a user to run (their ```bash blocks) runs, as written or shortened.

A command the docs show is either run exactly as written, run with a few
``key=value`` overrides appended that make it small (training recipes: the
same command, fewer steps), or skipped for a stated reason (a big checkpoint,
a GPU, the network, the test suite itself). A new command in the docs runs as
written unless it is listed here, so a broken example fails the suite. The
blocks of ``docs/cli.md`` and ``docs/training.md`` without a language are
synopses (``[--flag N]``), not commands. Commands run in order in one scratch
folder holding the repository's folders, so a later command may use what an
earlier one wrote (SFT reads the VQ run), as a reader following the page would.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
ACTIVATE = ". .venv/bin/activate && "

GRPO_SMALL = ("steps=1 prompts_per_step=2 group_size=2 micro_batch=4 rollout_batch=8 "
              "prompt_count=40 eval_count=2 save_every=1 sample_every=0")
SHORTER = {  # a command's start -> what is appended to it
    "gotr1-train vq ": "steps=2 batch_size=4 train_scenes=16 eval_scenes=4 save_every=2 log_every=1 "
                      "restart_every=1 warmup_steps=1",
    "gotr1-train sft ": "steps=2 batch_size=4 train_scenes=24 eval_scenes=2 save_every=2 log_every=1 warmup_steps=1",
    "gotr1-train grpo --config trainer/configs/shapeworld_grpo": GRPO_SMALL,
    "gotr1-train grpo --config trainer/configs/quickstart.yaml": "steps=2 save_every=2 sample_every=2 eval_count=4",
    "torchrun --nproc_per_node 2 -m trainer.cli grpo": f"model=builtin {GRPO_SMALL} "
                                                       "output_dir=runs/torchrun-check",
    "python benchmarks/fuzz_parser.py": "--count 2000",
}
SKIP = {  # a command's start -> why the suite does not run it
    "python -m pytest": "the test suite itself",
    "pip install": "installs packages: the suite runs in the environment they made",
    "comfy node": "talks to the ComfyUI Registry (network, a publisher token)",
    "gotr1 generate --model models/gotr1/GoT-R1-7B": "needs the 7B checkpoint",
    "gotr1-train grpo --config trainer/configs/gotr1_7b_grpo.yaml": "needs the 7B checkpoint and a judge server",
    "python3 -m venv": "makes an environment",
    "vllm serve": "serves a 7B judge (vLLM, a GPU)",
    "python docs/scripts/grpo_ablation.py": "runs 45 minutes or more; tests/test_docs_scripts.py runs it at a tiny size",
    "grep -v '^torch' /path/to/ComfyUI": "needs a ComfyUI checkout",
    "bash docs/scripts/retrain_builtin.sh": "runs 8 hours; tests/test_docs_scripts.py checks it without running it",
    "COMFYUI_PATH=/path/to/ComfyUI": "needs a ComfyUI checkout (tests/test_comfyui_server.py)",
}
FIRST_WORDS = ("gotr1", "gotr1-train", "python", "python3", "torchrun", "accelerate", "pip", "comfy", "grep", "vllm", "bash",
               "COMFYUI_PATH=/path/to/ComfyUI")


def documented_commands() -> list[tuple[str, str]]:
    """``(page:line, command)`` of every command in a ```bash block, continuation lines joined, comments and the
    venv activation dropped."""
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.finditer(r"^```(?:bash|sh|shell)\n(.*?)^```", text, re.S | re.M):
            first_line = text[:block.start()].count("\n") + 2
            lines = block.group(1).replace("\\\n", " ").splitlines()
            for offset, line in enumerate(lines):
                command = re.sub(r"\s+#.*$", "", line).strip().removeprefix(ACTIVATE)
                if command and command.split()[0] in FIRST_WORDS:
                    found.append((f"{page.relative_to(ROOT)}:{first_line + offset}", " ".join(command.split())))
    return found


COMMANDS = documented_commands()


def test_the_docs_hold_the_commands_this_suite_knows():
    """Every special case still names a command the docs show (a stale entry would hide a renamed one)."""
    commands = [c for _, c in COMMANDS]
    for start in [*SHORTER, *SKIP]:
        assert any(c.startswith(start) for c in commands), f"no documented command starts with {start!r}"
    assert len(commands) >= 20


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder like a fresh checkout's root: the repository's folders linked in, runs/ and out/ its own."""
    folder = tmp_path_factory.mktemp("docs")
    for name in ("trainer", "workflows", "benchmarks", "docs", "gotr1_core", "nodes", "web"):
        (folder / name).symlink_to(ROOT / name)
    (folder / "my_graph.json").write_text((ROOT / "workflows" / "text_to_image.json").read_text(encoding="utf-8"))
    return folder


@pytest.mark.parametrize("where, command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_runs(scratch, where, command):
    reason = next((why for start, why in SKIP.items() if command.startswith(start)), None)
    if reason:
        pytest.skip(reason)
    extra = next((more for start, more in SHORTER.items() if command.startswith(start)), "")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    env.pop("RANK", None)
    line = f"{command} {extra}".strip()
    done = subprocess.run(["bash", "-c", line], cwd=scratch, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{where}: {line}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert shlex.split(command)  # the command is well-quoted as written
