import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chain_strategies import boxes, names
from gotr1_core.layout import (
    Layout,
    ObjectBox,
    from_pixel_box,
    iou,
    masks,
    PALETTE,
    label_colours,
    relation,
    render_layout,
    to_pixel_box,
)
from gotr1_core.reasoning import Box, ChainSyntaxError, parse_chain
from gotr1_core.layout import layout_from_text

APPLE = Box(120, 340, 410, 690)


@pytest.mark.parametrize("size, expected", [
    # 120*0.384=46.08 -> 46, 340*0.384=130.56 -> 131, 410*0.384=157.44 -> 157, 690*0.384=264.96 -> 265
    ((384, 384), (46, 131, 157, 265)),
    # 120*0.064=7.68 -> 8, 340*0.064=21.76 -> 22, 410*0.064=26.24 -> 26, 690*0.064=44.16 -> 44
    ((64, 64), (8, 22, 26, 44)),
    # non-square: x on 640, y on 480: 76.8 -> 77, 163.2 -> 163, 262.4 -> 262, 331.2 -> 331
    ((640, 480), (77, 163, 262, 331)),
])
def test_pixel_boxes(size, expected):
    assert to_pixel_box(APPLE, *size) == expected


def test_pixel_box_rounding_edges():
    assert to_pixel_box(Box(0, 0, 1000, 1000), 64, 48) == (0, 0, 64, 48)
    assert to_pixel_box(Box(125, 0, 375, 1000), 4, 4) == (1, 0, 2, 4)  # 0.5 and 1.5 round half up
    # A sliver still covers one pixel, and never falls off the image.
    assert to_pixel_box(Box(999, 999, 1000, 1000), 8, 8) == (7, 7, 8, 8)
    assert to_pixel_box(Box(500, 500, 501, 501), 8, 8) == (4, 4, 5, 5)
    with pytest.raises(ValueError, match="positive"):
        to_pixel_box(APPLE, 0, 10)


def test_from_pixel_box_inverts_on_exact_grid():
    assert from_pixel_box(*to_pixel_box(Box(250, 500, 750, 1000), 64, 64), 64, 64) == Box(250, 500, 750, 1000)
    # Out-of-image and inverted pixel boxes are clamped and sorted; zero width widened.
    assert from_pixel_box(80, -4, -10, 32, 64, 64) == Box(0, 0, 1000, 500)
    assert from_pixel_box(64, 10, 64, 20, 64, 64).x1 == 999


def test_masks_match_pixel_boxes():
    layout = Layout((ObjectBox("apple", APPLE), ObjectBox.of("sky", 0, 0, 1000, 300)))
    m = masks(layout, 64, 48)
    assert m.shape == (2, 48, 64) and m.dtype == torch.float32
    for i, obj in enumerate(layout.objects):
        x1, y1, x2, y2 = to_pixel_box(obj.box, 64, 48)
        expected = torch.zeros(48, 64)
        expected[y1:y2, x1:x2] = 1
        assert torch.equal(m[i], expected)
    assert masks(Layout(), 8, 8).shape == (0, 8, 8)


