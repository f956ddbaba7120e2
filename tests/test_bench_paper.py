"""``gotr1-train bench t2i-compbench | geneval``: pinned prompt lists, the official scoring rules on hand-made
detections and answers, the scorer models (tiny random ones of the real classes), and the commands end to end."""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_clip import make_tiny_clip
from tiny_janus import make_tiny_model
from tiny_scorers import make_tiny_blip, make_tiny_mask2former, make_tiny_owlv2

from gotr1_core.benchmarks import compbench, geneval, phrases
from gotr1_core.benchmarks.scorers import (SCORERS, BlipVQA, Detection, InstanceSegmenter, OpenVocabularyDetector,
                                            pre_question)
from trainer.bench import sources
from trainer.cli import main


# -- reading prompts -----------------------------------------------------------------

@pytest.mark.parametrize("prompt, expected", [
    ("a green bench and a blue bowl", ["a green bench", "a blue bowl"]),
    ("rubber gloves and a wooden table", ["rubber gloves", "a wooden table"]),
    ("The slimy green frog hopped onto the wet brown lily pad.", ["the slimy green frog", "the wet brown lily pad"]),
    ("a man wearing a red hat", ["a man", "a red hat"]),
    ("The soft, cozy comfort of the wool blanket", ["the soft cozy comfort", "the wool blanket"]),
    ("The silver watch was resting on the brown nightstand.", ["the silver watch", "the brown nightstand"]),
    ("a red bed and a blue building", ["a red bed", "a blue building"]),  # nouns that end like verbs stay
    ("a suitcase on the left of a girl", ["a suitcase", "a girl"]),  # "the left": the official scorer drops it
])
def test_noun_phrases_of_the_benchmarks_kinds_of_sentence(prompt, expected):
    assert phrases.noun_phrases(prompt) == expected


def test_relation_objects_and_adjectives():
    assert phrases.relation_objects("a balloon on the left of a giraffe") == ("on the left of", "balloon", "giraffe")
    assert phrases.relation_objects("a mouse near a bowl") == ("near", "mouse", "bowl")
    assert phrases.relation_objects("The black chair was next to the silver table.") == ("next to", "chair", "table")
    assert phrases.relation_objects("a red apple") == (None, None, None)
    assert phrases.without_adjectives("The round clock was on the left of the rectangular picture frame.") == (
        "the clock was on the left of the picture frame")
    assert pre_question('A "Red" Apple (Big)!?  ') == "a red apple big?"


# -- the official rules on hand-made numbers ----------------------------------------------

def test_position_score_follows_the_official_rule():
    left, right = (0, 0, 10, 10), (50, 0, 60, 10)
    assert compbench.position_score("on the left of", left, right) == 1.0
    assert compbench.position_score("on the right of", left, right) == 0.0
    assert compbench.position_score("on the right of", right, left) == 1.0
    # overlapping boxes: IoU 100 / 300 = 1/3, so 0.1 / (1/3)
    assert compbench.position_score("on the left of", (0, 0, 20, 10), (10, 0, 30, 10)) == pytest.approx(0.3)
    # y grows downwards: "on the top of" holds when the first box is above the second
    assert compbench.position_score("on the top of", (0, 0, 10, 10), (0, 80, 10, 90)) == 1.0
    assert compbench.position_score("on the bottom of", (0, 0, 10, 10), (0, 80, 10, 90)) == 0.0
    # near: 1 when either axis is within 150 px, else 150 over the larger offset
    assert compbench.position_score("near", (0, 0, 10, 10), (300, 0, 310, 10)) == 1.0
    assert compbench.position_score("near", (0, 0, 10, 10), (300, 400, 310, 410)) == pytest.approx(150 / 400)
    assert compbench.position_score("on top of", left, right) == 0.0  # in the vocabulary, not in the rule


def test_spatial_score_weighs_confidences_and_position():
    found = [Detection("balloon", 0.9, (0, 0, 10, 10)), Detection("giraffe", 0.8, (50, 0, 60, 10)),
             Detection("balloon", 0.4, (100, 0, 110, 10))]
    assert compbench.spatial_score(found, "on the left of", "balloon", "giraffe") == pytest.approx(
        0.25 * 0.9 + 0.25 * 0.8 + 0.5)
    # wrong side: 0.425 < 0.5 counts 0; one object alone is at most 0.25
    assert compbench.spatial_score(found, "on the right of", "balloon", "giraffe") == 0.0
    assert compbench.spatial_score(found[:1], "on the left of", "balloon", "giraffe") == 0.0
    assert compbench.three_in_one(0.8, 0.6, 0.3, True, False) == pytest.approx(0.7)
    assert compbench.three_in_one(0.8, 0.6, 0.3, False, True) == pytest.approx(0.55)
    assert compbench.three_in_one(0.8, 0.6, 0.3, False, False) == pytest.approx(1.7 / 3)


