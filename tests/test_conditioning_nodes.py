import pytest
import torch

from gotr1_core.layout import Layout, ObjectBox
from nodes.conditioning_nodes import LayoutToConditioning

LAYOUT = Layout((ObjectBox.of("red circle", 100, 200, 400, 600), ObjectBox.of("blue square", 500, 0, 1000, 250)))


class FakeCLIP:
    """Records what it encoded; a condition's first value tells which text it came from."""

    def __init__(self):
        self.texts = []

    def tokenize(self, text):
        self.texts.append(text)
        return text

    def encode_from_tokens(self, tokens, return_pooled=False):
        code = float(len(self.texts))
        cond = torch.full((1, 77, 8), code)
        pooled = torch.full((1, 8), -code if return_pooled == "unprojected" else code)
        return (cond, pooled) if return_pooled else cond


def base():
    return [[torch.zeros(1, 77, 8), {"pooled_output": torch.zeros(1, 8)}]]


def test_area_mode_keeps_the_prompt_and_adds_one_region_per_object():
    clip = FakeCLIP()
    (out,) = LayoutToConditioning().apply(LAYOUT, clip, base(), "area", 0.8, 512, 512)
    assert len(out) == 3 and torch.equal(out[0][0], torch.zeros(1, 77, 8))
    assert clip.texts == ["red circle", "blue square"]
    circle, square = out[1][1], out[2][1]
    assert circle["area"] == ("percentage", 0.4, 0.3, 0.2, 0.1)  # (h, w, y, x) as fractions of the image
    assert square["area"] == ("percentage", 0.25, 0.5, 0.0, 0.5)
    assert circle["strength"] == 0.8 and circle["set_area_to_bounds"] is False
    assert out[1][0][0, 0, 0] == 1.0 and out[2][0][0, 0, 0] == 2.0


def test_mask_mode_masks_each_box_at_the_image_size():
    (out,) = LayoutToConditioning().apply(LAYOUT, FakeCLIP(), base(), "mask", 1.5, 640, 320)
    mask = out[1][1]["mask"]
    assert mask.shape == (1, 320, 640)
    ys, xs = torch.nonzero(mask[0], as_tuple=True)
    assert (xs.min().item(), xs.max().item() + 1, ys.min().item(), ys.max().item() + 1) == (64, 256, 64, 192)
    assert out[1][1]["mask_strength"] == 1.5
    # ComfyUI weighs a masked condition by strength * mask_strength: only mask_strength is set, as
    # Conditioning (Set Mask) does, so 1.5 means 1.5 and not 2.25.
    assert "strength" not in out[1][1] and out[1][1]["set_area_to_bounds"] is False


def test_gligen_mode_adds_text_boxes_in_latent_cells_after_existing_ones():
    gligen = object()
    earlier = (torch.ones(1, 8), 1, 1, 0, 0)
    conditioning = [[torch.zeros(1, 77, 8), {"gligen": ("position", gligen, [earlier])}]]
    (out,) = LayoutToConditioning().apply(LAYOUT, FakeCLIP(), conditioning, "gligen", 1.0, 512, 768, gligen=gligen)
    kind, model, boxes = out[0][1]["gligen"]
    assert kind == "position" and model is gligen and boxes[0] is earlier
    pooled, h, w, y, x = boxes[1]  # red circle: x 51..205 px of 512, y 154..461 px of 768
    assert (h, w, y, x) == ((461 - 154) // 8, (205 - 51) // 8, 154 // 8, 51 // 8)
    assert pooled[0, 0] == -1.0  # the unprojected pooled vector, as GLIGEN expects
    assert len(conditioning[0][1]["gligen"][2]) == 1  # the input conditioning is not modified


def test_gligen_without_a_model_and_bad_layouts_explain_themselves():
    with pytest.raises(ValueError, match="connect GLIGEN Loader"):
        LayoutToConditioning().apply(LAYOUT, FakeCLIP(), base(), "gligen", 1.0, 512, 512)
    with pytest.raises(ValueError, match="connect a GoT-R1 layout"):
        LayoutToConditioning().apply("not a layout", FakeCLIP(), base(), "area", 1.0, 512, 512)
    (out,) = LayoutToConditioning().apply(Layout(), FakeCLIP(), base(), "area", 1.0, 512, 512)
    assert len(out) == 1  # an empty plan leaves the prompt's conditioning as it was