@pytest.mark.parametrize("a, b, expected", [
    (Box(0, 0, 100, 100), Box(50, 0, 150, 100), 5000 / 15000),
    (Box(0, 0, 100, 100), Box(0, 0, 100, 100), 1.0),
    (Box(0, 0, 100, 100), Box(100, 0, 200, 100), 0.0),  # touching edges share no area
    (Box(0, 0, 200, 200), Box(50, 50, 100, 100), 2500 / 40000),
])
def test_iou(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


@pytest.mark.parametrize("a, b, expected", [
    (Box(0, 400, 200, 600), Box(600, 400, 800, 600), "left of"),
    (Box(600, 400, 800, 600), Box(0, 400, 200, 600), "right of"),
    (Box(400, 0, 600, 200), Box(400, 700, 600, 900), "above"),
    (Box(400, 700, 600, 900), Box(400, 0, 600, 200), "below"),
    (Box(0, 0, 500, 500), Box(100, 100, 400, 400), "overlapping"),
    # Mostly horizontal displacement with some vertical: the larger axis decides.
    (Box(0, 0, 200, 200), Box(500, 100, 700, 300), "left of"),
    (Box(0, 0, 200, 200), Box(100, 500, 300, 700), "above"),
    # Slight overlap (less than half the smaller box) still has a direction.
    (Box(0, 0, 300, 300), Box(250, 0, 550, 300), "left of"),
    # A perfect diagonal counts as horizontal.
    (Box(0, 0, 100, 100), Box(500, 500, 600, 600), "left of"),
])
def test_relations(a, b, expected):
    assert relation(a, b) == expected


def test_layout_from_chain_and_back():
    chain = ("<|obj_start|>cat<|obj_end|> <|box_start|>(1,2),(30,40)<|box_end|> <|box_start|>(50,50),(60,60)"
             "<|box_end|> and a <|obj_start|>moon<|obj_end|>")
    layout = Layout.from_chain(chain)
    assert layout.labels == ["cat", "cat"]
    assert layout.unplaced == ("moon",)
    rebuilt = layout.to_chain()
    assert parse_chain(rebuilt, strict=True).ok
    assert Layout.from_chain(rebuilt) == layout
    assert [o.boxes for o in parse_chain(rebuilt).objects][0] == (Box(1, 2, 30, 40), Box(50, 50, 60, 60))


def test_layout_from_text_strict():
    with pytest.raises(ChainSyntaxError):
        layout_from_text("<|obj_start|>cat<|obj_end|><|box_start|>(5,5),(1,1)<|box_end|>", strict=True)
    assert layout_from_text("<|obj_start|>cat<|obj_end|><|box_start|>(5,5),(1,1)<|box_end|>").objects[0].box == \
        Box(1, 1, 5, 5)


@given(st.lists(st.tuples(names, boxes()), max_size=6))
@settings(max_examples=200)
def test_layout_chain_and_dict_round_trips(items):
    layout = Layout(tuple(ObjectBox(label.strip(), box) for label, box in items))
    assert Layout.from_chain(layout.to_chain()) == layout
    assert Layout.from_dict(layout.to_dict()) == layout


def test_from_dict_rejects_bad_data():
    with pytest.raises(ValueError, match="not a layout dict"):
        Layout.from_dict({"objects": [{"label": "a", "box": [5, 5, 1, 1]}]})
    with pytest.raises(ValueError, match="not a layout dict"):
        Layout.from_dict({"boxes": []})


def _contrast(a, b) -> float:
    def luminance(c):
        lin = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in (x / 255 for x in c)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_palette_colour_reads_on_white_on_the_dark_canvas_and_under_white_text():
    assert len(set(PALETTE)) == len(PALETTE) == 10
    for colour in PALETTE:
        assert _contrast(colour, (255, 255, 255)) >= 3.0 and _contrast(colour, (32, 32, 32)) >= 3.0, colour


def test_label_colours_follow_the_label_not_the_position():
    plan = ["red circle", "blue square", "Red  circle", "green triangle", "two cats", "a dog", "yellow square"]
    colours = label_colours(plan)
    assert colours[0] == colours[2]  # one label (any spacing or case), one colour
    assert len({c for i, c in enumerate(colours) if i != 2}) == len(plan) - 1  # different labels differ
    alone = [label_colours([label])[0] for label in plan]
    for i, label in enumerate(plan):  # a label keeps its own colour unless an earlier, different label took it
        taken = any(alone[j] == alone[i] and plan[j].lower().split() != label.lower().split() for j in range(i))
        if not taken:
            assert colours[i] == alone[i], label
    many = [f"object {i}" for i in range(len(PALETTE) + 2)]
    assert len(set(label_colours(many))) == len(PALETTE)  # every colour used before any repeats


LAYOUT = Layout((ObjectBox.of("a red apple", 100, 100, 400, 500), ObjectBox.of("cup", 550, 200, 900, 800)))


def _outside_mask(layout, w, h):
    return masks(layout, w, h).amax(dim=0) == 0


def test_render_blank_canvas_draws_only_inside_boxes():
    picture = render_layout(LAYOUT, 200, 160)
    assert picture.shape == (160, 200, 3) and picture.dtype == torch.float32
    assert float(picture.min()) >= 0.0 and float(picture.max()) <= 1.0
    outside = _outside_mask(LAYOUT, 200, 160)
    assert torch.all(picture[outside] == 1.0)  # white canvas untouched
    for i in range(len(LAYOUT)):
        inside = masks(LAYOUT, 200, 160)[i].bool()
        assert (picture[inside] < 0.99).any(dim=-1).float().mean() > 0.9  # filled and outlined
    assert torch.equal(picture, render_layout(LAYOUT, 200, 160))  # deterministic


def test_render_labels_are_drawn():
    with_labels = render_layout(LAYOUT, 256, 256)
    without = render_layout(LAYOUT, 256, 256, labels=False)
    changed = (with_labels != without).any(dim=-1)
    assert changed.any()
    assert not changed[_outside_mask(LAYOUT, 256, 256)].any()


def test_render_over_background_keeps_outside_pixels():
    rng = np.random.default_rng(0)
    background = torch.from_numpy(rng.random((48, 80, 3), dtype=np.float32))
    picture = render_layout(LAYOUT, background=background)
    assert picture.shape == (48, 80, 3)
    outside = _outside_mask(LAYOUT, 80, 48)
    assert torch.allclose(picture[outside], background[outside], atol=0.5 / 255 + 1e-6)
    assert not torch.allclose(picture[~outside], background[~outside], atol=0.05)


def test_render_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[H,W,C\]"):
        render_layout(LAYOUT, background=torch.zeros(2, 8, 8, 3))
    with pytest.raises(ValueError, match="positive"):
        render_layout(LAYOUT, 0, 10)
    assert render_layout(Layout(), 10, 10).eq(1.0).all()


def test_labels_are_shown_whole_wrapped_or_smaller_before_they_are_shortened():
    """The demo sheet's 48-pixel boxes cut "blue square" to "blue squa…"; now a label is wrapped at spaces or drawn
    smaller until it fits, and shortened only when nothing else does."""
    from PIL import Image, ImageDraw, ImageFont

    from gotr1_core.layout import MIN_LABEL_SIZE, _fitted

    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    lines, font = _fitted(draw, "blue square", 10, 44, 44)
    assert " ".join(lines) == "blue square"
    assert all(draw.textlength(line, font=font) + 4 <= 44 for line in lines)
    assert _fitted(draw, "red circle", 10, 400, 40)[0] == ["red circle"]  # room enough: one line, full size
    lines, font = _fitted(draw, "an extraordinarily long object name", 10, 30, 14)
    assert len(lines) == 1 and lines[0].endswith("…") and font.size == MIN_LABEL_SIZE
    assert draw.textlength(lines[0], font=ImageFont.load_default(size=MIN_LABEL_SIZE)) + 4 <= 30
