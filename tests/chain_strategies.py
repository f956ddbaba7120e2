"""Hypothesis strategies for reasoning chains: valid chain values and mutations of them."""

from __future__ import annotations

from hypothesis import strategies as st

from gotr1_core.reasoning import (
    BOX_END,
    BOX_START,
    IMAGE_START,
    OBJ_END,
    OBJ_START,
    Box,
    ChainObject,
    ParsedChain,
    TAG_RE,
)

TAGS = (OBJ_START, OBJ_END, BOX_START, BOX_END, IMAGE_START)

# Free text: ordinary prose, unicode, digits, brackets and partial tags, never a whole tag.
_text_chars = st.sampled_from(list("abc xyz,.;()<>|_\n\t0123456789-éß猫🍎") + ["<|obj", "box_end|>", "<begin_of"])
free_text = st.lists(_text_chars, max_size=12).map("".join).filter(lambda s: not TAG_RE.search(s))
names = free_text.filter(lambda s: s.strip() != "")
gaps = st.sampled_from(["", " ", "  ", "\n", " \t "])


@st.composite
def boxes(draw) -> Box:
    x1 = draw(st.integers(0, 999))
    y1 = draw(st.integers(0, 999))
    return Box(x1, y1, draw(st.integers(x1 + 1, 1000)), draw(st.integers(y1 + 1, 1000)))


@st.composite
def chain_objects(draw) -> ChainObject:
    n = draw(st.integers(0, 3))
    return ChainObject(draw(names), tuple(draw(boxes()) for _ in range(n)), tuple(draw(gaps) for _ in range(n)))


@st.composite
def chains(draw) -> ParsedChain:
    """A valid chain value: formats to a well-formed chain."""
    objects = tuple(draw(st.lists(chain_objects(), max_size=5)))
    texts = tuple(draw(free_text) for _ in range(len(objects) + 1))
    return ParsedChain(texts, objects, draw(st.booleans()))


@st.composite
def mutated(draw, text: str) -> str:
    """Apply a few of the corruptions real model output shows."""
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete_tag", "duplicate_tag", "corrupt_digit", "truncate", "insert", "swap"]))
        positions = [m.start() for m in TAG_RE.finditer(text)]
        if kind in ("delete_tag", "duplicate_tag") and positions:
            m = list(TAG_RE.finditer(text))[draw(st.integers(0, len(positions) - 1))]
            replacement = "" if kind == "delete_tag" else m.group() * 2
            text = text[: m.start()] + replacement + text[m.end():]
        elif kind == "corrupt_digit":
            digits = [i for i, ch in enumerate(text) if ch.isdigit()]
            if digits:
                i = draw(st.sampled_from(digits))
                text = text[:i] + draw(st.sampled_from(["", "9999", "-", ".5", " ", ",", "x", "00"])) + text[i + 1:]
        elif kind == "truncate" and text:
            text = text[: draw(st.integers(0, len(text)))]
        elif kind == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(st.sampled_from(TAGS + ("(", ")", ",", "1000", "\n"))) + text[i:]
        elif kind == "swap" and len(positions) >= 2:
            found = list(TAG_RE.finditer(text))
            a, b = sorted(draw(st.lists(st.integers(0, len(found) - 1), min_size=2, max_size=2, unique=True)))
            ma, mb = found[a], found[b]
            text = text[: ma.start()] + mb.group() + text[ma.end(): mb.start()] + ma.group() + text[mb.end():]
    return text
