"""The shipped ShapeWorld model: present, small, loadable offline, and good at its world."""

import json

import numpy as np
from PIL import Image

from gotr1_core.cli import main
from gotr1_core.demo import BUILTIN_MODEL, builtin_model_path, run_demo
from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.model.loading import load_model
from gotr1_core.reasoning import parse_chain
from gotr1_core.shapeworld import generate_split, parse_prompt


def test_ships_small_with_its_card_and_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    size = sum(f.stat().st_size for f in BUILTIN_MODEL.rglob("*") if f.is_file())
    assert size <= 25 * 2**20, f"{size / 2**20:.1f} MB"
    card = json.loads((BUILTIN_MODEL / "model_card.json").read_text())
    assert card["name"].startswith("shapeworld-tiny") and card["git_commit"] and card["config"]
    got = load_model(builtin_model_path(), device="cpu")  # the public loader, like any user checkpoint
    assert got.num_image_tokens == 64 and got.image_size == 64


def test_chains_parse_cleanly_and_name_the_prompts_objects():
    """The shipped model's plans: the model card's figures hold (a regression check, 100 test prompts)."""
    got = load_model(builtin_model_path(), device="cpu")
    scenes = generate_split("test", 100, seed=5)
    result = generate(got, [s.prompt for s in scenes], GenerationConfig(seed=1, max_batch=64), images=False)
    clean = [not parse_chain(c).diagnostics for c in result.chains]
    named = [sorted(o.label for o in parse_chain(c).objects) == sorted(parse_prompt(s.prompt).object_names())
             for s, c in zip(scenes, result.chains)]
    assert np.mean(clean) >= 0.99 and np.mean(named) >= 0.97, (np.mean(clean), np.mean(named))


def test_demo_runs_on_the_builtin_model(tmp_path, capsys):
    assert main(["demo", "a green triangle above a yellow circle", "-n", "2", "-o", str(tmp_path)]) == 0
    sheet = np.asarray(Image.open(tmp_path / "demo.png"))
    assert sheet.ndim == 3 and sheet.shape[1] >= 2 * 192
    report = run_demo("two red circles", num=2, output=tmp_path / "again")
    assert len(report["rewards"]) == 2 and all(r["r_sem"] == 1.0 for r in report["rewards"])


def test_prompts_outside_the_world_get_its_vocabulary(tmp_path, capsys):
    assert main(["demo", "a pink hexagon", "-o", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "unknown colour 'pink'" in err and "ShapeWorld knows colours red" in err
