"""The pictures README, docs/ and workflows/ show are the ones ``docs/scripts/make_pictures.py`` drew, with the
model weights shipped now: a picture left over from older weights, edited by hand, or never recorded fails."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOWN = sorted(str(p.relative_to(ROOT)) for folder in ("docs/images", "workflows/examples")
               for p in (ROOT / folder).glob("*.png"))


def _script():
    spec = importlib.util.spec_from_file_location("make_pictures", ROOT / "docs" / "scripts" / "make_pictures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_pictures = _script()
MANIFEST = json.loads((ROOT / make_pictures.MANIFEST).read_text(encoding="utf-8"))


def test_every_picture_shown_is_one_the_script_makes_and_records():
    assert set(SHOWN) == set(MANIFEST) <= set(make_pictures.PICTURES), (
        "pictures and docs/images/pictures.json disagree: run python docs/scripts/make_pictures.py")


@pytest.mark.parametrize("name", SHOWN)
def test_each_picture_is_what_its_command_drew_with_the_weights_shipped_now(name):
    entry = MANIFEST[name]
    assert make_pictures.sha256(ROOT / name) == entry["sha256"], f"{name} changed after it was drawn: redraw it"
    assert entry["weights_sha256"] == make_pictures.sha256(make_pictures.WEIGHTS), (
        f"{name} shows older weights than the built-in model's: python docs/scripts/make_pictures.py --only {name}")


def test_the_script_draws_a_picture_and_records_its_hashes(tmp_path):
    manifest = make_pictures.make(tmp_path, ["docs/images/demo.png"], None)
    picture = tmp_path / "docs/images/demo.png"
    assert set(manifest) == {"docs/images/demo.png"}
    assert manifest["docs/images/demo.png"]["sha256"] == make_pictures.sha256(picture)
    assert json.loads((tmp_path / make_pictures.MANIFEST).read_text()) == manifest

    with pytest.raises(SystemExit, match="give --comfyui"):
        make_pictures.make(tmp_path, ["workflows/examples/best_of_n_editor.png"], None)
    with pytest.raises(SystemExit, match="unknown picture"):
        make_pictures.make(tmp_path, ["docs/images/nothing.png"], None)
