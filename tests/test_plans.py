"""Plans a person could write (gotr1_core.shapeworld.plans) and the plan-following evaluation."""

import numpy as np
import pytest
import torch

from gotr1_core.layout import Layout, ObjectBox, relation
from gotr1_core.reasoning import GRID, Box, parse_chain
from gotr1_core.shapeworld import generate_split
from gotr1_core.shapeworld.plans import (
    MAX_SIDE,
    MIN_GAP,
    MIN_SIDE,
    edit_layout,
    free_boxes,
    model_wording,
    prose_chain,
    reworded,
    valid_plan,
)
from trainer.evaluate import PLAN_KINDS, _with_boxes, evaluate, evaluate_plans, plans_for

SCENES = generate_split("test", 60, seed=5)


def _apart(a: Box, b: Box) -> bool:  # written again here: the test's own reading of MIN_GAP
    return (a.x2 + MIN_GAP <= b.x1 or b.x2 + MIN_GAP <= a.x1 or a.y2 + MIN_GAP <= b.y1 or b.y2 + MIN_GAP <= a.y1)


def test_prose_chains_are_well_formed_and_plan_exactly_the_layout():
    rng = np.random.default_rng(0)
    chains = set()
    for scene in SCENES:
        objects = list(scene.layout.objects)
        chain = prose_chain(objects, scene.spec, rng)
        parsed = parse_chain(chain, strict=True)  # tags and boxes exact: nothing to repair
        assert Layout.from_chain(parsed) == scene.layout
        assert chain != scene.chain  # prose around the tags (an empty choice of every kind is rare)
        chains.add(chain.split("<|obj_start|>")[0])
    assert len(chains) >= 5  # the openings vary


