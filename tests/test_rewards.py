import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotr1_core.layout import Layout, ObjectBox
from gotr1_core.reasoning import Box
from gotr1_core.rewards import Rewards, ShapeWorldJudge
from gotr1_core.shapeworld import Group, Scene, SceneObject, SceneSpec, ShapeWorldPromptError, generate_split, render
from gotr1_core.shapeworld.detect import detect_objects
from gotr1_core.shapeworld.scenes import MAX_SIDE_PX, MIN_SIDE_PX, STEP

from drawn_shapes import TOMBSTONE, drawn

JUDGE = ShapeWorldJudge()


def score_one(prompt, chain, image, layout=None):
    r = JUDGE.score([prompt], [chain], None if layout is None else [layout], [image])
    return {k: getattr(r, k)[0] for k in ("r_sem", "r_spa", "r_ri", "r_pi", "total", "correct")}, r.explanations[0]


# A hand-placed scene on pixel multiples of 8, so grid boxes are exact multiples of 125.
CIRCLE = SceneObject("red", "circle", (8, 8, 24, 24))          # grid (125,125),(375,375)
SQUARE = SceneObject("blue", "square", (40, 8, 56, 24))        # grid (625,125),(875,375)
TRIANGLE = SceneObject("green", "triangle", (24, 40, 40, 56))  # grid (375,625),(625,875)
CONJ = Scene(SceneSpec((Group(1, "red", "circle"), Group(1, "blue", "square"), Group(1, "green", "triangle"))),
             (CIRCLE, SQUARE, TRIANGLE))
REL = Scene(SceneSpec((Group(1, "red", "circle"), Group(1, "blue", "square")), "left of"), (CIRCLE, SQUARE))


def test_ground_truth_scores_two_on_every_split():
    for split in ("train", "test", "heldout"):
        scenes = generate_split(split, 100, seed=7)
        r = JUDGE.score([s.prompt for s in scenes], [s.chain for s in scenes], None,
                        np.stack([s.render() for s in scenes]))
        assert r.total == [2.0] * 100 and all(r.correct)
        assert r.r_pi == r.r_ri == r.r_sem == r.r_spa == [1.0] * 100


def test_every_circle_and_ellipse_the_world_draws_reads_as_a_circle():
    sides = range(MIN_SIDE_PX, MAX_SIDE_PX + 1, STEP)
    for width in sides:
        for height in sides:
            for x in (2, 3, 30):  # even and odd offsets
                found = detect_objects(render([SceneObject("blue", "circle", (x, 6, x + width, 6 + height))]))
                assert [d.shape for d in found] == ["circle"], (width, height, x, found)


def test_a_circle_on_a_square_base_is_no_circle():
    """What GRPO learnt when fill alone decided the shape: a circle's top on a square's base fills 89 % of its box,
    like no world shape; the judge reads a blob, so the image lacks the prompt's circle."""
    tombstone = drawn(*TOMBSTONE)
    assert [d.shape for d in detect_objects(tombstone)] == ["blob"]
    s, notes = score_one("a red circle", "<|obj_start|>red circle<|obj_end|>", tombstone)
    assert not s["correct"] and s["r_pi"] == 0.0
    assert any("extra {'red blob': 1}" in n for n in notes), notes


def test_a_slightly_flat_circle_passes_and_a_flatter_one_does_not():
    """The VQ decodes circles a little off true: a 16 px circle with its bottom two rows a little wider (fill
    0.82 + asymmetry 0.08) is a circle; three rows, wider still (0.85 + 0.14), is between a circle and a square."""
    circle = ("ellipse", (20, 20, 35, 35))
    assert [d.shape for d in detect_objects(drawn(circle, ("rectangle", (22, 33, 33, 35))))] == ["circle"]
    assert [d.shape for d in detect_objects(drawn(circle, ("rectangle", (21, 32, 34, 35))))] == ["blob"]


def test_wrong_colour_in_the_image_lowers_image_rewards_only():
    recoloured = [CIRCLE, dataclasses.replace(SQUARE, colour="purple"), TRIANGLE]
    s, notes = score_one(CONJ.prompt, CONJ.chain, render(recoloured))
    assert (s["r_sem"], s["r_spa"]) == (1.0, 1.0)
    assert s["r_pi"] == pytest.approx(2 / 3) and s["r_ri"] == pytest.approx(2 / 3)
    assert not s["correct"] and any("blue square" in n for n in notes)


def test_missing_object_in_the_image_lowers_image_rewards_only():
    s, _ = score_one(CONJ.prompt, CONJ.chain, render([CIRCLE, SQUARE]))
    assert (s["r_sem"], s["r_spa"]) == (1.0, 1.0)
    assert s["r_pi"] == pytest.approx(2 / 3) and s["r_ri"] == pytest.approx(2 / 3)


