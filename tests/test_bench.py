"""``gotr1-train bench``: the harness (official file layout, resume), the ShapeWorld categories and scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from tiny_janus import make_tiny_model

from gotr1_core.model.loading import load_model
from gotr1_core.shapeworld.scenes import EVALUATION_SPLITS, split_of
from gotr1_core.shapeworld.world import BENCH_CATEGORIES, Group, SceneSpec, bench_category, scene_key
from trainer.bench import harness, report, shapeworld
from trainer.cli import main


def test_categories_follow_t2i_compbench_shapes():
    red, blue = Group(1, "red", "circle"), Group(1, "blue", "square")
    assert bench_category(SceneSpec((red, blue), "left of")) == "spatial"
    assert bench_category(SceneSpec((red, blue, Group(1, "green", "triangle")))) == "binding"
    assert bench_category(SceneSpec((Group(3, "red", "circle"),))) == "counting"
    assert bench_category(SceneSpec((Group(2, "red", "circle"), blue))) == "complex"
    assert bench_category(SceneSpec((red,))) is None


def test_bench_scenes_are_distinct_evaluation_scenes_of_every_split_and_fixed():
    scenes = shapeworld.bench_scenes(12)
    assert list(scenes) == list(BENCH_CATEGORIES)
    keys = [scene_key(s.spec) for chosen in scenes.values() for s in chosen]
    assert len(keys) == len(set(keys)) == 48  # distinct scenes, never trained on in any wording
    for name, chosen in scenes.items():
        assert all(bench_category(s.spec) == name and split_of(s.spec) in EVALUATION_SPLITS for s in chosen)
        assert {split_of(s.spec) for s in chosen} == set(EVALUATION_SPLITS)  # taken in turn from each split
    assert [s.prompt for s in shapeworld.bench_scenes(12)["spatial"]] == [s.prompt for s in scenes["spatial"]]


def test_a_category_the_splits_hold_fewer_scenes_of_gets_all_of_them():
    """Counting scenes are one colour-shape pair in a few counts: the three splits hold 22 of them."""
    scenes = shapeworld.bench_scenes(30)
    assert len(scenes["counting"]) == 22 and all(len(scenes[n]) == 30 for n in ("binding", "spatial", "complex"))
    assert len({scene_key(s.spec) for s in scenes["counting"]}) == 22


def _write(folder, scene, index, image, chain):
    folder.mkdir(parents=True, exist_ok=True)
    name = harness.image_name(scene.prompt, index)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(folder / name)
    with open(folder / harness.CHAINS, "a", encoding="utf-8") as log:
        log.write(json.dumps({"file": name, "prompt": scene.prompt, "index": index, "chain": chain}) + "\n")


def test_scores_of_known_images(tmp_path):
    """The world's own pictures are all correct; a blank image is wrong for both judges; copies of one picture
    are one distinct image; a scene is one observation (its images' mean)."""
    scenes = shapeworld.bench_scenes(2)
    folder = tmp_path / "samples"
    for name, chosen in scenes.items():
        for scene in chosen:
            for i in range(2):
                blank = name == "counting" and scene is chosen[0] and i == 1
                image = np.full_like(scene.render(), 255) if blank else scene.render()
                _write(folder, scene, i, image, scene.chain)
    results = shapeworld.score_folder(folder, scenes, 2)
    rows = results["categories"]
    assert rows["binding"]["renderback_correct"] == rows["spatial"]["exact_correct"] == 1.0
    assert rows["counting"]["renderback_correct"] == pytest.approx(0.75)  # scene means 0.5 and 1.0
    assert rows["counting"]["exact_correct"] == pytest.approx(0.75)
    assert rows["binding"]["distinct_images"] == 1.0 and rows["counting"]["distinct_images"] == 1.5
    assert results["overall"] == pytest.approx((1 + 1 + 0.75 + 1) / 4)
    wrong = [r for r in results["images"] if not r["renderback_correct"]]
    assert len(wrong) == 1 and wrong[0]["category"] == "counting" and wrong[0]["why"]
    text = report.write(results, tmp_path, "known images")
    assert "| counting | 2 | 75.0% [50.0%, 100.0%] | 75.0% | 1.5 | 1.0 |" in text
    assert (tmp_path / "chart.png").stat().st_size > 0 and json.loads((tmp_path / "results.json").read_text())
    (folder / harness.image_name(scenes["spatial"][1].prompt, 1)).unlink()
    with pytest.raises(ValueError, match="1 image\\(s\\) of .* missing"):
        shapeworld.score_folder(folder, scenes, 2)


def test_draw_writes_the_official_layout_and_resumes_with_only_the_missing_images(tmp_path):
    got = load_model(make_tiny_model(tmp_path / "model"), device="cpu")
    prompts, folder = ["a red circle", "a blue square left of a green circle"], tmp_path / "samples"
    assert harness.draw(got, prompts, folder, 3, seed=5) == 6
    names = sorted(p.name for p in folder.glob("*.png"))
    assert names == sorted(f"{p}_{i:06d}.png" for p in prompts for i in range(3))  # T2I-CompBench's names
    written = {n: (folder / n).stat().st_mtime_ns for n in names}
    assert harness.draw(got, prompts, folder, 3, seed=5) == 0  # nothing missing: nothing drawn
    killed = harness.image_name(prompts[1], 1)
    (folder / killed).unlink()
    with open(folder / harness.CHAINS, "a", encoding="utf-8") as log:
        log.write('{"file": "cut by a ki')  # a line a kill cut short is ignored
    assert harness.draw(got, prompts, folder, 3, seed=5) == 1
    assert (folder / killed).exists() and not list(folder.glob(".*partial*"))
    assert all((folder / n).stat().st_mtime_ns == t for n, t in written.items() if n != killed)
    chains = harness.read_chains(folder)
    assert set(chains) == set(names) and all(isinstance(c, str) for c in chains.values())
    assert harness.missing_runs([0, 1, 2, 5, 7, 8]) == [(0, 3), (5, 1), (7, 2)]


def test_bench_command_on_the_builtin_model_prints_the_table(tmp_path, capsys):
    assert main(["bench", "shapeworld", "--count", "1", "--images-per-prompt", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert all(f"| {name} | 1 |" in out for name in BENCH_CATEGORIES) and "mean of categories" in out
    assert (tmp_path / "chart.png").exists() and len(list((tmp_path / "samples").glob("*.png"))) == 4
    listing = json.loads((tmp_path / "prompts.json").read_text())
    assert set(listing) == set(BENCH_CATEGORIES)
    assert main(["bench", "shapeworld", "--count", "0"]) == 1
    # a rerun keeps the images there, so images of another seed (or other weights) must not be mixed in
    drawn = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "samples").glob("*.png")}
    assert main(["bench", "shapeworld", "--count", "1", "--images-per-prompt", "1", "--seed", "1",
                 "--out", str(tmp_path)]) == 1
    assert "drawn by other weights or settings" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "samples").glob("*.png")} == drawn


def test_a_bench_folder_refuses_images_of_other_weights(tmp_path):
    first, second = make_tiny_model(tmp_path / "a"), make_tiny_model(tmp_path / "b", seed=1)
    identity = harness.weights_identity(first, seed=0, quantize=None)
    assert identity == harness.weights_identity(first, seed=0, quantize=None)
    harness.claim(tmp_path / "out", identity)
    harness.claim(tmp_path / "out", identity)  # the same weights and settings: resumes
    for other in (harness.weights_identity(second, seed=0, quantize=None),
                  harness.weights_identity(first, seed=0, quantize="int8")):
        with pytest.raises(ValueError, match="give another --out, or delete the folder"):
            harness.claim(tmp_path / "out", other)
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "a red circle_000000.png").write_bytes(b"")  # drawn before folders were claimed
    with pytest.raises(ValueError, match="no record of the weights"):
        harness.claim(tmp_path / "legacy", identity)
