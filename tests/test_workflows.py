"""The shipped workflows: in step with their description, valid, and (where runnable on CPU) executed."""

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gotr1_core.cli import main
from nodes.workflows import check_workflow, execution_order, load_workflow, run_workflow

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "workflows"
spec = importlib.util.spec_from_file_location("build_workflows", FOLDER / "build_workflows.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)
FILES = sorted(FOLDER.glob("*.json"))


def test_committed_files_are_what_the_builder_writes():
    rendered = build.render_all()
    assert sorted(rendered) == sorted(p.name for p in FILES)
    for name, text in rendered.items():
        assert (FOLDER / name).read_text(encoding="utf-8") == text, f"{name}: run workflows/build_workflows.py"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_shipped_workflow_validates(path):
    problems, notes = check_workflow(load_workflow(path))
    assert problems == [] and notes == []


@pytest.mark.parametrize("name", build.RUNNABLE)
def test_runnable_workflows_execute_with_the_builtin_model(name, tmp_path):
    graph = load_workflow(FOLDER / f"{name}_api.json")
    result = run_workflow(graph, tmp_path)
    saved = [f for files in result["saved"].values() for f in files]
    assert saved, "nothing was saved"
    for file in saved:
        image = np.asarray(Image.open(file))
        assert image.ndim == 3 and image.shape[2] == 3 and image.std() > 0  # a real picture, not a blank


def test_edit_the_plan_draws_the_edited_plan(tmp_path):
    """The exact judge finds the edited objects where the edited boxes put them."""
    from gotr1_core.reasoning import chain_to_draw, split_chains
    from gotr1_core.rewards import ShapeWorldJudge

    graph = load_workflow(FOLDER / "edit_the_plan_api.json")
    generator = next(k for k, v in graph.items() if v["class_type"] == "GoTR1Generator")
    images, chains, _ = run_workflow(graph, tmp_path)["outputs"][generator]
    assert split_chains(chains) == [chain_to_draw(build.EDITED_CHAIN)[0]] * len(images)
    rewards = ShapeWorldJudge().score([graph[generator]["inputs"]["prompt"]] * len(images), split_chains(chains),
                                      None, images)
    assert sum(rewards.correct) >= 3 and float(np.mean(rewards.r_ri)) >= 0.8, rewards.to_list()


def test_checker_names_what_is_wrong():
    graph = load_workflow(FOLDER / "best_of_n_api.json")
    broken = copy.deepcopy(graph)
    generator = next(k for k, v in broken.items() if v["class_type"] == "GoTR1Generator")
    judge = next(k for k, v in broken.items() if v["class_type"] == "GoTR1RewardJudge")
    broken[generator]["inputs"]["batch_size"] = 500           # above the maximum
    broken[generator]["inputs"]["colour"] = "red"             # no such input
    del broken[generator]["inputs"]["seed"]                    # required
    broken[judge]["inputs"]["chains"] = [generator, 0]         # IMAGE output into a STRING input
    broken["99"] = {"class_type": "GoTR1Nonexistent", "inputs": {}}
    problems, notes = check_workflow(broken)
    text = "\n".join(problems)
    assert "'batch_size' = 500 is above its maximum 64" in text
    assert "unknown input 'colour'" in text and "'seed' is required but missing" in text
    assert "'chains' expects STRING but is linked to a IMAGE output" in text
    assert any("GoTR1Nonexistent" in n for n in notes)
    with pytest.raises(ValueError, match="does not validate"):
        run_workflow(broken, "unused")


def test_checker_on_the_editor_format_checks_widgets_and_links():
    data = load_workflow(FOLDER / "text_to_image.json")
    broken = copy.deepcopy(data)
    planner = next(n for n in broken["nodes"] if n["type"] == "GoTR1ReasoningPlanner")
    planner["widgets_values"][3] = 7.5                         # temperature above 2.0
    viewer = next(n for n in broken["nodes"] if n["type"] == "GoTR1LayoutViewer")
    link = next(l for l in broken["links"] if l[3] == viewer["id"])
    link[2] = 0                                                 # now the planner's STRING output
    problems, _ = check_workflow(broken)
    text = "\n".join(problems)
    assert "widget 'temperature' = 7.5 is above its maximum 2.0" in text
    assert "input 'layout' expects GOT_LAYOUT but is linked to STRING" in text
    short = copy.deepcopy(data)
    generator = next(n for n in short["nodes"] if n["type"] == "GoTR1Generator")
    generator["widgets_values"] = generator["widgets_values"][:2]  # fewer than its required widgets
    assert any("widget values" in p for p in check_workflow(short)[0])
    generator["widgets_values"] = generator["widgets_values"] * 9  # more than it has
    assert any("widget values" in p for p in check_workflow(short)[0])


def test_cycles_are_reported():
    graph = {"1": {"class_type": "GoTR1ParseChain", "inputs": {"chain": ["2", 1], "strict": False}},
             "2": {"class_type": "GoTR1ParseChain", "inputs": {"chain": ["1", 1], "strict": False}}}
    with pytest.raises(ValueError, match="cycle"):
        execution_order(graph)


def test_check_workflow_command(tmp_path, capsys):
    assert main(["check-workflow", str(FOLDER / "layout_to_sd.json")]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {"class_type": "GoTR1ParseChain", "inputs": {"strict": 3}}}))
    assert main(["check-workflow", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "'chain' is required but missing" in out and "'strict' = 3 is not a BOOLEAN" in out
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["check-workflow", str(tmp_path / "junk.json")]) == 1


def test_a_broken_chain_in_the_generator_stops_the_graph_with_the_reason(tmp_path):
    """Typed into edit_the_plan's Generator: no silent near-blank images, the parser's findings instead."""
    graph = load_workflow(FOLDER / "edit_the_plan_api.json")
    generator = next(k for k, v in graph.items() if v["class_type"] == "GoTR1Generator")
    graph[generator]["inputs"]["chain"] = "<|obj_start|>red circle<|box_start|>(1,2"
    with pytest.raises(ValueError, match=r"no object with a box in the chain: 1:24: error: expected <\|obj_end\|>"):
        run_workflow(graph, tmp_path)


def test_a_broken_plan_typed_into_the_plan_editor_stops_the_graph_with_the_reason(tmp_path):
    graph = load_workflow(FOLDER / "edit_the_plan_api.json")
    editor = next(k for k, v in graph.items() if v["class_type"] == "GoTR1PlanEditor")
    graph[editor]["inputs"]["plan"] = "<|obj_start|>red circle<|box_start|>(1,2"
    with pytest.raises(ValueError, match=r"(?s)Plan Editor's plan is not a valid chain: line 1, column 24: "
                                         r"expected <\|obj_end\|>.*press Reset"):
        run_workflow(graph, tmp_path)


def test_layout_to_sd_plans_as_shipped_with_the_builtin_model():
    """The GoT-R1 half of layout_to_sd (loader -> planner -> Layout To Conditioning) runs as shipped; the
    Stable Diffusion half needs the user's checkpoint (run for real in tests/test_comfyui_server.py)."""
    from nodes.conditioning_nodes import LayoutToConditioning
    from nodes.model_nodes import ModelLoader, ReasoningPlanner

    graph = load_workflow(FOLDER / "layout_to_sd_api.json")
    node = {v["class_type"]: v["inputs"] for v in graph.values()}
    (model,) = ModelLoader().load(**node["GoTR1ModelLoader"])
    planner = {k: v for k, v in node["GoTR1ReasoningPlanner"].items() if k != "model"}
    _, layout = ReasoningPlanner().plan(model, **planner)
    assert sorted(layout.labels) == ["blue square", "red circle"]
    regions = {k: v for k, v in node["GoTR1LayoutToConditioning"].items()
               if k not in ("layout", "clip", "conditioning")}

    class StandInCLIP:  # the checkpoint's CLIP is not in CI
        def tokenize(self, text):
            return text

        def encode_from_tokens(self, tokens, return_pooled=False):
            return torch.zeros(1, 77, 8), torch.zeros(1, 8)

    (conditioning,) = LayoutToConditioning().apply(layout, StandInCLIP(), [[None, {}]], **regions)
    assert len(conditioning) == 3  # the prompt's condition, then one per planned object


def test_a_workflow_that_carries_a_judge_server_url_is_flagged_in_both_formats(tmp_path, capsys):
    api = {"1": {"class_type": "GoTR1JudgeLoader",
                 "inputs": {"judge": "ShapeWorld (exact)", "weights": "auto", "server_url": "http://203.0.113.7:8000/v1"}}}
    problems, _ = check_workflow(api)
    assert len(problems) == 1 and "carries a judge server URL" in problems[0] and "203.0.113.7" in problems[0]
    api["1"]["inputs"]["server_url"] = "  "
    assert check_workflow(api) == ([], [])
    ui = {"nodes": [{"id": 1, "type": "GoTR1JudgeLoader", "inputs": [], "outputs": [],
                     "widgets_values": ["ShapeWorld (exact)", "auto", "http://judge.example/v1"]}], "links": []}
    path = tmp_path / "shared.json"
    path.write_text(json.dumps(ui))
    assert main(["check-workflow", str(path)]) == 1
    assert "widget 'server_url' carries a judge server URL" in capsys.readouterr().out


def test_the_edit_shipped_in_edit_the_plan_is_the_one_its_note_describes():
    """The note says the red circle was dragged up and the blue square enlarged: true of the shipped edit
    against what the shipped planner (seed 0, the model's own settings) plans for the prompt. A retrained model
    that plans otherwise fails this until the edit and its note are redone."""
    from gotr1_core.demo import builtin_model_path
    from gotr1_core.generation import GenerationConfig, generate
    from gotr1_core.layout import Layout
    from gotr1_core.model.loading import load_model

    got = load_model(builtin_model_path(), device="cpu")
    planned = generate(got, build.PROMPT, GenerationConfig(num_samples=1, seed=0), images=False).layouts[0]
    edited = Layout.from_chain(build.EDITED_CHAIN)
    before = {o.label: o.box for o in planned.objects}
    after = {o.label: o.box for o in edited.objects}
    assert before.keys() == after.keys() == {"red circle", "blue square"}
    circle, square = (before["red circle"], after["red circle"]), (before["blue square"], after["blue square"])
    assert circle[0].y1 - circle[1].y1 > 150 and abs(circle[1].x1 - circle[0].x1) < 50   # dragged up
    area = [(b.x2 - b.x1) * (b.y2 - b.y1) for b in square]
    assert area[1] > 1.5 * area[0]                                                        # enlarged
    note = json.loads((FOLDER / "edit_the_plan.json").read_text())
    assert any("red circle dragged up, the blue square enlarged" in str(n.get("widgets_values"))
               for n in note["nodes"] if n["type"] in ("Note", "MarkdownNote"))


def test_a_graph_saved_before_new_optional_widgets_still_checks(tmp_path):
    """A user's graph from an older release has fewer widget values (the Judge Loader before quality_model and
    the formula): the editor fills in the defaults, so the checker notes it instead of refusing the graph;
    fewer values than the required widgets is still a problem."""
    old = {"nodes": [{"id": 1, "type": "GoTR1JudgeLoader", "inputs": [], "outputs": [],
                      "widgets_values": ["ShapeWorld (exact)", "auto", ""]}], "links": []}
    problems, notes = check_workflow(old)
    assert problems == [] and any("quality_model, reward_formula, reward_expression, questions" in n for n in notes)
    old["nodes"][0]["widgets_values"] = ["ShapeWorld (exact)"]
    problems, _ = check_workflow(old)
    assert problems and "has 1 widget values, its inputs need 7" in problems[0]
    old["nodes"][0]["widgets_values"] = ["ShapeWorld (exact)", "auto", "", "none", "v9", "", "pack"]
    problems, _ = check_workflow(old)
    assert any("reward_formula" in p for p in problems)
