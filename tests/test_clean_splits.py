"""No evaluation scene is trained on in any wording: scene keys, the split partition and every training source."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gotr1_core.shapeworld import SceneSpec, parse_prompt
from gotr1_core.shapeworld.scenes import (
    EVALUATION_SPLITS,
    HELDOUT_PAIRS,
    SPLITS,
    TRAINING_SPLITS,
    ZEROSHOT_PAIRS,
    evaluation_scenes,
    generate_split,
    split_of,
)
from gotr1_core.shapeworld.world import FLIPPED, RELATION_PHRASES, scene_key
from trainer.grpo import GRPOConfig, step_plans
from trainer.prompts import load_prompts, prompt_identity, training_records

EVALUATION = {split: evaluation_scenes(split, 300) for split in EVALUATION_SPLITS}
EVAL_KEYS = {scene_key(s.spec) for scenes in EVALUATION.values() for s in scenes}
ALL_EVAL_SCENES = [s for scenes in EVALUATION.values() for s in scenes]
OPPOSITE = {**FLIPPED, **{v: k for k, v in FLIPPED.items()}}
NUMERALS = {1: ("a", "one", "1", "A", "the"), 2: ("two", "2"), 3: ("three", "3"), 4: ("four", "4")}
SEPARATORS = (" and ", ", ", " & ", " plus ", ", and ")


@st.composite
def rewording(draw, spec: SceneSpec) -> str:
    """Another way to write the scene ``spec``: relation read from the other side and in any of its phrasings,
    groups in any order joined by any separator, counts as numerals or words, capitals and a full stop."""

    def group(g) -> str:
        count = draw(st.sampled_from(NUMERALS[g.count]))
        return f"{count} {g.colour} {g.shape}{'s' if g.count > 1 else ''}"

    if spec.relation is not None:
        first, second, rel = spec.groups[0], spec.groups[1], spec.relation
        if draw(st.booleans()):
            first, second, rel = second, first, OPPOSITE[rel]
        text = f"{group(first)} {draw(st.sampled_from(RELATION_PHRASES[rel]))} {group(second)}"
    else:
        groups = draw(st.permutations(spec.groups))
        text = group(groups[0])
        for g in groups[1:]:
            text += draw(st.sampled_from(SEPARATORS)) + group(g)
    if draw(st.booleans()):
        text = text[0].upper() + text[1:] + "."
    return text


@st.composite
def reworded_evaluation_scene(draw) -> tuple[str, str]:
    scene = draw(st.sampled_from(ALL_EVAL_SCENES))
    return scene_key(scene.spec), draw(rewording(scene.spec))


def test_scene_keys_identify_scenes_not_wordings():
    key = scene_key(parse_prompt("a red circle below a blue circle"))
    assert key == scene_key(parse_prompt("A blue circle on top of a red circle.")) == "a blue circle above a red circle"
    assert scene_key(parse_prompt("two red circles and a blue square")) == \
        scene_key(parse_prompt("a blue square, 2 red circles"))
    assert scene_key(parse_prompt("a red circle left of a blue square")) != \
        scene_key(parse_prompt("a red circle right of a blue square"))
    assert scene_key(parse_prompt("two red circles")) != scene_key(parse_prompt("three red circles"))


@settings(max_examples=300, deadline=None)
@given(reworded_evaluation_scene())
def test_every_rewording_of_an_evaluation_scene_has_its_key_and_split(item):
    key, text = item
    spec = parse_prompt(text)
    assert scene_key(spec) == key
    assert split_of(spec) in EVALUATION_SPLITS


@settings(max_examples=25, deadline=None)
@given(st.lists(reworded_evaluation_scene(), min_size=5, max_size=40))
def test_no_rewording_of_an_evaluation_scene_survives_any_training_source(tmp_path_factory, items):
    """GRPO prompts (and so plan rollouts, which draw from them) from a user's file full of rewordings of
    evaluation scenes, next to real training prompts: only the training prompts are left."""
    folder = tmp_path_factory.mktemp("prompts")
    training = [s.prompt for s in generate_split("train", 10, seed=3)]
    path = folder / "mixed.txt"
    path.write_text("\n".join([text for _, text in items] + training) + "\n", encoding="utf-8")
    kept = training_records(str(path), 1000, seed=0)
    assert [r["prompt"] for r in kept] == training
    config = GRPOConfig(output_dir=str(folder), model="builtin", prompts=str(path), plan_prompts_per_step=4)
    planned = [r["prompt"] for step in range(5) for r in step_plans(kept, step, config)]
    assert not {scene_key(parse_prompt(p)) for p in planned} & EVAL_KEYS


def test_an_evaluation_file_removes_its_scenes_in_any_wording(tmp_path):
    """A user's own evaluation list (here of training-split scenes) is compared by scene, too."""
    mine = [s.prompt for s in generate_split("train", 30, seed=5) if s.spec.relation]
    assert mine
    rewritten = []
    for prompt in mine:
        spec = parse_prompt(prompt)
        a, b = spec.groups
        rewritten.append(f"A {b.colour} {b.shape} {RELATION_PHRASES[OPPOSITE[spec.relation]][-1]} "
                         f"one {a.colour} {a.shape}.")
    path = tmp_path / "train.txt"
    path.write_text("\n".join(rewritten + ["a red circle"]) + "\n", encoding="utf-8")
    kept = training_records(str(path), 100, seed=0, evaluation=mine)
    assert [r["prompt"] for r in kept] == ["a red circle"]
    assert prompt_identity("Two cats on a sofa. ") == prompt_identity("two  cats on a Sofa")


