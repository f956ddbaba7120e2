"""Check and run workflow JSON files against the pack's nodes, without a ComfyUI server.

Both formats ComfyUI writes are understood:

* **UI format** (what the editor saves and loads by drag and drop): ``nodes``
  with ``widgets_values`` in widget order, and ``links`` as
  ``[id, from_node, from_slot, to_node, to_slot, type]``;
* **API format** (what ``/prompt`` accepts): ``{id: {"class_type", "inputs"}}``
  with a link written as ``[from_id, output_index]``.

:func:`check_workflow` reports every problem at once: unknown node types,
missing or unknown inputs, values of the wrong type or out of range, links
between mismatched types. :func:`run_workflow` executes an API-format graph of
our nodes plus the core image nodes (Save Image, Preview Image) in dependency
order — what the test suite uses to run the shipped workflows.

Core node signatures below are facts about ComfyUI's built-in nodes that our
workflows use; other core nodes (``comfyui_core_nodes.txt``: every node type
ComfyUI itself provides) and other packs' nodes are noted as "not checked",
never errors; a name that is almost one of the pack's is an error (a typo).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from gotr1_core.images import to_pil

from . import NODE_CLASS_MAPPINGS

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
SEED_NAMES = {"seed", "noise_seed"}  # the editor adds a "control after generate" value after these
UI_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
FILE_CHOICE = "FILE_CHOICE"  # a dropdown of files installed on the user's machine

SAMPLERS = ["euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2m", "dpmpp_sde",
            "dpmpp_2m_sde", "ddim", "uni_pc"]
SCHEDULERS = ["normal", "karras", "exponential", "sgm_uniform", "simple", "ddim_uniform", "beta"]

CORE_NODES: dict[str, tuple[dict, tuple]] = {
    "SaveImage": ({"required": {"images": ("IMAGE", {}), "filename_prefix": ("STRING", {"default": "ComfyUI"})}},
                  ()),
    "PreviewImage": ({"required": {"images": ("IMAGE", {})}}, ()),
    "CheckpointLoaderSimple": ({"required": {"ckpt_name": (FILE_CHOICE, {})}}, ("MODEL", "CLIP", "VAE")),
    "CLIPTextEncode": ({"required": {"text": ("STRING", {"multiline": True}), "clip": ("CLIP", {})}},
                       ("CONDITIONING",)),
    "EmptyLatentImage": ({"required": {"width": ("INT", {"min": 16, "max": 16384}),
                                       "height": ("INT", {"min": 16, "max": 16384}),
                                       "batch_size": ("INT", {"min": 1, "max": 4096})}}, ("LATENT",)),
    "KSampler": ({"required": {"model": ("MODEL", {}), "seed": ("INT", {"min": 0, "max": 2**64 - 1}),
                               "steps": ("INT", {"min": 1, "max": 10000}),
                               "cfg": ("FLOAT", {"min": 0.0, "max": 100.0}),
                               "sampler_name": (SAMPLERS, {}), "scheduler": (SCHEDULERS, {}),
                               "positive": ("CONDITIONING", {}), "negative": ("CONDITIONING", {}),
                               "latent_image": ("LATENT", {}), "denoise": ("FLOAT", {"min": 0.0, "max": 1.0})}},
                 ("LATENT",)),
    "VAEDecode": ({"required": {"samples": ("LATENT", {}), "vae": ("VAE", {})}}, ("IMAGE",)),
    "GLIGENLoader": ({"required": {"gligen_name": (FILE_CHOICE, {})}}, ("GLIGEN",)),
}


CORE_NODE_NAMES = frozenset(
    line.strip() for line in (Path(__file__).with_name("comfyui_core_nodes.txt")).read_text(encoding="utf-8")
    .splitlines() if line.strip() and not line.startswith("#"))


PER_USER = {("GoTR1JudgeLoader", "server_url"): "a judge server URL (the Judge Loader sends images there)"}
"""Inputs a workflow meant for others must leave empty: each user sets their own."""


def _per_user(class_type: str, name: str, value, where: str) -> list[str]:
    what = PER_USER.get((class_type, name))
    if what is None or not (isinstance(value, str) and value.strip()):
        return []
    return [f"{where} carries {what}: {value.strip()[:80]!r}; clear it before sharing the workflow — whoever "
            "opens it would send their images to that server (the node refuses hosts the user has not allowed)"]


def unchecked(notes: list[str]) -> list[str]:
    """The notes that name a node the checker could not check (a core node it has no signature for, or another
    pack's)."""
    return [n for n in notes if "not checked" in n]


def node_signature(class_type: str) -> tuple[dict, tuple] | None:
    """``(INPUT_TYPES dict, RETURN_TYPES)`` of a node type we know, else None."""
    if class_type in NODE_CLASS_MAPPINGS:
        cls = NODE_CLASS_MAPPINGS[class_type]
        return cls.INPUT_TYPES(), tuple(cls.RETURN_TYPES)
    return CORE_NODES.get(class_type)


def _checked_signature(class_type, here: str, problems: list[str], notes: list[str]) -> tuple[dict, tuple] | None:
    """``node_signature``; a node type it does not know is noted as not checked — a ComfyUI core node, or another
    pack's, which are fine — unless its name is almost one of the pack's: then it is a typo, and a problem."""
    signature = node_signature(class_type)
    if signature is not None:
        return signature
    if not isinstance(class_type, str) or not class_type:
        problems.append(f"{here}: no node type")
    elif class_type in CORE_NODE_NAMES:
        notes.append(f"{here}: a ComfyUI core node; not checked")
    elif ours := difflib.get_close_matches(class_type, list(NODE_CLASS_MAPPINGS), n=1, cutoff=0.8):
        problems.append(f"{here}: unknown node type; did you mean {ours[0]!r}? (the pack's nodes: "
                        f"{', '.join(NODE_CLASS_MAPPINGS)})")
    else:
        core = difflib.get_close_matches(class_type, CORE_NODE_NAMES, n=1, cutoff=0.8)
        notes.append(f"{here}: neither a GoT-R1 node nor a ComfyUI core node (another pack's?); not checked"
                     + (f"; the core has {core[0]!r}" if core else ""))
    return None


def _inputs(signature: dict) -> dict[str, tuple]:
    return {**signature.get("required", {}), **signature.get("optional", {})}


def _is_widget(kind, options: dict) -> bool:
    return (isinstance(kind, list) or kind == FILE_CHOICE or kind in WIDGET_TYPES) and not options.get("forceInput")


def _check_value(where: str, kind, options: dict, value) -> list[str]:
    if isinstance(kind, list):
        return [] if value in kind else [f"{where} = {value!r} is not one of the choices ({', '.join(map(str, kind))})"]
    if kind == FILE_CHOICE:
        return [] if isinstance(value, str) and value else [f"{where} needs a file name, got {value!r}"]
    expected = {"INT": int, "FLOAT": (int, float), "BOOLEAN": bool, "STRING": str}.get(kind)
    if expected is None:
        return [f"{where} is a {kind} input: it must be linked to a node's output, not given a value"]
    if not isinstance(value, expected) or (kind != "BOOLEAN" and isinstance(value, bool)):
        return [f"{where} = {value!r} is not a {kind}"]
    if "min" in options and value < options["min"]:
        return [f"{where} = {value!r} is below its minimum {options['min']}"]
    if "max" in options and value > options["max"]:
        return [f"{where} = {value!r} is above its maximum {options['max']}"]
    return []


def _is_link(value) -> bool:
    """An API-format input that reads another node's output: ``[node_id, output_index]``."""
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def is_api_format(data) -> bool:
    return isinstance(data, dict) and "nodes" not in data and all(
        isinstance(v, dict) and "class_type" in v for v in data.values())


def check_workflow(data) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` for a workflow in either format; no problems means it will load and validate."""
    if is_api_format(data):
        return _check_api(data)
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        return _check_ui(data)
    return ["not a ComfyUI workflow: expected the editor's format (with 'nodes' and 'links') or the API "
            "format ({id: {'class_type': ..., 'inputs': ...}})"], []


def _check_api(graph: dict) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    for node_id, node in graph.items():
        class_type = node.get("class_type")
        here = f"node {node_id} ({class_type})"
        signature = _checked_signature(class_type, here, problems, notes)
        if signature is None:
            continue
        spec, _ = signature
        declared = _inputs(spec)
        given = node.get("inputs", {})
        for name in given:
            if name not in declared:
                problems.append(f"{here}: unknown input {name!r} (it has {', '.join(declared)})")
        for name, (kind, options) in declared.items():
            where = f"{here}: input {name!r}"
            if name not in given:
                if name in spec.get("required", {}):
                    problems.append(f"{where} is required but missing")
                continue
            value = given[name]
            if _is_link(value):
                problems += _check_link(graph, where, kind, value)
            else:
                problems += _check_value(where, kind, options, value) + _per_user(class_type, name, value, where)
    return problems, notes


def _check_link(graph: dict, where: str, kind, link: list) -> list[str]:
    source_id, index = link
    source = graph.get(source_id)
    if source is None:
        return [f"{where} is linked to node {source_id}, which does not exist"]
    signature = node_signature(source.get("class_type"))
    if signature is None:
        return []
    outputs = signature[1]
    if not 0 <= index < len(outputs):
        return [f"{where} is linked to output {index} of node {source_id}, which has {len(outputs)} outputs"]
    if (expected := _mismatch(kind, outputs[index])) is not None:
        return [f"{where} expects {expected} but is linked to a {outputs[index]} output of node {source_id}"]
    return []


def _mismatch(kind, output_type: str) -> str | None:
    """The type an input expects when ``output_type`` cannot feed it, else None (``*`` feeds anything)."""
    expected = "COMBO" if isinstance(kind, list) else kind
    return None if output_type == expected or "*" in (output_type, expected) else expected


def has_seed_control(name: str, kind, options: dict) -> bool:
    """Whether the editor stores a 'control after generate' value right after this widget's value."""
    return kind == "INT" and (name in SEED_NAMES or bool(options.get("control_after_generate")))


def _widget_count(spec: dict) -> int:
    return sum(1 + has_seed_control(name, kind, options)
               for name, (kind, options) in _inputs(spec).items() if _is_widget(kind, options))


def _required_widget_count(spec: dict) -> int:
    """Widget values up to the last required widget: a graph saved before optional widgets were added ends
    there, and the editor gives the missing ones their defaults."""
    count = required = 0
    for name, (kind, options) in _inputs(spec).items():
        if _is_widget(kind, options):
            count += 1 + has_seed_control(name, kind, options)
            if name in spec.get("required", {}):
                required = count
    return required


def _ui_widget_values(spec: dict, values: list) -> dict:
    """Widget name -> value for the values present, skipping the editor's 'control after generate' entries."""
    out, position = {}, 0
    for name, (kind, options) in _inputs(spec).items():
        if _is_widget(kind, options) and position < len(values):
            out[name] = values[position]
            position += 1 + has_seed_control(name, kind, options)
    return out


def _check_ui(data: dict) -> tuple[list[str], list[str]]:
    problems, notes = [], []
    nodes = {n.get("id"): n for n in data["nodes"]}
    links = {}
    for link in data.get("links", []):
        if not (isinstance(link, list) and len(link) == 6):
            problems.append(f"link {link!r} is not [id, from_node, from_slot, to_node, to_slot, type]")
            continue
        links[link[0]] = link
    for node in data["nodes"]:
        class_type = node.get("type")
        here = f"node {node.get('id')} ({class_type})"
        if class_type in UI_ONLY:
            continue
        signature = _checked_signature(class_type, here, problems, notes)
        if signature is None:
            continue
        spec, outputs = signature
        declared = _inputs(spec)
        values = node.get("widgets_values", [])
        expected = _widget_count(spec)
        if not _required_widget_count(spec) <= len(values) <= expected:
            problems.append(f"{here}: has {len(values)} widget values, its inputs need {expected}")
        else:
            if len(values) < expected:
                missing = [n for n in declared if _is_widget(*declared[n])][len(_ui_widget_values(spec, values)):]
                notes.append(f"{here}: saved before its optional widgets {', '.join(missing)} existed; they "
                             "take their defaults")
            for name, value in _ui_widget_values(spec, values).items():
                kind, options = declared[name]
                where = f"{here}: widget {name!r}"
                problems += _check_value(where, kind, options, value) + _per_user(class_type, name, value, where)
        linked = {}
        for slot in node.get("inputs", []):
            name = slot.get("name")
            if name not in declared:
                problems.append(f"{here}: unknown input {name!r}")
            elif slot.get("link") is not None:
                linked[name] = slot["link"]
        for name, (kind, options) in spec.get("required", {}).items():
            if not _is_widget(kind, options) and name not in linked:
                problems.append(f"{here}: required input {name!r} ({kind}) is not connected")
        for name, link_id in linked.items():
            link = links.get(link_id)
            if link is None:
                problems.append(f"{here}: input {name!r} refers to link {link_id}, which does not exist")
                continue
            _, source_id, source_slot, target_id, _, link_type = link
            source = nodes.get(source_id)
            if target_id != node.get("id") or source is None:
                problems.append(f"{here}: link {link_id} does not connect node {source_id} to this node")
                continue
            source_signature = node_signature(source.get("type"))
            if source_signature is not None:
                source_outputs = source_signature[1]
                if not 0 <= source_slot < len(source_outputs):
                    problems.append(f"{here}: input {name!r} is linked to missing output {source_slot} of node "
                                    f"{source_id}")
                    continue
                link_type = source_outputs[source_slot]
            if (expected := _mismatch(declared[name][0], link_type)) is not None:
                problems.append(f"{here}: input {name!r} expects {expected} but is linked to {link_type}")
    return problems, notes


def load_workflow(path: str | Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from None


# -- running API-format graphs --------------------------------------------------------------

def _save_images(images, output_dir: Path, prefix: str) -> list[str]:
    output_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for i, image in enumerate(images):
        path = output_dir / f"{prefix}_{i:05d}.png"
        to_pil(image).save(path)
        names.append(str(path))
    return names


def execution_order(graph: dict) -> list[str]:
    """Node ids so that every node comes after the nodes it reads from (a cycle is an error)."""
    order, state = [], {}

    def visit(node_id: str, path: tuple) -> None:
        if state.get(node_id) == "done":
            return
        if node_id in path:
            raise ValueError(f"the graph has a cycle through nodes {' -> '.join(path + (node_id,))}")
        for value in graph[node_id].get("inputs", {}).values():
            if _is_link(value) and value[0] in graph:
                visit(value[0], path + (node_id,))
        state[node_id] = "done"
        order.append(node_id)

    for node_id in graph:
        visit(node_id, ())
    return order


def run_workflow(graph: dict, output_dir: str | Path) -> dict:
    """Execute an API-format graph of our nodes plus Save/Preview Image; returns outputs and saved files.

    Raises ``ValueError`` with the checker's report when the graph does not validate.
    """
    problems, notes = check_workflow(graph)
    skipped = unchecked(notes)
    if problems or skipped:
        raise ValueError("workflow does not validate:\n" + "\n".join(problems + skipped))
    outputs, saved = {}, {}
    for node_id in execution_order(graph):
        node = graph[node_id]
        kwargs = {}
        for name, value in node.get("inputs", {}).items():
            if _is_link(value):  # validated above: the node exists
                kwargs[name] = outputs[value[0]][value[1]]
            else:
                kwargs[name] = value
        class_type = node["class_type"]
        if class_type in ("SaveImage", "PreviewImage"):
            prefix = kwargs.get("filename_prefix", "preview")
            saved[node_id] = _save_images(kwargs["images"], Path(output_dir), f"{prefix}_{node_id}")
            outputs[node_id] = ()
            continue
        cls = NODE_CLASS_MAPPINGS[class_type]
        returned = getattr(cls(), cls.FUNCTION)(**kwargs)
        if isinstance(returned, dict):  # {"ui": what the browser is sent, "result": the outputs}
            returned = returned["result"]
        outputs[node_id] = tuple(returned)
    return {"outputs": outputs, "saved": saved}
