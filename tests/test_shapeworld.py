import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotr1_core.layout import Layout, relation, to_pixel_box
from gotr1_core.reasoning import GRID, Box, parse_chain
from gotr1_core.shapeworld import (
    CANVAS,
    COLOURS,
    HELDOUT_PAIRS,
    RELATIONS,
    SHAPES,
    Group,
    SceneSpec,
    ShapeWorldPromptError,
    canonical_prompt,
    format_prompt,
    generate_split,
    parse_prompt,
    scene_for_prompt,
    suggest_prompt,
)
from gotr1_core.shapeworld.plans import MAX_SIDE, MIN_SIDE, valid_plan
from gotr1_core.shapeworld.scenes import MAX_SIDE_PX, MIN_SIDE_PX, STEP, any_plan_box, drawn_box

SCENES = {split: generate_split(split, 300, seed=0) for split in ("train", "test", "heldout")}


def test_splits_are_deterministic_and_seeded():
    again = generate_split("train", 300, seed=0)
    assert [s.prompt for s in again] == [s.prompt for s in SCENES["train"]]
    assert [s.objects for s in again] == [s.objects for s in SCENES["train"]]
    other = generate_split("train", 300, seed=1)
    assert [s.objects for s in other] != [s.objects for s in SCENES["train"]]
    assert [s.objects for s in SCENES["test"]] != [s.objects for s in SCENES["train"]]
    with pytest.raises(ValueError, match="unknown split"):
        generate_split("validation", 3)


def test_heldout_pairs_appear_in_train_and_test_only_alone():
    alone = set()
    for split in ("train", "test"):
        for scene in SCENES[split]:
            if scene.spec.pairs & HELDOUT_PAIRS:
                assert scene.spec.num_objects == 1, scene.prompt  # "a red triangle", never composed
                alone |= scene.spec.pairs
    assert alone == HELDOUT_PAIRS  # each is seen alone, so its picture pieces are known
    for scene in SCENES["heldout"]:
        assert scene.spec.pairs & HELDOUT_PAIRS and scene.spec.num_objects >= 2, scene.prompt
    # Every colour and every shape is seen in compositions in training, in other combinations.
    seen = set().union(*(s.spec.pairs for s in SCENES["train"]))
    assert {c for c, _ in seen} == set(COLOURS) and {s for _, s in seen} == set(SHAPES)


def test_scenes_cover_the_prompt_kinds():
    train = SCENES["train"]
    assert {s.spec.relation for s in train} >= set(RELATIONS)
    assert {s.spec.num_objects for s in train} == {1, 2, 3, 4}
    assert any(len(s.spec.groups) > 1 and s.spec.relation is None for s in train)
    assert any(g.count > 1 for s in train for g in s.spec.groups)


@pytest.mark.parametrize("split", ["train", "test", "heldout"])
def test_prompts_round_trip_through_specs(split):
    for scene in SCENES[split]:
        assert parse_prompt(scene.prompt) == scene.spec
        assert format_prompt(parse_prompt(scene.prompt)) == scene.prompt


specs = st.one_of(
    st.builds(lambda n, c, s: SceneSpec((Group(n, c, s),)), st.integers(1, 4), st.sampled_from(list(COLOURS)),
              st.sampled_from(SHAPES)),
    st.builds(lambda a, b, r: SceneSpec((Group(1, *a), Group(1, *b)), r),
              st.tuples(st.sampled_from(list(COLOURS)), st.sampled_from(SHAPES)),
              st.tuples(st.sampled_from(list(COLOURS)), st.sampled_from(SHAPES)), st.sampled_from(RELATIONS)),
)


@given(specs)
@settings(max_examples=200)
def test_any_spec_round_trips(spec):
    assert parse_prompt(format_prompt(spec)) == spec
    assert parse_prompt("  " + format_prompt(spec).upper() + ". ") == spec


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_ground_truth_chains_parse_strictly_and_name_the_objects(split):
    for scene in SCENES[split]:
        parsed = parse_chain(scene.chain, strict=True)
        assert not parsed.diagnostics and parsed.ends_with_image_start
        assert [o.label for o in parsed.objects] == scene.spec.object_names()
        assert Layout.from_chain(parsed) == scene.layout