class FakeVQA:
    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def p_yes(self, images, questions):
        self.asked += questions
        return [self.answers[q] for q in questions]


def test_attribute_score_is_the_product_over_phrases():
    vqa = FakeVQA({"a green bench?": 0.9, "a blue bowl?": 0.5})
    assert compbench.attribute_score(vqa, None, "a green bench and a blue bowl") == (
        pytest.approx(0.45), ["a green bench", "a blue bowl"])
    assert vqa.asked == ["a green bench?", "a blue bowl?"]


def _det(label, score, box):
    return Detection(label, score, box)


def test_geneval_rules():
    assert geneval.relative_position(_det("a", 1, (0, 0, 10, 10)), _det("b", 1, (50, 0, 60, 10))) == {"left of"}
    assert geneval.relative_position(_det("a", 1, (0, 50, 10, 60)), _det("b", 1, (0, 0, 10, 10))) == {"below"}
    # touching boxes side by side: offset 10, margin 0.1 * 20 = 2 -> still "right of"
    assert geneval.relative_position(_det("a", 1, (10, 0, 20, 10)), _det("b", 1, (0, 0, 10, 10))) == {"right of"}
    assert geneval.relative_position(_det("a", 1, (0, 0, 10, 10)), _det("b", 1, (1, 1, 11, 11))) == set()
    found = [_det("clock", 0.95, (0, 0, 5, 5)), _det("clock", 0.92, (10, 0, 15, 5)), _det("clock", 0.5, (20, 0, 25, 5))]
    assert [len(v) for v in geneval.keep_objects(found, "counting").values()] == [2]  # 0.9 for counting
    assert [len(v) for v in geneval.keep_objects(found, "two_object").values()] == [3]  # 0.3 otherwise
    two_clocks = {"tag": "counting", "include": [{"class": "clock", "count": 2}],
                  "exclude": [{"class": "clock", "count": 3}]}
    no_colors = lambda *a: []  # noqa: E731
    assert geneval.evaluate(None, geneval.keep_objects(found, "counting"), two_clocks, no_colors) == (True, [])
    correct, reasons = geneval.evaluate(None, geneval.keep_objects(found, "two_object"), two_clocks, no_colors)
    assert not correct and reasons == ["expected clock<3, found 3"]
    position = {"tag": "position", "include": [{"class": "kite", "count": 1},
                                               {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    objects = {"kite": [_det("kite", 0.9, (0, 0, 10, 10))], "dog": [_det("dog", 0.9, (50, 0, 60, 10))]}
    assert geneval.evaluate(None, objects, position, no_colors)[0]
    objects["dog"] = [_det("dog", 0.9, (0, 50, 10, 60))]
    assert geneval.evaluate(None, objects, position, no_colors) == (False, ["expected dog right of target, found "
                                                                            "below target"])
    colour = {"tag": "color_attr", "include": [{"class": "apple", "count": 1, "color": "black"}]}
    apple = {"apple": [_det("apple", 0.9, (0, 0, 10, 10))]}
    assert geneval.evaluate(None, apple, colour, lambda image, objs, name: ["black"])[0]
    assert not geneval.evaluate(None, apple, colour, lambda image, objs, name: ["red"])[0]


# -- pinned prompt lists -------------------------------------------------------------------

def _pinned(folder: Path, name: str, text: str) -> sources.PinnedFile:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(text.encode())
    return sources.PinnedFile("owner/repo", "c" * 40, f"lists/{name}", hashlib.sha256(text.encode()).hexdigest())


def test_prompt_lists_are_verified_by_hash_from_a_folder_or_a_download(tmp_path):
    pinned = _pinned(tmp_path / "offline", "color_val.txt", "a red bench\r\na blue bowl\r\n\r\na red bench")
    assert sources.read_lines(sources.fetch({"color": pinned}, tmp_path / "offline")["color"]) == [
        "a red bench", "a blue bowl"]  # CRLF lines, blank line and duplicate dropped
    (tmp_path / "offline" / "color_val.txt").write_text("a changed list")
    with pytest.raises(sources.PromptListError, match=f"expected {pinned.sha256}.*commit ccccccc"):
        sources.fetch({"color": pinned}, tmp_path / "offline")
    with pytest.raises(sources.PromptListError, match="missing; --prompts-dir needs color_val.txt"):
        sources.fetch({"color": pinned}, tmp_path / "empty")

    served = tmp_path / "served" / "owner" / "repo" / ("c" * 40) / "lists"
    _pinned(served, "color_val.txt", "a red bench\na blue bowl\n")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path / "served"))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    good = sources.PinnedFile("owner/repo", "c" * 40, "lists/color_val.txt",
                              hashlib.sha256(b"a red bench\na blue bowl\n").hexdigest())
    try:
        path = sources.fetch({"color": good}, cache=tmp_path / "cache", base_url=base)["color"]
        assert sources.read_lines(path) == ["a red bench", "a blue bowl"]
    finally:
        server.shutdown()
        thread.join()
    # cached: no server needed the second time; a server that is gone is a clear error for a missing file
    assert sources.fetch({"color": good}, cache=tmp_path / "cache", base_url=base)["color"] == path
    with pytest.raises(sources.PromptListError, match="cannot download .* pass --prompts-dir"):
        sources.fetch({"color": good}, cache=tmp_path / "other-cache", base_url=base)


def test_the_pinned_manifests_name_both_t2i_versions():
    for version in sources.T2I_COMPBENCH.values():
        assert set(version) == {*compbench.CATEGORIES, "complex_spatial", "complex_action"}
        assert all(re.fullmatch(r"[0-9a-f]{64}", f.sha256) and len(f.commit) == 40 for f in version.values())
    new, old = sources.T2I_COMPBENCH["2025"]["color"], sources.T2I_COMPBENCH["2024"]["color"]
    assert new.path == old.path and new.sha256 != old.sha256 and new.commit != old.commit


# -- scorer models --------------------------------------------------------------------------

def _picture(seed=0, size=(40, 48)):
    return Image.fromarray((np.random.RandomState(seed).rand(size[1], size[0], 3) * 255).astype(np.uint8))


def test_blip_vqa_scores_do_not_depend_on_the_batch(tmp_path):
    vqa = BlipVQA(make_tiny_blip(tmp_path / "blip"), device="cpu", max_batch=2)
    questions = ["a red circle?", "the blue square and a green bench?", "a cat?"]
    images = [_picture(0), _picture(1), _picture(2)]
    together = vqa.p_yes(images, questions)
    alone = [vqa.p_yes([image], [question])[0] for image, question in zip(images, questions)]
    assert together == pytest.approx(alone, abs=1e-6) and all(0 < p < 1 for p in together)
    assert vqa.p_yes([images[0]], ["A Red Circle?!"]) == pytest.approx(alone[:1], abs=1e-6)  # pre_question


def test_detector_and_segmenter_boxes(tmp_path):
    detector = OpenVocabularyDetector(make_tiny_owlv2(tmp_path / "owl"), device="cpu", threshold=0.0)
    found = detector.detect(_picture(), ["cat", "dog"])
    assert found and {d.label for d in found} <= {"cat", "dog"}
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)
    assert all(0 <= d.box[0] <= d.box[2] <= 40 and 0 <= d.box[1] <= d.box[3] <= 48 for d in found)
    labels = [f"class{i}" for i in range(80)]
    segmenter = InstanceSegmenter(make_tiny_mask2former(tmp_path / "m2f", labels), device="cpu", max_per_image=20)
    found = segmenter.detect(_picture())
    assert len(found) == 20 and all(d.label in labels and d.mask.shape == (48, 40) for d in found)
    for d in found:  # each box is its mask's extent
        ys, xs = np.nonzero(d.mask)
        assert d.box == ((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) if len(xs) else (0, 0, 0, 0))
    assert geneval.label_names(labels, [f"name{i}" for i in range(80)])["class3"] == "name3"


