"""GenEval: object-focused prompts (single object, two objects, counting, colours, position, colour binding).

GenEval's rules (``gotr1-train bench geneval`` applies them to a run). An
image is correct when every ``include`` clause holds (at least ``count`` objects
of the class among the confident detections; the colour, by CLIP zero-shot on
the object's masked crop, where one is asked; the position relative to the
clause it names) and no ``exclude`` clause does. GenEval's settings: confidence
above 0.3 (0.9 for counting), at most 16 objects per class, no suppression of
overlapping boxes, position margin 0.1 of the boxes' sizes, crops on grey
(#999). Scores: correct images per task, and their mean over the six tasks.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .scorers import Detection

TASKS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
COLUMNS = {"single_object": "Single Obj.", "two_object": "Two Obj.", "counting": "Counting", "colors": "Colors",
           "position": "Position", "color_attr": "Color Attri."}
COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white")
COLOR_TEMPLATES = ("a photo of a {color} {object}", "a photo of a {color}-colored {object}",
                   "a photo of a {color} object")
THRESHOLD, COUNTING_THRESHOLD, MAX_OBJECTS, POSITION_THRESHOLD = 0.3, 0.9, 16, 0.1


def keep_objects(detections: list[Detection], tag: str) -> dict[str, list[Detection]]:
    """Per class, the detections GenEval counts: confident enough for the task, most confident first, at most 16."""
    threshold = COUNTING_THRESHOLD if tag == "counting" else THRESHOLD
    kept: dict[str, list[Detection]] = {}
    for detection in sorted(detections, key=lambda d: -d.score):
        if detection.score > threshold and len(kept.setdefault(detection.label, [])) < MAX_OBJECTS:
            kept[detection.label].append(detection)
    return {label: found for label, found in kept.items() if found}


def relative_position(a: Detection, b: Detection) -> set[str]:
    """Where ``a`` lies relative to ``b``: the centres' offset, each axis shrunk by 0.1 of the two boxes' summed size
    on it (touching boxes side by side still count), normalised; a direction holds beyond half the unit offset."""
    box_a, box_b = np.array(a.box, dtype=float).reshape(2, 2), np.array(b.box, dtype=float).reshape(2, 2)
    offset = box_a.mean(0) - box_b.mean(0)
    size = np.abs(np.diff(box_a, axis=0))[0] + np.abs(np.diff(box_b, axis=0))[0]
    revised = np.maximum(np.abs(offset) - POSITION_THRESHOLD * size, 0) * np.sign(offset)
    if np.all(np.abs(revised) < 1e-3):
        return set()
    dx, dy = revised / np.linalg.norm(offset)
    found = set()
    if dx < -0.5:
        found.add("left of")
    if dx > 0.5:
        found.add("right of")
    if dy < -0.5:
        found.add("above")
    if dy > 0.5:
        found.add("below")
    return found


def masked_crop(image: Image.Image, detection: Detection) -> Image.Image:
    """The object alone: its mask's pixels on grey (#999), cropped to its box."""
    picture = image.convert("RGB")
    if detection.mask is not None:
        mask = Image.fromarray(detection.mask.astype(np.uint8) * 255)
        picture = Image.composite(picture, Image.new("RGB", picture.size, "#999"), mask)
    return picture.crop(tuple(int(v) for v in detection.box))


class ColorClassifier:
    """CLIP zero-shot colour of an object: the colour whose averaged template embedding is nearest its crop's."""

    def __init__(self, clip):
        self.clip = clip
        self.weights: dict[str, object] = {}

    def __call__(self, image: Image.Image, objects: list[Detection], classname: str) -> list[str]:
        import torch

        if classname not in self.weights:
            rows = []
            for color in COLORS:
                texts = [t.format(color=color, object=classname) for t in COLOR_TEMPLATES]
                rows.append(torch.nn.functional.normalize(self.clip.text_features(texts).mean(0), dim=-1))
            self.weights[classname] = torch.stack(rows)
        features = self.clip.image_features([masked_crop(image, o) for o in objects])
        return [COLORS[i] for i in (features @ self.weights[classname].T).argmax(-1).tolist()]


def evaluate(image: Image.Image, objects: dict[str, list[Detection]], metadata: dict, colors) -> tuple[bool, list[str]]:
    """GenEval's verdict on one image: (correct, reasons it is not). ``colors(image, objects, classname)`` names
    each object's colour. Colour and position are judged on the most confident ``count`` objects of a class."""
    correct, reasons, groups = True, [], []
    for clause in metadata.get("include", []):
        name, count = clause["class"], clause["count"]
        found = objects.get(name, [])[:count]
        matched = len(found) >= count
        if not matched:
            reasons.append(f"expected {name}>={count}, found {len(found)}")
        if matched and "color" in clause:
            named = colors(image, found, name)
            if named.count(clause["color"]) < count:
                matched = False
                reasons.append(f"expected {clause['color']} {name}>={count}, found {named.count(clause['color'])} "
                               f"{clause['color']} ({', '.join(named)})")
        if matched and "position" in clause:
            relation, target = clause["position"]
            if target >= len(groups) or groups[target] is None:
                matched = False
                reasons.append(f"no target for {name} to be {relation}")
            else:
                for obj in found:
                    wrong = next((rel for t in groups[target] if relation not in (rel := relative_position(obj, t))),
                                 None)
                    if wrong is not None:
                        matched = False
                        reasons.append(f"expected {name} {relation} target, found {' and '.join(sorted(wrong))} target")
                        break
        correct &= matched
        groups.append(found if matched else None)
    for clause in metadata.get("exclude", []):
        if len(objects.get(clause["class"], [])) >= clause["count"]:
            correct = False
            reasons.append(f"expected {clause['class']}<{clause['count']}, found {len(objects[clause['class']])}")
    return correct, reasons


def label_names(detector_labels: list[str], object_names: list[str]) -> dict[str, str]:
    """The detector's class names as GenEval names them: by position for an 80-class COCO model (GenEval's list is
    in COCO's order: "tv" for "tv", "computer mouse" for "mouse"), by name otherwise."""
    if len(detector_labels) == len(object_names):
        return dict(zip(detector_labels, object_names))
    return {label: label for label in detector_labels}