def test_layouts_are_pixel_exact_non_overlapping_and_satisfy_relations():
    for scene in SCENES["train"] + SCENES["heldout"]:
        for obj in scene.objects:
            assert to_pixel_box(obj.box, CANVAS, CANVAS) == obj.pixel_box
        boxes = [o.pixel_box for o in scene.objects]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                overlap_w = min(a[2], b[2]) - max(a[0], b[0])
                overlap_h = min(a[3], b[3]) - max(a[1], b[1])
                assert overlap_w < 0 or overlap_h < 0, scene.prompt
        if scene.spec.relation:
            assert relation(scene.objects[0].box, scene.objects[1].box) == scene.spec.relation


def test_scenes_sit_on_the_lattice_and_every_scene_is_a_valid_plan():
    sides = set()
    for scene in SCENES["train"] + SCENES["heldout"]:
        assert valid_plan(list(scene.layout.objects), scene.spec), scene.prompt
        for obj in scene.objects:
            assert all(v % STEP == 0 for v in obj.pixel_box) and drawn_box(obj.box) == obj.pixel_box
            x1, y1, x2, y2 = obj.pixel_box
            sides |= {x2 - x1, y2 - y1}
    assert sides == set(range(MIN_SIDE_PX, MAX_SIDE_PX + 1, STEP))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, GRID - MIN_SIDE), st.integers(0, GRID - MIN_SIDE), st.integers(MIN_SIDE, MAX_SIDE),
       st.integers(MIN_SIDE, MAX_SIDE))
def test_a_plan_box_is_drawn_within_a_quarter_patch(x, y, w, h):
    box = Box(x, y, min(x + w, GRID), min(y + h, GRID))
    drawn = drawn_box(box)
    exact = [v * CANVAS / GRID for v in (box.x1, box.y1, box.x2, box.y2)]
    assert all(v % STEP == 0 for v in drawn)
    assert max(abs(a - b) for a, b in zip(drawn, exact)) <= STEP  # a quarter of an 8 px patch
    assert 0 <= drawn[0] < drawn[2] <= CANVAS and 0 <= drawn[1] < drawn[3] <= CANVAS


def test_sizes_the_world_does_not_draw_become_the_nearest_it_does():
    assert drawn_box(Box(500, 500, 510, 510)) == (24, 24, 40, 40)  # 0.6 px -> 16 px about the centre
    assert drawn_box(Box(0, 0, 1000, 1000)) == (20, 20, 44, 44)    # the whole canvas -> 24 px
    assert drawn_box(Box(990, 0, 1000, 10)) == (48, 0, 64, 16)     # kept inside the canvas


def test_any_plan_box_is_drawn_as_the_scene_and_uses_every_coordinate():
    rng = np.random.default_rng(0)
    seen = set()
    for scene in SCENES["train"]:
        for obj in scene.objects:
            box = any_plan_box(obj.pixel_box, rng)
            assert drawn_box(box) == obj.pixel_box
            seen |= {box.x1, box.y1, box.x2, box.y2}
    assert len(seen) > 900  # nearly every number of the 0-1000 grid occurs


def test_render_draws_each_shape_in_its_box_only():
    for scene in SCENES["train"][:100]:
        image = scene.render()
        assert image.shape == (CANVAS, CANVAS, 3) and image.dtype == np.uint8
        painted = np.zeros((CANVAS, CANVAS), dtype=bool)
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.pixel_box
            mine = np.all(image[y1:y2, x1:x2] == COLOURS[obj.colour], axis=-1)
            fill = mine.mean()
            expected = {"square": (0.99, 1.0), "circle": (0.7, 0.85), "triangle": (0.45, 0.62)}[obj.shape]
            assert expected[0] <= fill <= expected[1], (obj, fill)
            # The shape touches all four sides of its box: the box is its tight bounding box.
            assert mine[0].any() and mine[-1].any() and mine[:, 0].any() and mine[:, -1].any()
            painted[y1:y2, x1:x2] = True
        assert np.all(image[~painted] == 255)


