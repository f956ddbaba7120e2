import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gotr1_core.images import to_pil
from gotr1_core.reasoning import join_chains
from gotr1_core.shapeworld import generate_split
from nodes import services
from nodes.judge_nodes import JudgeLoader, RewardJudge, SelectBest

SCENES = generate_split("test", 3, seed=2)


def images_of(scenes):
    return torch.from_numpy(np.stack([s.render() for s in scenes]).astype(np.float32) / 255)


def test_judge_scores_a_batch_and_draws_overlays():
    (judge,) = JudgeLoader().load("ShapeWorld (exact)")
    scene = SCENES[0]
    good = images_of([scene])[0]
    blank = torch.ones_like(good)
    images = torch.stack([blank, good])
    best, report, drawn = RewardJudge().judge(judge, scene.prompt, scene.chain, images)
    data = json.loads(report)
    assert best == 2.0 and data["best"] == 1
    assert [s["total"] for s in data["samples"]] == [0.0, 2.0]
    assert data["samples"][1]["correct"] is True and data["samples"][1]["detected"]
    assert drawn.shape == (2, 256, 256, 3) and drawn.dtype == torch.float32
    chosen, index = SelectBest().select(images, report)
    assert index == 1 and torch.equal(chosen, images[1:2])


def test_one_chain_per_image():
    (judge,) = JudgeLoader().load("ShapeWorld (exact)")
    a, b = SCENES[0], SCENES[1]
    images = images_of([a, a])
    _, report, _ = RewardJudge().judge(judge, a.prompt, join_chains([b.chain, a.chain]), images)
    totals = [s["total"] for s in json.loads(report)["samples"]]
    assert totals[1] == 2.0 and totals[0] < 2.0


def test_bad_inputs_are_explained():
    (judge,) = JudgeLoader().load("ShapeWorld (exact)")
    images = images_of(SCENES)
    with pytest.raises(ValueError, match="2 chains for 3 images"):
        RewardJudge().judge(judge, SCENES[0].prompt, join_chains([SCENES[0].chain] * 2), images)
    with pytest.raises(ValueError, match="not a ShapeWorld prompt"):
        RewardJudge().judge(judge, "a cat on a sofa", SCENES[0].chain, images)
    with pytest.raises(ValueError, match="not a GoT-R1 Reward Judge report"):
        SelectBest().select(images, "{}")
    with pytest.raises(ValueError, match="scores 1 images but 3"):
        SelectBest().select(images, json.dumps({"samples": [{"total": 1.0}]}))
    with pytest.raises(ValueError, match="unknown judge"):
        JudgeLoader().load("gpt")


def test_mllm_judges_are_listed_and_loaded_from_the_judges_folder(tmp_path, monkeypatch):
    from gotr1_core.rewards import MLLMJudge
    from tiny_qwen import make_tiny_qwen

    make_tiny_qwen(tmp_path / "judges" / "tiny-qwen")
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(tmp_path))
    options = JudgeLoader.INPUT_TYPES()["required"]["judge"][0]
    assert options == ["ShapeWorld (exact)", "judges/tiny-qwen"]
    (judge,) = JudgeLoader().load("judges/tiny-qwen", "fp32")
    assert isinstance(judge.judge, MLLMJudge) and judge.handle is not None  # offloadable by model management
    assert JudgeLoader().load("judges/tiny-qwen", "fp32")[0] is judge
    scene = SCENES[0]
    best, report, drawn = RewardJudge().judge(judge, scene.prompt, scene.chain, images_of([scene]))
    assert 0.0 <= best <= 2.0 and json.loads(report)["judge"] == "mllm"
    with pytest.raises(ValueError):
        JudgeLoader().load("judges/../../etc", "fp32")


class RecordingBar:
    """Stands in for ComfyUI's progress bar."""

    def __init__(self):
        self.updates = []

    def update_absolute(self, value, total=None, preview=None):
        self.updates.append((value, total))