def test_only_evaluation_prompts_is_refused_with_the_way_out(tmp_path):
    with pytest.raises(ValueError, match="shapeworld:train, shapeworld:rl_heldout"):
        training_records("shapeworld:heldout", 50, seed=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
def test_generated_training_data_never_holds_an_evaluation_scene(seed):
    """SFT examples (train), VQ pictures (train + rl_heldout) and shipped RL prompt sources, for any seed."""
    for split in TRAINING_SPLITS:
        keys = {scene_key(s.spec) for s in generate_split(split, 3000, seed)}
        assert not keys & EVAL_KEYS, split
        assert all(split_of(parse_prompt(k)) == split for k in keys)
    for record in load_prompts("shapeworld:train+shapeworld:rl_heldout", 2000, seed):
        spec = parse_prompt(record["prompt"])
        assert not spec.pairs & ZEROSHOT_PAIRS


def test_splits_hold_what_their_names_say():
    train = generate_split("train", 3000, seed=0)
    assert all(not s.spec.pairs & ZEROSHOT_PAIRS for s in train)
    alone = {p for s in train if s.spec.num_objects == 1 for p in s.spec.pairs}
    assert HELDOUT_PAIRS <= alone  # seen alone, as pictures, never composed
    assert all(not (s.spec.pairs & HELDOUT_PAIRS) or s.spec.num_objects == 1 for s in train)
    assert all(s.spec.pairs & HELDOUT_PAIRS and s.spec.num_objects > 1 for s in EVALUATION["heldout"])
    assert all(s.spec.pairs & ZEROSHOT_PAIRS for s in EVALUATION["zeroshot"])
    assert all(not s.spec.pairs & (HELDOUT_PAIRS | ZEROSHOT_PAIRS) for s in EVALUATION["test"])
    assert set(SPLITS) == set(EVALUATION_SPLITS) | set(TRAINING_SPLITS)


def test_evaluation_lists_are_fixed_distinct_scenes_whatever_the_seed():
    for split, scenes in EVALUATION.items():
        keys = [scene_key(s.spec) for s in scenes]
        assert len(set(keys)) == len(keys) == 300, split
        assert [s.prompt for s in evaluation_scenes(split, 40)] == [s.prompt for s in scenes[:40]]
        assert [r["prompt"] for r in load_prompts(f"shapeworld:{split}", 40, seed=9)] == \
            [s.prompt for s in scenes[:40]]
    with pytest.raises(ValueError, match="fewer than"):
        evaluation_scenes("heldout", 5000)


def test_the_partition_and_the_lists_are_pinned():
    """Scene keys are hashed into splits and the lists drawn from one seed: a change here would silently move
    scenes between evaluation and training, or change what every published figure was measured on."""
    assert {p: split_of(parse_prompt(p)) for p in (
        "a red circle left of a blue square", "two red squares and a green circle", "three cyan circles",
        "a blue triangle", "a red triangle above a blue square", "a purple circle")} == {
        "a red circle left of a blue square": "train", "two red squares and a green circle": "test",
        "three cyan circles": "test", "a blue triangle": "train", "a red triangle above a blue square": "rl_heldout",
        "a purple circle": "zeroshot"}
    assert [[scene_key(s.spec) for s in EVALUATION[split][:3]] for split in EVALUATION_SPLITS] == [
        ["a purple square left of a red square", "a purple square above a cyan square",
         "a green circle and a cyan square and a purple triangle"],
        ["a green square left of a red square", "three blue circles", "a purple triangle above a blue circle"],
        ["two cyan triangles", "a cyan circle and a cyan triangle and a purple square",
         "a cyan square left of a yellow square"]]
