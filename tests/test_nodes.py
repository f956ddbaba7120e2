"""Nodes called the way ComfyUI calls them: INPUT_TYPES defaults in, FUNCTION out."""

import pytest
import torch

import nodes
from nodes import services
from nodes.layout_nodes import LayoutViewer, ParseChain
from gotr1_core.layout import Layout
from gotr1_core.reasoning import ChainSyntaxError

CHAIN = ("a <|obj_start|>red circle<|obj_end|> <|box_start|>(100,100),(400,400)<|box_end|> left of a "
         "<|obj_start|>blue square<|obj_end|> <|box_start|>(600,100),(900,400)<|box_end|><begin_of_image>")

COMFY_TYPES = {"STRING", "INT", "FLOAT", "BOOLEAN", "IMAGE", "MASK", "GOT_LAYOUT", "GOT_MODEL", "GOT_JUDGE",
               "CLIP", "CONDITIONING", "GLIGEN"}


def call(node_cls, **kwargs):
    node = node_cls()
    return getattr(node, node_cls.FUNCTION)(**kwargs)


@pytest.mark.parametrize("key", sorted(nodes.NODE_CLASS_MAPPINGS))
def test_node_declarations_are_complete(key):
    cls = nodes.NODE_CLASS_MAPPINGS[key]
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS[key].startswith("GoT-R1 ")
    assert cls.CATEGORY.startswith("GoT-R1")
    assert callable(getattr(cls, cls.FUNCTION))
    assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
    assert set(cls.RETURN_TYPES) <= COMFY_TYPES
    spec = cls.INPUT_TYPES()
    for section in spec.values():
        for name, (kind, options) in section.items():
            assert isinstance(kind, list) or kind in COMFY_TYPES, name  # a list is a dropdown
            assert options.get("tooltip"), f"{key}.{name} has no tooltip"


def test_parse_chain_node():
    layout, report = call(ParseChain, chain=CHAIN, strict=True)
    assert isinstance(layout, Layout)
    assert layout.labels == ["red circle", "blue square"]
    assert report == "no problems found"

    layout, report = call(ParseChain, chain="<|obj_start|>cat<|obj_end|><|box_start|>(9,9),(1,1)<|box_end|>",
                          strict=False)
    assert layout.objects[0].box.as_tuple() == (1, 1, 9, 9)
    assert "inverted-corners" in report and "1:41" in report  # the box body, right after <|box_start|>
    with pytest.raises(ChainSyntaxError, match="line 1, column 41"):
        call(ParseChain, chain="<|obj_start|>cat<|obj_end|><|box_start|>(9,9),(1,1)<|box_end|>", strict=True)


def test_layout_viewer_from_chain_on_blank_canvas():
    image, mask = call(LayoutViewer, width=96, height=64, chain=CHAIN)
    assert image.shape == (1, 64, 96, 3) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert mask.shape == (2, 64, 96) and mask.dtype == torch.float32
    # Mask 0 is the red circle's box: x 10..38, y 6..26 at 96x64.
    assert mask[0, 6:26, 10:38].eq(1).all() and mask[0].sum() == 20 * 28


def test_layout_viewer_draws_on_every_background_frame():
    layout, _ = call(ParseChain, chain=CHAIN, strict=False)
    background = torch.zeros((3, 40, 50, 3))
    background[1] = 0.5
    image, mask = call(LayoutViewer, width=512, height=512, layout=layout, image=background)
    assert image.shape == (3, 40, 50, 3)
    assert mask.shape == (2, 40, 50)
    outside = mask.amax(dim=0) == 0
    assert torch.equal(image[0][outside], background[0][outside])
    assert torch.allclose(image[1][outside], background[1][outside], atol=1 / 255)


def test_layout_viewer_layout_wins_over_chain_and_empty_layout_gives_one_mask():
    image, mask = call(LayoutViewer, width=32, height=32, layout=Layout(), chain=CHAIN)
    assert mask.shape == (1, 32, 32) and mask.sum() == 0
    assert image.eq(1.0).all()


@pytest.mark.parametrize("kwargs, message", [
    ({}, "connect a GOT_LAYOUT or type a chain"),
    ({"chain": "   "}, "connect a GOT_LAYOUT or type a chain"),
    ({"layout": "not a layout"}, "must be a GOT_LAYOUT"),
    ({"chain": CHAIN, "image": torch.zeros(8, 8, 3)}, r"IMAGE batch \[B,H,W,C\]"),
])
def test_layout_viewer_bad_input_is_a_clear_error(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(LayoutViewer, width=32, height=32, **kwargs)


# -- services fallbacks -----------------------------------------------------------

def test_services_without_comfyui():
    assert services.IN_COMFYUI is False
    assert services.torch_device().type in ("cpu", "cuda")
    bar = services.progress_bar(10)
    bar.update(3)
    bar.update_absolute(7)
    assert (bar.current, bar.total) == (7, 10)
    services.check_interrupted()  # nothing pending
    services.request_interrupt()
    with pytest.raises(services.InterruptedByUser):
        services.check_interrupted()
    services.check_interrupted()  # the request is consumed


def test_model_names_resolve_only_inside_model_folder(tmp_path, monkeypatch):
    root = tmp_path / "models"
    (root / "tiny").mkdir(parents=True)
    (root / "tiny" / "config.json").write_text("{}")
    (tmp_path / "secret").mkdir()
    (root / "link").symlink_to(tmp_path / "secret")
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(root))

    assert services.list_model_dirs() == ["tiny"]
    assert services.resolve_model_dir("tiny") == (root / "tiny").resolve()
    for bad in ["../secret", "/etc", str(root / "tiny"), "tiny/../../secret", "a\\..\\b", "", "link"]:
        with pytest.raises((ValueError, FileNotFoundError)):
            services.resolve_model_dir(bad)
    with pytest.raises(FileNotFoundError, match="not found in"):
        services.resolve_model_dir("missing")