def test_mllm_judging_shows_progress_and_cancels_within_a_token(tmp_path, monkeypatch):
    from tiny_qwen import make_tiny_qwen

    make_tiny_qwen(tmp_path / "judges" / "tiny-qwen")
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(tmp_path))
    (judge,) = JudgeLoader().load("judges/tiny-qwen", "fp32")
    scene = SCENES[0]
    questions = 3 + len(set(scene.layout.labels))  # R_sem, R_spa, R_PI, one grounding question per label
    bar = RecordingBar()
    monkeypatch.setattr(services, "progress_bar", lambda total: bar)
    real_check, checks = services.check_interrupted, []

    def counting_check():
        checks.append(1)
        real_check()

    monkeypatch.setattr(services, "check_interrupted", counting_check)
    RewardJudge().judge(judge, scene.prompt, scene.chain, images_of([scene]))
    done = [value for value, _ in bar.updates]
    assert done[0] == 0 and done[-1] == questions and done == sorted(set(done))  # the bar moves per answer
    assert all(total == questions for _, total in bar.updates)
    assert len(checks) > 2 * questions  # but cancel is checked on every generated token

    checks.clear()

    def cancel_at_the_third_token():
        checks.append(1)
        if len(checks) == 3:
            services.request_interrupt()  # the cancel button
        real_check()

    monkeypatch.setattr(services, "check_interrupted", cancel_at_the_third_token)
    with pytest.raises(services.InterruptedByUser):
        RewardJudge().judge(judge, scene.prompt, scene.chain, images_of([scene]))
    assert len(checks) == 3  # stopped at that very token


def test_judge_loader_caches_until_the_folder_changes(tmp_path, monkeypatch):
    from tiny_qwen import make_tiny_qwen

    folder = make_tiny_qwen(tmp_path / "judges" / "tiny-qwen")
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(tmp_path))
    assert JudgeLoader.IS_CHANGED("ShapeWorld (exact)") == JudgeLoader.IS_CHANGED("ShapeWorld (exact)")
    before = JudgeLoader.IS_CHANGED("judges/tiny-qwen", "fp32")
    assert JudgeLoader.IS_CHANGED("judges/tiny-qwen", "fp32") == before
    (Path(folder) / "config.json").write_text((Path(folder) / "config.json").read_text() + "\n")
    assert JudgeLoader.IS_CHANGED("judges/tiny-qwen", "fp32") != before
    missing = JudgeLoader.IS_CHANGED("judges/gone", "fp32")
    assert missing != missing  # NaN: ComfyUI runs the node, whose error names the problem


def test_quality_model_and_formula_from_the_judge_loader(tmp_path, monkeypatch):
    """A quality model from models/gotr1/quality/ adds R_HPS to the report; v2 multiplies the total by it."""
    from tiny_clip import make_tiny_clip

    from gotr1_core.rewards import HPSScorer

    make_tiny_clip(tmp_path / "quality" / "hps-tiny")
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(tmp_path))
    optional = JudgeLoader.INPUT_TYPES()["optional"]
    assert optional["quality_model"][0] == ["none", "quality/hps-tiny"]
    assert optional["reward_formula"][0] == ["v1", "v2", "custom"]
    (judge,) = JudgeLoader().load("ShapeWorld (exact)", quality_model="quality/hps-tiny", reward_formula="v2")
    assert judge.quality_handle is not None  # offloadable by model management, like an MLLM judge
    scene = SCENES[0]
    images = images_of([scene, scene])
    best, report, _ = RewardJudge().judge(judge, scene.prompt, join_chains([scene.chain, "no plan"]), images)
    data = json.loads(report)
    hps = HPSScorer(tmp_path / "quality" / "hps-tiny", device="cpu").score([scene.prompt], images[:1])[0]
    assert data["formula"] == "v2" and data["samples"][0]["r_hps"] == pytest.approx(hps, abs=1e-5)
    assert best == pytest.approx(hps, abs=1e-5)  # a correct scene: R_PI (R_sem + R_spa) / 2 R_RI = 1
    (custom,) = JudgeLoader().load("ShapeWorld (exact)", reward_formula="custom", reward_expression="r_pi * r_ri")
    _, report, _ = RewardJudge().judge(custom, scene.prompt, scene.chain, images[:1])
    assert json.loads(report)["samples"][0]["total"] == 1.0 and "r_hps" not in json.loads(report)["samples"][0]
    with pytest.raises(ValueError, match="multiplies by R_HPS: choose a quality_model"):
        JudgeLoader().load("ShapeWorld (exact)", reward_formula="v2")
    with pytest.raises(ValueError, match="not allowed"):
        JudgeLoader().load("ShapeWorld (exact)", reward_formula="custom", reward_expression="open('x')")
    with pytest.raises(ValueError):
        JudgeLoader().load("ShapeWorld (exact)", quality_model="quality/../../etc")
    with pytest.raises(ValueError, match="asks no questions"):
        JudgeLoader().load("ShapeWorld (exact)", questions="paper")
    changed = JudgeLoader.IS_CHANGED("ShapeWorld (exact)", quality_model="quality/hps-tiny", reward_formula="v2")
    assert changed == JudgeLoader.IS_CHANGED("ShapeWorld (exact)", quality_model="quality/hps-tiny",
                                             reward_formula="v2")
    assert changed != JudgeLoader.IS_CHANGED("ShapeWorld (exact)", quality_model="quality/hps-tiny",
                                             reward_formula="v1")
    gone = JudgeLoader.IS_CHANGED("ShapeWorld (exact)", quality_model="quality/gone")
    assert gone != gone  # NaN: ComfyUI runs the loader, which says what is wrong


