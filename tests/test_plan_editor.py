"""The Plan Editor: its JS layout logic (run under node) and what it writes, read by the Python parser."""

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

import numpy as np

from gotr1_core.reasoning import parse_chain
from gotr1_core.shapeworld import parse_prompt
from gotr1_core.shapeworld.plans import person_plan

WEB = Path(__file__).resolve().parents[1] / "web"
NODE = shutil.which("node")
if NODE is None and os.environ.get("GOTR1_REQUIRE_NODE"):  # CI installs node: its absence is a failure there
    raise RuntimeError("GOTR1_REQUIRE_NODE is set but there is no `node` on PATH (apt-get install nodejs)")
needs_node = pytest.mark.skipif(NODE is None, reason="node (https://nodejs.org, Debian's nodejs) runs the JS tests")


@needs_node
def test_the_layout_module_passes_its_own_tests():
    done = subprocess.run([NODE, "--test", str(WEB / "tests")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


def _edits(rng: random.Random, count: int) -> list:
    """Random edit scripts, with coordinates off the grid and past the canvas edges."""
    handles = ["n", "ne", "e", "se", "s", "sw", "w", "nw"]
    names = ["green triangle", "small red square", "a cat", "purple  circle", "x"]
    coordinate = lambda: rng.uniform(-200, 1200)  # noqa: E731
    ops = []
    for _ in range(count):
        kind = rng.choice(["move", "resize", "nudge", "rename", "delete", "add"])
        if kind == "move":
            ops.append([kind, rng.randrange(9), rng.uniform(-600, 600), rng.uniform(-600, 600)])
        elif kind == "resize":
            ops.append([kind, rng.randrange(9), rng.choice(handles), coordinate(), coordinate()])
        elif kind == "nudge":
            ops.append([kind, rng.randrange(9), rng.choice(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"]),
                        rng.random() < 0.5])
        elif kind == "rename":
            ops.append([kind, rng.randrange(9), rng.choice(names)])
        elif kind == "delete":
            ops.append([kind, rng.randrange(9)])
        else:
            ops.append([kind, rng.choice(names), coordinate(), coordinate(), coordinate(), coordinate()])
    return ops


@needs_node
def test_every_chain_the_editor_writes_parses_strictly_with_the_python_parser():
    """Chains in the model's wording and in prose, each edited by a random script (moves and resizes past the
    edges, adds, renames, deletes): the Python parser reads the result in strict mode and finds exactly the
    boxes and the text the editor holds."""
    from gotr1_core.shapeworld import generate_split

    rng, plans = random.Random(7), np.random.default_rng(7)
    scenes = generate_split("test", 60, seed=3)
    chains = [s.chain for s in scenes] + [person_plan(parse_prompt(s.prompt), plans) for s in scenes]
    cases = [{"chain": chain, "ops": _edits(rng, rng.randrange(1, 12))} for chain in chains]
    done = subprocess.run([NODE, str(WEB / "tests" / "edit_driver.mjs")], input=json.dumps(cases),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout)
    assert len(results) == len(cases)
    for case, result in zip(cases, results):
        assert "error" not in result, (case, result)
        parsed = parse_chain(result["chain"], strict=True)
        assert list(parsed.texts) == result["texts"], result["chain"]
        found = [(o.label, b.as_tuple()) for o in parsed.objects for b in o.boxes]
        assert found == [(b["label"], (b["x1"], b["y1"], b["x2"], b["y2"])) for b in result["boxes"]]
    edited = sum(r["chain"] != c["chain"] for c, r in zip(cases, results))
    assert edited >= 0.9 * len(cases)  # the scripts really change the plans


@needs_node
def test_the_canvas_reads_every_plan_the_node_sends_it():
    """The node sends the incoming plan repaired and well formed: for damaged model output (random mutations of
    valid chains) that chain passes the Python parser's strict mode, and the JS parser reads it and finds the
    same boxes."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from chain_strategies import chains, mutated
    from gotr1_core.reasoning import format_chain, well_formed

    sent = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data):
        text = data.draw(mutated(format_chain(data.draw(chains()))))
        repaired = parse_chain(text)
        sent.append(format_chain(well_formed(repaired)))
        again = parse_chain(sent[-1], strict=True)  # raises on any error
        assert [(o.label, o.boxes) for o in again.objects] == [(o.label, o.boxes) for o in repaired.objects]

    collect()
    done = subprocess.run([NODE, str(WEB / "tests" / "edit_driver.mjs")],
                          input=json.dumps([{"chain": c, "ops": []} for c in sent]),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    for chain, result in zip(sent, json.loads(done.stdout)):
        assert "error" not in result, (chain, result)
        expected = [(o.label, b.as_tuple()) for o in parse_chain(chain).objects for b in o.boxes]
        assert [(b["label"], (b["x1"], b["y1"], b["x2"], b["y2"])) for b in result["boxes"]] == expected
        assert result["chain"] == chain


INCOMING = ("the <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)<|box_end|> left of "
            "<|obj_start|>blue square<|obj_end|> <|box_start|>(500,200),(900,600)")  # box never closed


def test_the_incoming_plan_passes_through_until_edited():
    from gotr1_core.layout import Layout
    from nodes.plan_editor_nodes import PlanEditor

    out = PlanEditor().edit(plan="", aspect_ratio="1:1", chain=INCOMING)
    chain, layout = out["result"]
    assert chain == INCOMING and layout == Layout.from_chain(INCOMING)  # unchanged, damage and all
    (sent,) = out["ui"]["gotr1_plan"]
    assert sent["edited"] is False and sent["background"] is None
    assert parse_chain(sent["incoming"]).ok and sent["incoming"].endswith("(500,200),(900,600)<|box_end|>")
    given = Layout.from_chain("<|obj_start|>cat<|obj_end|> <|box_start|>(1,2),(30,40)<|box_end|>")
    chain, layout = PlanEditor().edit(plan="", aspect_ratio="4:3", layout=given)["result"]
    assert layout is given and chain == given.to_chain()
    chain, layout = PlanEditor().edit(plan="", aspect_ratio="1:1")["result"]
    assert chain == "" and len(layout) == 0


def test_an_edited_plan_replaces_the_incoming_one_and_must_be_valid():
    from gotr1_core.layout import Layout
    from nodes.plan_editor_nodes import PlanEditor

    edited = INCOMING.replace("(100,200),(400,500)", "(130,260),(377,512)") + "<|box_end|>"
    out = PlanEditor().edit(plan=edited, aspect_ratio="1:1", chain=INCOMING)
    assert out["result"] == (edited, Layout.from_chain(edited)) and out["ui"]["gotr1_plan"][0]["edited"] is True
    with pytest.raises(ValueError, match="the Plan Editor's plan is not a valid chain: .*expected <\\|box_end\\|>"
                                         ".*press Reset"):
        PlanEditor().edit(plan=INCOMING, aspect_ratio="1:1", chain=INCOMING)


@needs_node
def test_the_plan_editor_colours_each_label_as_the_python_drawings_do():
    """One palette: the Plan Editor's labelColours and gotr1_core.layout.label_colours give every label the same
    colour, for plans with repeats, spacing and case, collisions, more labels than colours and non-ASCII."""
    from gotr1_core.layout import label_colours

    plans = [["red circle", "blue square"], ["blue square", "red circle", "Blue  Square"],
             [f"object {i}" for i in range(13)], ["чашка", "Äpfel", "緑の三角", "a\tcat\n"], [" x ", "X", "y"]]
    script = ("import {labelColours} from './web/gotr1/plan_layout.js';"
              f"console.log(JSON.stringify({json.dumps(plans)}.map(labelColours)));")
    done = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60,
                          cwd=WEB.parent)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [[list(c) for c in label_colours(plan)] for plan in plans]