def test_scorer_folders_are_checked_with_a_clear_message(tmp_path):
    from gotr1_core.model.loading import CheckpointError

    with pytest.raises(CheckpointError, match="no config.json"):
        BlipVQA(tmp_path / "nothing", device="cpu")
    make_tiny_clip(tmp_path / "clip")
    with pytest.raises(CheckpointError, match="model_type is 'clip'; the BLIP VQA model must be 'blip'"):
        BlipVQA(tmp_path / "clip", device="cpu")


# -- the commands end to end ------------------------------------------------------------------

T2I_LISTS = {
    "color": "a red circle and a blue square\r\na green bench and a blue bowl\r\n",
    "spatial": "a cat on the left of a dog\r\n",
    "non_spatial": "a dog is chasing a cat\r\n",
    "complex": "The red cat was next to the blue dog.\r\nThe green dog is chasing the red cat.\r\n",
    "complex_spatial": "The red cat was next to the blue dog.\r\n",
    "complex_action": "The green dog is chasing the red cat.\r\n",
}


@pytest.fixture(scope="module")
def bench_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-models")
    scorers = root / "scorers"
    make_tiny_blip(scorers / SCORERS["vqa"].folder)
    make_tiny_clip(scorers / SCORERS["clip"].folder)
    make_tiny_owlv2(scorers / SCORERS["detector"].folder)
    make_tiny_clip(scorers / SCORERS["color_clip"].folder, seed=1)
    make_tiny_mask2former(scorers / SCORERS["segmenter"].folder, [f"c{i}" for i in range(80)])
    return make_tiny_model(root / "model"), scorers