def test_free_boxes_are_valid_off_the_worlds_cells_and_of_drawable_size():
    rng = np.random.default_rng(1)
    off_grid = 0
    for scene in SCENES:
        objects = free_boxes(scene.spec, rng)
        assert [o.label for o in objects] == scene.spec.object_names()
        assert valid_plan(objects, scene.spec)
        for o in objects:
            assert MIN_SIDE <= o.box.x2 - o.box.x1 <= MAX_SIDE and MIN_SIDE <= o.box.y2 - o.box.y1 <= MAX_SIDE
            assert 0 <= o.box.x1 and o.box.x2 <= GRID and 0 <= o.box.y1 and o.box.y2 <= GRID
            off_grid += any(v % 125 for v in o.box.as_tuple())
        boxes = [o.box for o in objects]
        assert all(_apart(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        if scene.spec.relation:
            assert relation(boxes[0], boxes[1]) == scene.spec.relation
        assert parse_chain(model_wording(objects, scene.spec), strict=True).objects
    assert off_grid >= 0.9 * sum(s.spec.num_objects for s in SCENES)


def test_an_edit_changes_one_box_and_keeps_the_plan_valid():
    rng = np.random.default_rng(2)
    for scene in SCENES:
        objects = list(scene.layout.objects)
        edited = edit_layout(objects, scene.spec, rng)
        assert edited is not None and valid_plan(edited, scene.spec)
        changed = [(a, b) for a, b in zip(objects, edited) if a != b]
        assert len(changed) == 1 and changed[0][0].label == changed[0][1].label
    pair = next(s for s in SCENES if s.spec.relation)
    one_box_short = list(pair.layout.objects)[:1]
    assert edit_layout(one_box_short, pair.spec, rng) is None  # not a valid plan of the prompt: nothing to edit


def test_the_models_own_wording_is_kept_when_its_boxes_are_replaced():
    scene = next(s for s in SCENES if s.spec.relation)
    parsed = parse_chain("Sure. " + scene.chain)
    moved = [ObjectBox(o.label, Box(o.box.x1, o.box.y1, o.box.x2 - 7, o.box.y2 - 3)) for o in scene.layout.objects]
    chain = _with_boxes(parsed, moved)
    assert chain.startswith("Sure. ") and f" {scene.spec.relation} " in chain
    assert list(Layout.from_chain(chain).objects) == moved


def test_rewording_keeps_the_objects_and_boxes_and_gives_the_models_own_wording():
    rng = np.random.default_rng(3)
    for scene in SCENES:
        objects = list(scene.layout.objects)
        assert reworded(scene.prompt, scene.chain) == scene.chain  # the model's wording comes back unchanged
        prose = prose_chain(objects, scene.spec, rng)
        assert reworded(scene.prompt, prose) == scene.chain, prose
    pair = next(s for s in SCENES if s.spec.relation)
    # the relation word is the prompt's, however the prompt phrases it; a prompt the world cannot read gets a list
    assert f" {pair.spec.relation} " in reworded(pair.prompt.replace("left of", "to the left of"), pair.chain)
    listed = reworded("a dragon", pair.chain)
    assert pair.spec.relation not in listed and " and " in listed
    assert Layout.from_chain(listed) == pair.layout
    # several boxes after one tag become one tag each; a chain with no tags is left as it is
    two = "<|obj_start|>red circle<|obj_end|><|box_start|>(0,0),(250,250)<|box_end|><|box_start|>(500,500),(750,750)" \
          "<|box_end|> here<begin_of_image>"
    assert reworded("two red circles", two) == model_wording(
        [ObjectBox("red circle", Box(0, 0, 250, 250)), ObjectBox("red circle", Box(500, 500, 750, 750))], None)
    assert reworded("a red circle", "just words") == "just words"


@pytest.fixture(scope="module")
def builtin():
    from gotr1_core.demo import builtin_model_path
    from gotr1_core.model.loading import load_model

    return load_model(builtin_model_path(), device="cpu")


def test_plan_following_is_measured_per_kind(builtin):
    from gotr1_core.rewards import ShapeWorldJudge

    prompts = [s.prompt for s in SCENES[:8]]
    for kind in PLAN_KINDS:
        pairs = plans_for(builtin, prompts, kind, seed=0, max_batch=16)
        assert 6 <= len(pairs) <= 8 and all(parse_chain(c, strict=True).objects for _, c in pairs), kind
    metrics = evaluate_plans(builtin, ShapeWorldJudge(), prompts, ("prose", "free"), seed=0, max_batch=16)
    assert set(metrics) == {f"plans/{k}/{m}" for k in ("prose", "free") for m in (
        "correct", "correct_ci", "renderback_correct", "renderback_correct_ci", "r_ri", "count")}
    # the built-in model follows a person's plans: their words, boxes off the world's lattice
    for kind in ("prose", "free"):
        assert metrics[f"plans/{kind}/correct"] >= 0.6 and metrics[f"plans/{kind}/r_ri"] >= 0.7, metrics
    with pytest.raises(ValueError, match="unknown plan kind"):
        plans_for(builtin, prompts, "doodle", seed=0, max_batch=16)


def test_several_samples_per_prompt_and_per_plan_are_each_judged(builtin):
    from gotr1_core.rewards import ShapeWorldJudge

    seen = []

    class Recording(ShapeWorldJudge):
        def score(self, prompts, chains, layouts, images):
            seen.append((list(prompts), list(chains)))
            return super().score(prompts, chains, layouts, images)

    prompts = [s.prompt for s in SCENES[:2]]
    evaluate(builtin, Recording(), prompts, samples=3)
    assert seen[-1][0] == [prompts[0]] * 3 + [prompts[1]] * 3
    evaluate_plans(builtin, Recording(), prompts, ("free",), samples=2)
    judged, plans = seen[-1]
    assert judged == [prompts[0]] * 2 + [prompts[1]] * 2 and plans[0] == plans[1] != plans[2] == plans[3]


def test_eval_command_takes_plan_kinds(capsys):
    from trainer.cli import main

    assert main(["eval", "builtin", "--split", "test", "--count", "3", "--samples", "1", "--plans", "model,edit",
                 "--json"]) == 0
    out = capsys.readouterr().out
    assert '"plans/model/correct"' in out and '"plans/edit/r_ri"' in out and "plans/prose" not in out
    assert '"plans/model/renderback_correct_ci"' in out
    assert main(["eval", "builtin", "--plans", "doodle"]) == 1
    assert "unknown kinds ['doodle']" in capsys.readouterr().err
    assert main(["eval", "builtin", "--cfg", "-2"]) == 1
    assert "cfg: must be >= 0" in capsys.readouterr().err
    assert main(["eval", "builtin", "--samples", "0"]) == 1
    assert "samples: must be > 0" in capsys.readouterr().err


def test_the_builtin_model_draws_a_given_plan_from_its_own_wording(builtin):
    """A prose plan conditions the image exactly as its reworded form does (same tokens, same image), while
    the result keeps the plan as it was given; a model that reads plans as written sees the prose."""
    import dataclasses

    from gotr1_core.generation import GenerationConfig, encode_chain, generate

    scenes = [s for s in SCENES if s.spec.num_objects >= 2][:4]
    rng = np.random.default_rng(4)
    prose = [prose_chain(list(s.layout.objects), s.spec, rng) for s in scenes]
    prompts = [s.prompt for s in scenes]
    config = GenerationConfig(seed=3, max_batch=4)
    assert builtin.spec.plan_wording == "shapeworld"
    given = generate(builtin, prompts, config, chains=prose, decode=False)
    own = generate(builtin, prompts, config, chains=[s.chain for s in scenes], decode=False)
    assert given.chains == prose
    assert torch.equal(given.reason_ids, own.reason_ids) and torch.equal(given.image_ids, own.image_ids)
    as_written = dataclasses.replace(builtin, spec=dataclasses.replace(builtin.spec, plan_wording="as_written"))
    ids = encode_chain(as_written, prose[0], prompts[0])
    assert ids == builtin.tokenizer.encode(prose[0], add_special_tokens=False) != encode_chain(builtin, prose[0],
                                                                                               prompts[0])


def test_a_kind_of_plan_that_cannot_be_made_is_reported_as_none_made_not_a_crash(tmp_path):
    from gotr1_core.model.loading import load_model
    from gotr1_core.rewards import ShapeWorldJudge
    from tiny_janus import make_tiny_model

    model = load_model(make_tiny_model(tmp_path / "model", stop_bias=3.0), device="cpu")  # plans name no object
    prompts = [s.prompt for s in SCENES[:2]]
    assert plans_for(model, prompts, "edit", seed=0, max_batch=4) == []
    metrics = evaluate_plans(model, ShapeWorldJudge(), prompts, ("edit", "free"), seed=0, max_batch=4)
    assert metrics["plans/edit/count"] == 0 and metrics["plans/edit/renderback_correct"] is None
    assert metrics["plans/free/count"] == 2 and 0.0 <= metrics["plans/free/renderback_correct"] <= 1.0
