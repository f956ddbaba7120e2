"""Writes the shipped workflows, each in the editor's format and in the API format, from one description.

    python workflows/build_workflows.py              # rewrites workflows/*.json
    python workflows/build_workflows.py --examples   # ... and workflows/examples/*.png (runs them, CPU)

Describing a graph once keeps the two files of a workflow in step; the test
suite checks that the committed files equal what this script writes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from nodes.workflows import _inputs, _is_widget, has_seed_control, node_signature

PROMPT = "a red circle left of a blue square"
BUILTIN = "shapeworld-tiny (built in)"


# Sizes (width, height below the title) the editor draws each node at; at least what it computes for the node's
# widgets, so that opening a graph changes nothing. Every graph is laid out in columns COLUMN wide (the Plan Editor
# wider, its canvas is what the user works on) to fit 1,500 x 900 canvas units: ComfyUI fits a graph to 75 % of
# the window when it opens one, so on a 1600 x 1000 window it opens at 80 % or more, where nodes show their
# widgets (at 60 % and below they are drawn as empty shells).
COLUMN, GAP, TITLE = 250, 30, 30
SIZES = {"GoTR1ModelLoader": 110, "GoTR1JudgeLoader": 210, "GoTR1ReasoningPlanner": 300, "GoTR1Generator": 400,
         "GoTR1LayoutViewer": 160, "GoTR1RewardJudge": 130, "GoTR1SelectBest": 50, "GoTR1LayoutToConditioning": 190,
         "CheckpointLoaderSimple": 100, "CLIPTextEncode": 120, "EmptyLatentImage": 110, "KSampler": 262,
         "VAEDecode": 50, "SaveImage": 270, "PreviewImage": 270}
PLAN_EDITOR = (340, 540)


def column(index: int) -> int:
    """The x of the ``index``-th column; the Plan Editor's column (2 in every graph that has one) is wider."""
    return index * (COLUMN + GAP) + (PLAN_EDITOR[0] - COLUMN if index > 2 else 0)