def test_t2i_compbench_end_to_end_in_the_official_layout(tmp_path, bench_models, monkeypatch, capsys):
    model, scorers = bench_models
    lists = {key: _pinned(tmp_path / "lists", f"{key}_val.txt", text) for key, text in T2I_LISTS.items()}
    monkeypatch.setitem(sources.T2I_COMPBENCH, "2025", lists)
    out = tmp_path / "out"
    argv = ["bench", "t2i-compbench", str(model), "--prompts-dir", str(tmp_path / "lists"), "--scorers", str(scorers),
            "--categories", "color", "spatial", "non_spatial", "complex", "--images-per-prompt", "2", "--out",
            str(out), "--device", "cpu"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| GoT-R1-7B (published) | 0.8139 | 0.3306 | 0.3169 | 0.3944 |" in text
    results = json.loads((out / "results.json").read_text())
    # the layout the official scripts read: only {prompt}_{index:06d}.png in samples/, the prompt before "_"
    for category in ("color", "spatial", "non_spatial", "complex"):
        names = sorted(p.name for p in (out / category / "samples").iterdir())
        prompts = {p.strip() for p in T2I_LISTS[category].splitlines() if p.strip()}
        assert {n.split("_")[0] for n in names} == prompts and len(names) == 2 * len(prompts)
        assert sorted(int(n.split("_")[-1].split(".")[0]) for n in names) == sorted([0, 1] * len(prompts))
        rows = [r for r in results["images"] if r["category"] == category]
        assert results["categories"][category]["score"] == pytest.approx(np.mean([r["score"] for r in rows]))
    colour = [r for r in results["images"] if r["category"] == "color"]
    assert all(0 < r["score"] < 1 and len(r["phrases"]) == 2 for r in colour)
    complex_rows = {r["prompt"]: r for r in results["images"] if r["category"] == "complex"}
    spatial_one = complex_rows["The red cat was next to the blue dog."]
    assert spatial_one["score"] == pytest.approx((spatial_one["attribute"] + spatial_one["spatial"]) / 2)
    action_one = complex_rows["The green dog is chasing the red cat."]
    assert action_one["score"] == pytest.approx((action_one["attribute"] + action_one["action"]) / 2)
    assert results["prompt_lists"]["files"]["color"]["sha256"] == lists["color"].sha256
    assert (out / "chart.png").stat().st_size > 0

    # resume: a killed run's missing image is the only one drawn again; --score-only needs no model
    victim = next((out / "color" / "samples").iterdir())
    kept = {p: p.stat().st_mtime_ns for p in (out / "color" / "samples").iterdir() if p != victim}
    victim.unlink()
    assert main(argv + ["--draw-only"]) == 0
    assert victim.exists() and all(p.stat().st_mtime_ns == t for p, t in kept.items())
    assert main([a for a in argv if a != str(model)] + ["--score-only"]) == 0


def test_geneval_end_to_end_in_the_official_layout(tmp_path, bench_models, monkeypatch, capsys):
    model, scorers = bench_models
    rows = [{"tag": "single_object", "include": [{"class": "c3", "count": 1}], "prompt": "a photo of a cat"},
            {"tag": "color_attr", "include": [{"class": "c5", "count": 1, "color": "red"}],
             "prompt": "a photo of a red dog"}]
    metadata = _pinned(tmp_path / "lists", "evaluation_metadata.jsonl", "\n".join(map(json.dumps, rows)) + "\n")
    names = _pinned(tmp_path / "lists", "object_names.txt", "\n".join(f"c{i}" for i in range(80)) + "\n")
    monkeypatch.setattr(sources, "GENEVAL", {"metadata": metadata, "object_names": names})
    out = tmp_path / "out"
    assert main(["bench", "geneval", str(model), "--prompts-dir", str(tmp_path / "lists"), "--scorers", str(scorers),
                 "--images-per-prompt", "2", "--out", str(out), "--device", "cpu"]) == 0
    assert "| GoT-R1-7B (published) | 0.9900 | 0.6800 |" in capsys.readouterr().out
    for index, row in enumerate(rows):
        folder = out / f"{index:05d}"
        assert json.loads((folder / "metadata.jsonl").read_text()) == row  # GenEval's json.load of the file
        assert sorted(p.name for p in (folder / "samples").iterdir()) == ["00000.png", "00001.png"]
    results = json.loads((out / "results.json").read_text())
    assert set(results["categories"]) == {"single_object", "color_attr"} and len(results["images"]) == 4
    assert results["overall"] == pytest.approx(np.mean([r["score"] for r in results["categories"].values()]))


def test_quantized_weights_and_memory_sized_batches(tmp_path, bench_models, monkeypatch):
    """--quantize loads the model quantized and --memory-budget sizes the batches by the memory plan: the images are
    those of a run that drew them one at a time (the stream (seed, i) does not depend on the batch)."""
    from gotr1_core.memory import largest_chunk, parse_bytes
    from gotr1_core.model.loading import _tensor_source, read_config_json
    from trainer.bench import command

    model, scorers = bench_models
    lists = {"spatial": _pinned(tmp_path / "lists", "spatial_val.txt", "a cat on the left of a dog\n")}
    monkeypatch.setitem(sources.T2I_COMPBENCH, "2025", lists)
    loaded = []
    real_load = command._load
    monkeypatch.setattr(command, "_load", lambda args, out: loaded.append(args) or real_load(args, out))
    common = ["bench", "t2i-compbench", str(model), "--prompts-dir", str(tmp_path / "lists"), "--categories", "spatial",
              "--images-per-prompt", "3", "--device", "cpu", "--draw-only", "--quantize", "int8"]
    assert main(common + ["--out", str(tmp_path / "a"), "--memory-budget", "1GB"]) == 0
    assert main(common + ["--out", str(tmp_path / "b"), "--max-batch", "1"]) == 0
    config = _tensor_source(model, read_config_json(model))[0]
    assert loaded[0].max_batch == largest_chunk(config, parse_bytes("1GB"), 3, weights="int8", device="cpu") == 3
    names = sorted(p.name for p in (tmp_path / "a" / "spatial" / "samples").iterdir())
    assert len(names) == 3
    for name in names:
        a = np.asarray(Image.open(tmp_path / "a" / "spatial" / "samples" / name))
        b = np.asarray(Image.open(tmp_path / "b" / "spatial" / "samples" / name))
        assert np.array_equal(a, b)
    assert main(common + ["--out", str(tmp_path / "c"), "--memory-budget", "1KB"]) == 1  # not even one image fits


def test_bad_runs_stop_before_drawing(tmp_path, bench_models, monkeypatch, capsys):
    model, scorers = bench_models
    lists = {"spatial": _pinned(tmp_path / "lists", "spatial_val.txt", "a cat on the left of a dog\n")}
    monkeypatch.setitem(sources.T2I_COMPBENCH, "2025", lists)
    assert main(["bench", "t2i-compbench", str(model), "--prompts-dir", str(tmp_path / "lists"), "--categories",
                 "spatial", "--scorers", str(tmp_path / "no-scorers"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "open-vocabulary detector" in err and "owlv2-base-patch16-ensemble: no config.json" in err
    assert main(["bench", "t2i-compbench", str(model), "--prompts-dir", str(tmp_path),
                 "--out", str(tmp_path / "o")]) == 1
    assert "missing; --prompts-dir needs spatial_val.txt" in capsys.readouterr().err
    assert main(["bench", "geneval", str(model), "--categories", "colour"]) == 1
    assert "unknown colour" in capsys.readouterr().err
    assert main(["bench", "geneval"]) == 1
    assert "name the model folder to bench" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