def test_scene_for_any_prompt():
    scene = scene_for_prompt("a green triangle above a yellow circle", seed=3)
    assert relation(scene.objects[0].box, scene.objects[1].box) == "above"
    assert scene_for_prompt("a green triangle above a yellow circle", seed=3) == scene


@pytest.mark.parametrize("prompt, canonical", [
    ("a red circle to the left of a blue square", "a red circle left of a blue square"),
    ("A red circle on the left of a blue square.", "a red circle left of a blue square"),
    ("a red circle on the left side of the blue square", "a red circle left of a blue square"),
    ("one yellow triangle to the right of a green circle", "a yellow triangle right of a green circle"),
    ("An purple square right of an cyan circle", "a purple square right of a cyan circle"),
    ("a red circle on top of a blue square", "a red circle above a blue square"),
    ("a red circle over a blue square!", "a red circle above a blue square"),
    ("a red circle under a blue square", "a red circle below a blue square"),
    ("a red circle beneath a blue square", "a red circle below a blue square"),
    ("a red circle underneath a blue square", "a red circle below a blue square"),
    ("red circle left of blue square", "a red circle left of a blue square"),
    ("  TWO   Blue  Squares  ", "two blue squares"),
    ("2 blue squares and 1 red circle.", "two blue squares and a red circle"),
    ("two red circles, a blue square, and a green triangle", "two red circles and a blue square and a green triangle"),
    ("a red circle & a cyan square", "a red circle and a cyan square"),
    ("a green triangle above a yellow circle", "a green triangle above a yellow circle"),
])
def test_usual_phrasings_read_as_the_canonical_prompt(prompt, canonical):
    assert canonical_prompt(prompt) == canonical
    assert format_prompt(parse_prompt(canonical)) == canonical  # canonical is a fixed point


@pytest.mark.parametrize("prompt, problem, suggestion", [
    ("a pink circle", "unknown colour 'pink'", None),
    ("a red hexagon", "unknown shape 'hexagon'", None),
    ("two red circle", "needs plural", "two red circles"),
    ("a red circles", "needs singular", "a red circle"),
    ("red circles", "needs a count", "two red circles"),
    ("five red circles", "unknown count 'five'", "four red circles"),
    ("three red circles and two blue squares", "more than 4 objects", "three red circles and a blue square"),
    ("a red circle left of two blue squares", "links two single objects", "a red circle and two blue squares"),
    ("a red circle and a red circle", "named twice", "two red circles"),
    ("a red circel to the left of a bleu squre", "unknown shape 'circel'", "a red circle left of a blue square"),
    ("", "empty prompt", None),
    ("draw me a cat", "expected '<count> <colour> <shape>'", None),
])
def test_prompts_outside_the_world_are_explained(prompt, problem, suggestion):
    with pytest.raises(ShapeWorldPromptError, match=problem) as info:
        parse_prompt(prompt)
    message = str(info.value)
    assert "red, yellow, green, cyan, blue, purple" in message and "left of, right of, above, below" in message
    assert info.value.suggestion == suggestion
    if suggestion:
        assert f"Did you mean '{suggestion}'?" in message


@given(st.one_of(st.text(max_size=80), st.lists(st.sampled_from(
    ["a", "an", "two", "five", "red", "blu", "circle", "squares", "triangel", "left", "of", "to", "the", "on",
     "top", "under", "and", ",", ".", "&", "above", "cat", "  "]), max_size=14).map(" ".join)))
@settings(max_examples=400)
def test_any_text_gives_a_spec_or_a_clear_error(text):
    """Fuzzed input never crashes the prompt parser, and every suggestion it makes is itself understood."""
    try:
        spec = parse_prompt(text)
    except ShapeWorldPromptError as exc:
        if exc.suggestion is not None:
            assert canonical_prompt(exc.suggestion) == exc.suggestion
    else:
        assert parse_prompt(format_prompt(spec)) == spec
    suggestion = suggest_prompt(text)
    assert suggestion is None or canonical_prompt(suggestion) == suggestion
