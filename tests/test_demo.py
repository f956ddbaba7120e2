import numpy as np
import pytest
from PIL import Image

from gotr1_core.cli import main
from gotr1_core import demo
from gotr1_core.demo import run_demo
from gotr1_core.model.loading import load_model
from tiny_janus import make_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_model(make_tiny_model(tmp_path_factory.mktemp("demo") / "model", stop_bias=2.0), device="cpu")


def test_demo_writes_a_sheet_with_rewards(tiny, tmp_path):
    report = run_demo("a red circle left of a blue square", num=3, output=tmp_path, got=tiny)
    sheet = np.asarray(Image.open(report["sheet"]))
    assert sheet.shape[1] >= 3 * 192 and sheet.shape[2] == 3
    assert len(report["chains"]) == 3 and len(report["rewards"]) == 3  # a ShapeWorld prompt is judged


def test_demo_without_exact_judge_for_other_prompts(tiny, tmp_path):
    report = run_demo("a cat on a sofa", num=2, output=tmp_path, got=tiny)
    assert report["rewards"] is None and len(report["chains"]) == 2


def test_demo_cli_with_a_model_folder(tiny, tmp_path, capsys):
    assert main(["demo", "a green triangle", "-n", "2", "-o", str(tmp_path), "--model", str(tiny.path)]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and (tmp_path / "demo.png").exists()


def test_missing_builtin_model_is_explained(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "BUILTIN_MODEL", tmp_path / "not-installed")
    assert main(["demo", "-o", str(tmp_path)]) == 2
    assert "built-in ShapeWorld model is missing" in capsys.readouterr().err


def test_builtin_model_reads_usual_phrasings(tmp_path, capsys):
    """People's wording is rewritten to the canonical prompt the built-in model was trained on; the judge
    then finds the relation it asked for."""
    assert main(["demo", "A red circle to the left of a blue square.", "-n", "2", "-o", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "prompt: a red circle left of a blue square  (read from 'A red circle to the left of a blue square.')" \
        in out
    assert out.count("correct") >= 1
    assert main(["demo", "a red circel to the left of a bleu squre", "-o", str(tmp_path)]) == 1
    assert "Did you mean 'a red circle left of a blue square'?" in capsys.readouterr().err