class Graph:
    """Nodes with widget values and links; renders the editor (UI) and API formats. Nodes are placed in
    columns, each below the one before it in its column, with the graph's note at the top of the first."""

    def __init__(self, note: str, note_height: int = 250):
        self.nodes: list[dict] = []
        self.links: list[list] = []
        self.note = note
        self.note_size = (COLUMN, note_height)
        self.bottoms = {0: note_height + TITLE + GAP}  # column -> y where its next node's title starts

    def add(self, class_type: str, col: int, title: str | None = None, **widgets) -> int:
        node_id = len(self.nodes) + 1
        size = PLAN_EDITOR if class_type == "GoTR1PlanEditor" else (COLUMN, SIZES[class_type])
        top = self.bottoms.get(col, 0)
        self.bottoms[col] = top + TITLE + size[1] + GAP
        self.nodes.append({"id": node_id, "type": class_type, "pos": (column(col), top + TITLE), "size": size,
                           "widgets": widgets, "title": title, "links_in": {}})
        return node_id

    def link(self, source: int, slot: int, target: int, name: str) -> None:
        self.nodes[target - 1]["links_in"][name] = (source, slot)

    def api(self) -> dict:
        graph = {}
        for node in self.nodes:
            spec, _ = node_signature(node["type"])
            inputs = {}
            for name, (kind, options) in _inputs(spec).items():
                if name in node["links_in"]:
                    source, slot = node["links_in"][name]
                    inputs[name] = [str(source), slot]
                elif _is_widget(kind, options) and _widget_value(node, name, options) is not None:
                    inputs[name] = _widget_value(node, name, options)  # as the editor queues it
            graph[str(node["id"])] = {"class_type": node["type"], "inputs": inputs,
                                      "_meta": {"title": node["title"] or node["type"]}}
        return graph

    def ui(self) -> dict:
        links, out_links = [], {}
        for node in self.nodes:
            for name, (source, slot) in node["links_in"].items():
                link_id = len(links) + 1
                _, outputs = node_signature(self.nodes[source - 1]["type"])
                links.append([link_id, source, slot, node["id"], None, outputs[slot]])
                out_links.setdefault((source, slot), []).append(link_id)
        nodes = []
        for order, node in enumerate(self.nodes):
            spec, outputs = node_signature(node["type"])
            inputs, values = [], []
            for name, (kind, options) in _inputs(spec).items():
                widget = _is_widget(kind, options)
                linked = name in node["links_in"]
                if widget:
                    values.append(_widget_value(node, name, options))
                    if has_seed_control(name, kind, options):
                        values.append("fixed")
                if linked or not widget:
                    entry = {"name": name, "type": "COMBO" if isinstance(kind, list) else kind, "link": None}
                    if widget:
                        entry["widget"] = {"name": name}
                    if linked:
                        entry["link"] = next(l[0] for l in links if l[3] == node["id"] and
                                             l[1:3] == list(node["links_in"][name]))
                    inputs.append(entry)
            for entry_index, entry in enumerate(inputs):
                if entry["link"] is not None:
                    links[entry["link"] - 1][4] = entry_index
            cls_outputs = []
            names = _return_names(node["type"], outputs)
            for slot, (kind, name) in enumerate(zip(outputs, names)):
                cls_outputs.append({"name": name, "type": kind, "links": out_links.get((node["id"], slot), []),
                                    "slot_index": slot})
            entry = {"id": node["id"], "type": node["type"], "pos": list(node["pos"]), "size": list(node["size"]),
                     "flags": {}, "order": order, "mode": 0, "inputs": inputs, "outputs": cls_outputs,
                     "properties": {"Node name for S&R": node["type"]}, "widgets_values": values}
            if node["title"]:
                entry["title"] = node["title"]
            nodes.append(entry)
        note_id = len(nodes) + 1
        nodes.append({"id": note_id, "type": "Note", "pos": [0, TITLE], "size": list(self.note_size), "flags": {},
                      "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                      "widgets_values": [self.note]})
        return {"last_node_id": note_id, "last_link_id": len(links), "nodes": nodes, "links": links,
                "groups": [], "config": {}, "extra": {}, "version": 0.4}


def _widget_value(node: dict, name: str, options: dict):
    """A widget's value: the one the graph sets, else the input's default (what the editor fills in)."""
    return node["widgets"].get(name, options.get("default"))


def _return_names(class_type: str, outputs: tuple) -> list[str]:
    from nodes import NODE_CLASS_MAPPINGS

    cls = NODE_CLASS_MAPPINGS.get(class_type)
    return list(cls.RETURN_NAMES) if cls is not None else list(outputs)


def text_to_image() -> Graph:
    g = Graph("GoT-R1 text to image with the built-in ShapeWorld model (CPU is fine). The planner writes a "
              "chain that places every object with a box; the Layout Viewer draws that plan; the Generator "
              "draws images from the same chain. Try prompts like 'two green triangles above a yellow "
              "circle'. cfg / temperatures of -1 use the model's own settings.")
    loader = g.add("GoTR1ModelLoader", 0, model=BUILTIN, weights="auto", device="auto")
    planner = g.add("GoTR1ReasoningPlanner", 1, prompt=PROMPT, seed=0, temperature=-1.0, max_tokens=-1)
    viewer = g.add("GoTR1LayoutViewer", 2, width=512, height=512, chain="")
    generator = g.add("GoTR1Generator", 1, prompt=PROMPT, batch_size=4, cfg=-1.0, seed=0,
                      text_temperature=-1.0, image_temperature=-1.0)
    preview = g.add("PreviewImage", 3)
    save = g.add("SaveImage", 2, filename_prefix="gotr1_text_to_image")
    g.link(loader, 0, planner, "model")
    g.link(planner, 1, viewer, "layout")
    g.link(viewer, 0, preview, "images")
    g.link(loader, 0, generator, "model")
    g.link(planner, 0, generator, "chain")
    g.link(generator, 0, save, "images")
    return g


EDITED_CHAIN = ("Plan: the <|obj_start|>red circle<|obj_end|> <|box_start|>(118,150),(371,404)<|box_end|> is to "
                "the left of a <|obj_start|>blue square<|obj_end|> <|box_start|>(540,440),(900,800)<|box_end|>, "
                "all on plain white.")
"""The model's plan for PROMPT (red circle (125,531),(375,781), blue square (531,500),(781,750) at seed 0) edited
as a person would: in their own words, the red circle dragged up and the blue square enlarged, to coordinates off
any grid."""


def edit_the_plan() -> Graph:
    g = Graph("Change the layout, keep the prompt. The Plan Editor shows the planner's plan as boxes once the "
              "graph has run: drag a box to move it, drag its corners or edges to resize, double-click to "
              "rename, Add / Delete, Ctrl+Z / Ctrl+Y, arrow keys to nudge. The Generator draws the edited plan. "
              "As shipped the editor holds an edit made by hand (the red circle dragged up, the blue square enlarged, the "
              "words around the tags rewritten): press Reset to pass the planner's own plan through, or edit "
              "on. The Layout Viewers show the model's plan and the plan the Generator draws.")
    loader = g.add("GoTR1ModelLoader", 0, model=BUILTIN, weights="auto", device="auto")
    planner = g.add("GoTR1ReasoningPlanner", 1, prompt=PROMPT, seed=0, temperature=-1.0, max_tokens=-1)
    planned = g.add("GoTR1LayoutViewer", 3, title="the model's plan", width=512, height=512, chain="")
    show_planned = g.add("PreviewImage", 4)
    editor = g.add("GoTR1PlanEditor", 2, plan=EDITED_CHAIN, aspect_ratio="1:1")
    edited = g.add("GoTR1LayoutViewer", 3, title="the edited plan", width=512, height=512, chain="")
    show_edited = g.add("PreviewImage", 4)
    generator = g.add("GoTR1Generator", 1, prompt=PROMPT, batch_size=4, cfg=-1.0, seed=0,
                      text_temperature=-1.0, image_temperature=-1.0)
    save = g.add("SaveImage", 0, filename_prefix="gotr1_edit_the_plan")
    g.link(loader, 0, planner, "model")
    g.link(planner, 1, planned, "layout")
    g.link(planned, 0, show_planned, "images")
    g.link(planner, 0, editor, "chain")
    g.link(editor, 1, edited, "layout")
    g.link(edited, 0, show_edited, "images")
    g.link(loader, 0, generator, "model")
    g.link(editor, 0, generator, "chain")
    g.link(generator, 0, save, "images")
    return g


def best_of_n() -> Graph:
    g = Graph("Best of N: the Generator draws 8 candidates, each from its own chain; the Reward Judge scores "
              "them with the exact ShapeWorld judge (the four GoT-R1 rewards) and draws planned vs found "
              "boxes; Select Best keeps the highest total. With a real model, pick a Qwen2.5-VL judge folder "
              "from models/gotr1/judges/ in the Judge Loader.")
    loader = g.add("GoTR1ModelLoader", 0, model=BUILTIN, weights="auto", device="auto")
    judge = g.add("GoTR1JudgeLoader", 0, judge="ShapeWorld (exact)", weights="auto")
    generator = g.add("GoTR1Generator", 1, prompt=PROMPT, batch_size=8, cfg=-1.0, seed=0,
                      text_temperature=-1.0, image_temperature=-1.0)
    rewards = g.add("GoTR1RewardJudge", 2, prompt=PROMPT)
    best = g.add("GoTR1SelectBest", 3)
    save = g.add("SaveImage", 3, filename_prefix="gotr1_best_of_n")
    overlay = g.add("PreviewImage", 2)
    g.link(loader, 0, generator, "model")
    g.link(judge, 0, rewards, "judge")
    g.link(generator, 1, rewards, "chains")
    g.link(generator, 0, rewards, "images")
    g.link(generator, 0, best, "images")
    g.link(rewards, 1, best, "report")
    g.link(best, 0, save, "images")
    g.link(rewards, 2, overlay, "images")
    return g


SD_PROMPT = "a photo of a red ball left of a blue box on a wooden table, soft daylight"


def _stable_diffusion(g: Graph, plan: tuple[int, int]) -> None:
    """The Stable Diffusion 1.5 half of a layout workflow: the plan's layout (node, output slot) steers KSampler
    through Layout To Conditioning."""
    checkpoint = g.add("CheckpointLoaderSimple", 0, ckpt_name="v1-5-pruned-emaonly.safetensors")
    positive = g.add("CLIPTextEncode", 1, text=SD_PROMPT)
    negative = g.add("CLIPTextEncode", 1, text="blurry, low quality")
    regions = g.add("GoTR1LayoutToConditioning", 3, mode="area", strength=1.0, width=512, height=512)
    latent = g.add("EmptyLatentImage", 3, width=512, height=512, batch_size=1)
    sampler = g.add("KSampler", 4, seed=0, steps=25, cfg=7.0, sampler_name="dpmpp_2m", scheduler="karras",
                    denoise=1.0)
    decode = g.add("VAEDecode", 4)
    save = g.add("SaveImage", 4, filename_prefix="gotr1_layout_to_sd")
    g.link(checkpoint, 1, positive, "clip")
    g.link(checkpoint, 1, negative, "clip")
    g.link(plan[0], plan[1], regions, "layout")
    g.link(checkpoint, 1, regions, "clip")
    g.link(positive, 0, regions, "conditioning")
    g.link(checkpoint, 0, sampler, "model")
    g.link(regions, 0, sampler, "positive")
    g.link(negative, 0, sampler, "negative")
    g.link(latent, 0, sampler, "latent_image")
    g.link(sampler, 0, decode, "samples")
    g.link(checkpoint, 2, decode, "vae")
    g.link(decode, 0, save, "images")


def layout_to_sd() -> Graph:
    g = Graph("A GoT-R1 plan steering a Stable Diffusion 1.5 checkpoint: the planner places the objects, the Plan "
              "Editor shows them (drag a box to change the plan; Reset returns to the planner's), Layout To "
              "Conditioning adds one regional condition per object (its label, limited to its box) to the "
              "prompt's conditioning, and KSampler draws. Runs as shipped with the built-in ShapeWorld model, "
              "which plans coloured shapes: its prompt is a ShapeWorld prompt, the picture's prompt is in CLIP "
              "Text Encode. Needs your SD 1.5 checkpoint in models/checkpoints/. With a real GoT-R1 / Janus-Pro "
              "model in models/gotr1/: choose it in the Model Loader and give the planner the same prompt as "
              "CLIP Text Encode. No GoT-R1 model at all: see hand_drawn_layout_to_sd. For GLIGEN: load a GLIGEN "
              "model, connect it and set mode to gligen.", note_height=330)
    loader = g.add("GoTR1ModelLoader", 0, model=BUILTIN, weights="auto", device="auto")
    planner = g.add("GoTR1ReasoningPlanner", 1, prompt="a red circle left of a blue square", seed=0,
                    temperature=-1.0, max_tokens=-1)
    editor = g.add("GoTR1PlanEditor", 2, plan="", aspect_ratio="1:1")
    g.link(loader, 0, planner, "model")
    g.link(planner, 0, editor, "chain")
    _stable_diffusion(g, (editor, 1))
    return g


HAND_DRAWN = ("a <|obj_start|>red ball<|obj_end|> <|box_start|>(90,420),(400,730)<|box_end|> left of a "
              "<|obj_start|>blue box<|obj_end|> <|box_start|>(560,300),(930,760)<|box_end|> on a wooden table")
"""A plan drawn in the Plan Editor by hand, for SD_PROMPT."""


def hand_drawn_layout_to_sd() -> Graph:
    g = Graph("A layout drawn by hand steering a Stable Diffusion 1.5 checkpoint, no GoT-R1 model needed: draw "
              "the boxes in the Plan Editor (Add names an object and places a box; drag to move, drag corners "
              "to resize, double-click to rename), and Layout To Conditioning limits each object's label to "
              "its box. Needs your SD 1.5 checkpoint in models/checkpoints/.")
    editor = g.add("GoTR1PlanEditor", 2, plan=HAND_DRAWN, aspect_ratio="1:1")
    _stable_diffusion(g, (editor, 1))
    return g


WORKFLOWS = {"text_to_image": text_to_image, "edit_the_plan": edit_the_plan, "best_of_n": best_of_n,
             "layout_to_sd": layout_to_sd, "hand_drawn_layout_to_sd": hand_drawn_layout_to_sd}
RUNNABLE = ("text_to_image", "edit_the_plan", "best_of_n")  # our nodes + core image nodes only


def render_all() -> dict[str, str]:
    """File name -> JSON text of every shipped workflow."""
    files = {}
    for name, build in WORKFLOWS.items():
        graph = build()
        files[f"{name}.json"] = json.dumps(graph.ui(), indent=2, ensure_ascii=False) + "\n"
        files[f"{name}_api.json"] = json.dumps(graph.api(), indent=2, ensure_ascii=False) + "\n"
    return files


def _caption(node: dict, slot: int) -> str:
    """A picture's caption: its node's own title, else the node's name and the output it came from."""
    from nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    kind = node["class_type"]
    if node["_meta"]["title"] != kind:
        return node["_meta"]["title"]
    name = NODE_DISPLAY_NAME_MAPPINGS.get(kind, kind).removeprefix("GoT-R1 ")
    return f"{name}: {NODE_CLASS_MAPPINGS[kind].RETURN_NAMES[slot]}"


def write_examples(folder: Path = HERE / "examples") -> list[Path]:
    """Run each runnable workflow (API format) and save one sheet of everything it saved or previewed."""
    import tempfile

    from PIL import Image, ImageDraw

    from nodes.workflows import run_workflow

    folder.mkdir(exist_ok=True)
    written = []
    for name in RUNNABLE:
        graph = json.loads((HERE / f"{name}_api.json").read_text(encoding="utf-8"))
        with tempfile.TemporaryDirectory() as scratch:
            result = run_workflow(graph, scratch)
            tiles = []  # (caption, picture): each saved or previewed picture under the title of what fed it
            for node_id, files in result["saved"].items():
                source, slot = graph[node_id]["inputs"]["images"]
                title = _caption(graph[source], slot)
                for i, f in enumerate(files):
                    caption = f"{title} {i + 1}" if len(files) > 1 else title
                    tiles.append((caption, Image.open(f).convert("RGB").resize((256, 256), Image.NEAREST)))
        sheet = Image.new("RGB", (8 + len(tiles) * 264, 292), "white")
        draw = ImageDraw.Draw(sheet)
        for i, (caption, tile) in enumerate(tiles):
            left = 8 + i * 264
            draw.text((left, 6), caption, fill="black")
            sheet.paste(tile, (left, 28))
            draw.rectangle((left - 1, 27, left + 256, 284), outline="#999999")
        sheet.save(folder / f"{name}.png")
        written.append(folder / f"{name}.png")
    return written


if __name__ == "__main__":
    for file_name, text in render_all().items():
        (HERE / file_name).write_text(text, encoding="utf-8")
        print(f"wrote workflows/{file_name}")
    if "--examples" in sys.argv:  # also run the runnable ones (built-in model, CPU) and save their outputs
        for path in write_examples():
            print(f"wrote {path.relative_to(HERE.parent)}")
