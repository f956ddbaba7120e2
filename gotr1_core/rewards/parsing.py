"""Reading MLLM answers defensively: scores and boxes, never an exception.

A judge's answer is model output: it may be out of range, refuse, ramble, or
be cut off mid-JSON. Each parser returns what it could read plus a reason when
it could not; callers score unreadable answers as 0 and keep the reason.
"""

from __future__ import annotations

import json
import math
import re

from ..layout import from_pixel_box
from ..reasoning import Box

_NUMBER = r"(-?\d+(?:\.\d+)?)"
_SCORE_PATTERNS = [
    re.compile(rf"score[\s:*=]{{0,6}}{_NUMBER}(?:\s*(?:/|out of)\s*(\d+))?", re.IGNORECASE),
    re.compile(rf"{_NUMBER}\s*(?:/|out of)\s*(\d+)", re.IGNORECASE),
    re.compile(rf"^\W*{_NUMBER}\W*$"),
]
_BOX_LIST = re.compile(r"\[\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*\]")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


def parse_score(answer: str, scale: int = 10) -> tuple[float | None, str]:
    """A score in [0, 1] from answers like 'Score: 7', '8/10', '**Score:** 6.5 out of 10'.

    Returns ``(None, reason)`` for refusals, garbage and out-of-range values.
    """
    if not isinstance(answer, str) or not answer.strip():
        return None, "empty answer"
    text = answer.strip()
    for pattern in _SCORE_PATTERNS:
        match = pattern.search(text)
        if not match:
            continue
        value = float(match.group(1))
        out_of = float(match.group(2)) if match.lastindex and match.lastindex >= 2 and match.group(2) else scale
        if out_of <= 0 or not 0 <= value <= out_of:
            return None, f"score {match.group(0).strip()!r} is outside 0..{out_of:g}"
        return value / out_of, ""
    return None, f"no score in answer {text[:80]!r}"


def _json_candidates(text: str) -> list:
    blocks = _FENCE.findall(text) or [text]
    found = []
    for block in blocks:
        for opener, closer in (("[", "]"), ("{", "}")):
            start, end = block.find(opener), block.rfind(closer)
            if start != -1 and end > start:
                try:
                    found.append(json.loads(block[start:end + 1]))
                except (json.JSONDecodeError, RecursionError):
                    pass
    return found


def _boxes_from_json(value) -> list[tuple[str | None, list[float]]]:
    items = value if isinstance(value, list) else [value]
    boxes = []
    for item in items:
        if isinstance(item, dict):
            coords = item.get("bbox_2d", item.get("bbox", item.get("box")))
            label = item.get("label") if isinstance(item.get("label"), str) else None
        else:
            coords, label = item, None
        if (isinstance(coords, (list, tuple)) and len(coords) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in coords)):
            boxes.append((label, [float(v) for v in coords]))
    return boxes


def parse_boxes(answer: str, width: int, height: int) -> tuple[list[tuple[str | None, Box]], str]:
    """Boxes from a grounding answer in pixels of a ``width x height`` image, as 0-1000 grid boxes.

    Reads Qwen2.5-VL's ``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]`` (with or
    without code fences, or a single object), falling back to bare
    ``[x1, y1, x2, y2]`` lists in prose. Corners are sorted and clamped to the
    image. ``[]`` means the model found nothing, which is not an error.
    """
    if not isinstance(answer, str) or not answer.strip():
        return [], "empty answer"
    raw: list[tuple[str | None, list[float]]] = []
    for candidate in _json_candidates(answer):
        raw = _boxes_from_json(candidate)
        if raw or candidate == []:
            break
    if not raw:
        raw = [(None, [float(v) for v in m.groups()]) for m in _BOX_LIST.finditer(answer)]
    boxes = [(label, from_pixel_box(*coords, width, height)) for label, coords in raw]
    if boxes:
        return boxes, ""
    empty = any(c == [] for c in _json_candidates(answer))
    return [], "" if empty else f"no boxes in answer {answer.strip()[:80]!r}"