def test_missing_object_in_the_chain_lowers_r_sem_only():
    chain = Layout(CONJ.layout.objects[:2]).to_chain()
    s, notes = score_one(CONJ.prompt, chain, CONJ.render())
    assert s["r_sem"] == pytest.approx(2 / 3)
    assert (s["r_spa"], s["r_ri"], s["r_pi"]) == (1.0, 1.0, 1.0)
    assert any("missing {'green triangle': 1}" in n for n in notes)


def test_swapped_relation_in_the_plan_lowers_r_spa_and_r_ri():
    a, b = REL.layout.objects
    swapped = Layout((ObjectBox(a.label, b.box), ObjectBox(b.label, a.box)))
    s, notes = score_one(REL.prompt, swapped.to_chain(), REL.render())
    assert s["r_spa"] == 0.0 and s["r_ri"] == 0.0  # the swapped boxes do not overlap the true ones
    assert (s["r_sem"], s["r_pi"]) == (1.0, 1.0)
    assert any("right of relative to 'blue square', prompt says left of" in n for n in notes)


def test_swapped_relation_in_the_image_lowers_r_pi_and_r_ri():
    image = render([dataclasses.replace(CIRCLE, pixel_box=SQUARE.pixel_box),
                    dataclasses.replace(SQUARE, pixel_box=CIRCLE.pixel_box)])
    s, _ = score_one(REL.prompt, REL.chain, image)
    assert (s["r_sem"], s["r_spa"]) == (1.0, 1.0)
    assert s["r_pi"] == 0.5 and s["r_ri"] == 0.0 and s["total"] == 0.0 and not s["correct"]


def test_shifted_box_lowers_r_ri_by_its_iou():
    scene = Scene(SceneSpec((Group(1, "red", "circle"),)), (CIRCLE,))
    # Planned (250,125),(500,375) vs found (125,125),(375,375): 31250 / (2 * 62500 - 31250) = 1/3.
    shifted = Layout((ObjectBox("red circle", Box(250, 125, 500, 375)),)).to_chain()
    s, _ = score_one(scene.prompt, shifted, scene.render())
    assert s["r_ri"] == pytest.approx(1 / 3)
    assert (s["r_sem"], s["r_spa"], s["r_pi"]) == (1.0, 1.0, 1.0)
    assert s["total"] == pytest.approx(2 / 3)


def test_overlapping_plan_lowers_r_spa():
    overlapping = Layout((ObjectBox("red circle", Box(125, 125, 375, 375)),
                          ObjectBox("blue square", Box(250, 125, 500, 375)),
                          ObjectBox("green triangle", Box(375, 625, 625, 875))))
    s, _ = score_one(CONJ.prompt, overlapping.to_chain(), CONJ.render())
    assert s["r_spa"] == pytest.approx(2 / 3)  # 1 of 3 pairs overlaps
    assert s["r_sem"] == 1.0 and s["r_pi"] == 1.0


def test_labels_are_normalised():
    chain = CONJ.chain.replace("red circle", "Red  Circles")
    assert score_one(CONJ.prompt, chain, CONJ.render())[0]["total"] == 2.0


@given(st.text(max_size=200))
@settings(max_examples=100, deadline=None)
def test_any_chain_gets_rewards_in_range(chain):
    s, _ = score_one(CONJ.prompt, chain, CONJ.render())
    assert all(0.0 <= s[k] <= 1.0 for k in ("r_sem", "r_spa", "r_ri", "r_pi"))


def test_noise_images_and_empty_chains_score_zero_without_error():
    rng = np.random.default_rng(0)
    noise = rng.random((64, 64, 3), dtype=np.float32)
    s, _ = score_one(CONJ.prompt, "", noise)
    assert s["total"] == 0.0 and s["r_spa"] == 0.0 and s["r_ri"] == 0.0


def test_bad_prompt_and_batch_shape_are_clear_errors():
    with pytest.raises(ShapeWorldPromptError, match="unknown colour 'pink'"):
        JUDGE.score(["a pink circle"], [CONJ.chain], None, [CONJ.render()])
    with pytest.raises(ValueError, match="one prompt, chain"):
        JUDGE.score([CONJ.prompt], [CONJ.chain, CONJ.chain], None, [CONJ.render()])


def test_rewards_value_checks_and_best():
    r = Rewards([1, 0.5], [1, 1], [0.5, 1], [1, 1])
    assert r.total == [1.0, 1.5] and r.best() == 1
    assert Rewards.concat([r, r]).total == [1.0, 1.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="outside"):
        Rewards([1.5], [1], [1], [1])
