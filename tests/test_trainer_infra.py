import dataclasses
import os
import random
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from trainer.checkpoint import find_checkpoint, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from trainer.config import ConfigError, load_config, positive


@dataclasses.dataclass
class Example:
    output_dir: str
    steps: int = 100
    lr: float = 1e-3
    sizes: list[int] = dataclasses.field(default_factory=lambda: [1, 2])
    name: str | None = None
    flag: bool = False

    def problems(self):
        return positive(self, "steps", "lr")


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("output_dir: runs/x\nsteps: 5\nlr: 1\nsizes: [3, 4]\n")
    config = load_config(Example, path, ["steps=7", "name=run"])
    assert config == Example("runs/x", 7, 1.0, [3, 4], "run", False)
    assert isinstance(config.lr, float)
    # YAML 1.1 reads 3e-5 (no dot) as a string; a float field takes it as the number it is
    assert load_config(Example, path, ["lr=3e-5"]).lr == pytest.approx(3e-5)
    path.write_text("output_dir: runs/x\nlr: 1e-4\n")
    assert load_config(Example, path).lr == pytest.approx(1e-4)


def test_all_problems_reported_together(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: many\nlr: -1\nbatch: 3\nflag: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Example, path)
    text = str(info.value)
    for expected in ["unknown key 'batch'", "steps: expected int", "flag: expected true/false",
                     "output_dir: required"]:
        assert expected in text
    with pytest.raises(ConfigError, match="lr: must be > 0"):
        load_config(Example, None, ["output_dir=x", "lr=-1"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(Example, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(Example, None, ["steps"])


def _model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    return model, optimizer


def test_checkpoint_round_trip_without_pickle(tmp_path):
    model, optimizer = _model_and_optimizer()
    random.seed(3)
    state = {"optimizer": optimizer.state_dict(), "rng": rng_state(), "data_position": 17}
    path = save_checkpoint(tmp_path, 5, model.state_dict(), state)
    expected_random = random.random()
    assert find_checkpoint(tmp_path) == path
    tensors, loaded = load_checkpoint(path)
    assert torch.equal(tensors["weight"], model.weight)
    assert loaded["step"] == 5 and loaded["data_position"] == 17
    fresh, fresh_opt = _model_and_optimizer()
    fresh_opt.load_state_dict(loaded["optimizer"])
    assert torch.equal(fresh_opt.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    set_rng_state(loaded["rng"])
    assert random.random() == expected_random
    assert not list(path.glob("*.pt")) and not list(path.glob("*.bin"))


def test_keep_last_and_latest(tmp_path):
    model, _ = _model_and_optimizer()
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, model.state_dict(), {}, keep_last=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*"))
    assert names == ["step-00000003", "step-00000004"]
    assert find_checkpoint(tmp_path).name == "step-00000004"


def test_incomplete_checkpoints_are_never_used(tmp_path):
    model, _ = _model_and_optimizer()
    save_checkpoint(tmp_path, 1, model.state_dict(), {})
    # A writer killed after creating the final name but before COMPLETE cannot happen (rename is atomic);
    # a killed writer leaves a temp folder, and a damaged pointer must not be trusted.
    broken = tmp_path / "checkpoints" / "step-00000009"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "checkpoints" / "latest").write_text("step-00000009\n")
    assert find_checkpoint(tmp_path).name == "step-00000001"
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        load_checkpoint(broken)


def test_kill_during_save_leaves_previous_checkpoint(tmp_path):
    """SIGKILL a writer at random moments while it saves a large checkpoint; the last complete one survives."""
    script = textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(os.getcwd())!r})
        from trainer.checkpoint import save_checkpoint
        big = {{"w": torch.randn(4_000_000)}}
        step = 0
        while True:
            step += 1
            save_checkpoint({str(tmp_path)!r}, step, big, {{"s": step}}, keep_last=2)
            print(step, flush=True)
    """)
    for delay in (0.0, 0.05, 0.13, 0.29):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # one save done; kill somewhere inside the following ones
        time.sleep(delay)
        proc.kill()
        proc.wait()
        proc.stdout.close()
        found = find_checkpoint(tmp_path)
        if found is not None:
            tensors, state = load_checkpoint(found)
            assert tensors["w"].numel() == 4_000_000 and state["s"] == state["step"]
    assert find_checkpoint(tmp_path) is not None  # the writers did get checkpoints out between kills
