"""The render-back judge: right on the world's own pictures, and not fooled where the reward's judge is."""

import numpy as np
import pytest
from PIL import Image

from gotr1_core.rewards import ShapeWorldJudge
from gotr1_core.shapeworld import parse_prompt
from gotr1_core.shapeworld.renderback import RenderBackJudge, check_image
from gotr1_core.shapeworld.scenes import COLOURS, SPLITS, SceneObject, generate_split, render

from drawn_shapes import TOMBSTONE, drawn


def test_the_worlds_own_pictures_are_correct():
    scenes = [s for split in SPLITS for s in generate_split(split, 150, seed=11)]
    verdicts = RenderBackJudge().verdicts([s.prompt for s in scenes], [s.render() for s in scenes])
    wrong = [(s.prompt, v.problems) for s, v in zip(scenes, verdicts) if not v.correct]
    assert len(wrong) <= 0.005 * len(scenes), wrong[:5]
    assert all(o.shape_iou == pytest.approx(1.0) for v in verdicts for o in v.objects)


def test_pictures_at_another_size_are_read_at_the_worlds_scale():
    scene = generate_split("test", 1, seed=2)[0]
    big = np.asarray(Image.fromarray(scene.render()).resize((384, 384), Image.NEAREST))
    assert check_image(scene.spec, big).correct
    assert check_image(scene.spec, big.astype(np.float32) / 255).correct  # ComfyUI's IMAGE range


def test_a_shape_the_world_never_draws_passes_the_reward_but_not_this_judge():
    """The exact judge reads shape features; only this judge knows the sizes the world draws."""
    picture = render([SceneObject("red", "circle", (4, 4, 44, 44))])
    prompt = "a red circle"
    exact = ShapeWorldJudge().score([prompt], ["<|obj_start|>red circle<|obj_end|>"], None, [picture])
    assert exact.correct == [True]
    verdict = check_image(parse_prompt(prompt), picture)
    assert not verdict.correct and "no world shape" in verdict.problems[0]


def test_a_circle_on_a_square_base_is_no_world_shape():
    verdict = check_image(parse_prompt("a red circle"), drawn(*TOMBSTONE))
    assert not verdict.correct and "no world shape" in verdict.problems[0]


@pytest.mark.parametrize("prompt, objects, problem", [
    ("a red circle", [("blue", "circle", (20, 20, 40, 40))], "missing {'red circle': 1}"),
    ("a red circle", [("red", "square", (20, 20, 40, 40))], "extra {'red square': 1}"),
    ("two red circles", [("red", "circle", (4, 4, 24, 24))], "missing {'red circle': 1}"),
    ("a red circle left of a blue square", [("red", "circle", (40, 8, 60, 28)), ("blue", "square", (4, 8, 24, 28))],
     "relation: 'red circle' is right of 'blue square'"),
    ("a red circle", [("red", "circle", (2, 2, 50, 50))], "no world shape"),  # a size the world never draws
])
def test_what_is_wrong_is_named(prompt, objects, problem):
    picture = render([SceneObject(c, s, b) for c, s, b in objects])
    verdict = check_image(parse_prompt(prompt), picture)
    assert not verdict.correct and any(problem in p for p in verdict.problems), verdict.problems


def test_specks_and_blended_colours_are_not_explained():
    scene = generate_split("train", 1, seed=4)[0]
    noisy = scene.render().copy()
    rng = np.random.default_rng(0)
    free = np.argwhere(np.all(noisy == 255, axis=-1))
    for y, x in free[rng.choice(len(free), 80, replace=False)]:
        noisy[y, x] = COLOURS["purple"]
    verdict = check_image(scene.spec, noisy)
    assert not verdict.correct and verdict.unexplained > 0.01
    blend = render([SceneObject("red", "square", (20, 20, 40, 40))]).copy()
    blend[20:40, 30:40] = COLOURS["yellow"]
    blended = check_image(parse_prompt("a red square"), blend)
    assert not blended.correct and "no world colour" in blended.problems[0]