def test_benchmark_scorer_scores_a_batch_as_the_bench_does():
    from nodes.judge_nodes import BenchmarkScorer

    scene = next(s for s in SCENES if len(s.spec.groups) > 1)
    good = images_of([scene])[0]
    images = torch.stack([good, good, torch.ones_like(good)])
    correct, report = BenchmarkScorer().score(images, scene.prompt)
    data = json.loads(report)
    assert correct == pytest.approx(2 / 3) and data["distinct_images"] == 2
    assert data["category"] in ("binding", "spatial", "counting", "complex")
    assert [i["correct"] for i in data["images"]] == [True, True, False] and data["images"][2]["why"]
    with pytest.raises(ValueError, match="ShapeWorld"):
        BenchmarkScorer().score(images, "a cat on a sofa")


def test_benchmark_scorer_scores_a_t2i_compbench_category_as_the_bench_does(tmp_path, monkeypatch):
    """With the scorers in models/gotr1/bench/, each image gets the official score the bench gives it."""
    from tiny_clip import make_tiny_clip
    from tiny_scorers import make_tiny_blip, make_tiny_owlv2

    from gotr1_core.benchmarks import compbench
    from gotr1_core.benchmarks.scorers import SCORERS, BlipVQA, OpenVocabularyDetector
    from gotr1_core.rewards.quality import ClipScorer
    from nodes.judge_nodes import BenchmarkScorer

    monkeypatch.setenv("GOTR1_MODELS_DIR", str(tmp_path))
    images = torch.rand(2, 40, 48, 3, generator=torch.Generator().manual_seed(0))
    prompt = "a green bench and a blue bowl"
    with pytest.raises(FileNotFoundError, match="blip-vqa-capfilt-large in models/gotr1/bench/"):
        BenchmarkScorer().score(images, prompt, "T2I-CompBench color")
    bench = tmp_path / "bench"
    vqa = BlipVQA(make_tiny_blip(bench / SCORERS["vqa"].folder), device="cpu")
    clip = ClipScorer(make_tiny_clip(bench / SCORERS["clip"].folder), device="cpu")
    detector = OpenVocabularyDetector(make_tiny_owlv2(bench / SCORERS["detector"].folder), device="cpu")
    score, report = BenchmarkScorer().score(images, prompt, "T2I-CompBench color")
    data = json.loads(report)
    expected = [compbench.attribute_score(vqa, to_pil(image), prompt)[0] for image in images]
    assert [row["score"] for row in data["images"]] == pytest.approx(expected, abs=1e-6)
    assert score == pytest.approx(np.mean(expected), abs=1e-6) and data["images"][0]["phrases"] == [
        "a green bench", "a blue bowl"]
    assert data["distinct_images"] == 2 and data["benchmark"] == "T2I-CompBench color"
    spoken = "The red cat was next to the blue dog."  # a relation: weighed as the spatial list's prompts
    _, report = BenchmarkScorer().score(images[:1], spoken, "T2I-CompBench complex")
    row = json.loads(report)["images"][0]
    scorers = compbench.Scorers(vqa=vqa, clip=clip, detector=detector)
    expected = compbench.score_image("complex", to_pil(images[0]), spoken, scorers,
                                     {"spatial": {compbench.complex_key(spoken)}, "action": set()})
    assert row.pop("phrases") == expected.pop("phrases") == ["the red cat", "the blue dog"]
    assert row == pytest.approx({"index": 0, **expected}, abs=1e-6)
    assert row["score"] == pytest.approx((row["attribute"] + row["spatial"]) / 2)
