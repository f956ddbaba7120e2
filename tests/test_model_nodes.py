"""Loader / Planner / Generator nodes, called as ComfyUI calls them."""

import pytest
import torch

from gotr1_core.layout import Layout
from gotr1_core.reasoning import split_chains
from nodes import services
from nodes.model_nodes import Generator, LoadedModel, ModelLoader, ReasoningPlanner
from tiny_janus import make_tiny_model

CHAIN = ("a <|obj_start|>red circle<|obj_end|> <|box_start|>(100,200),(400,500)<|box_end|><begin_of_image>")


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    make_tiny_model(root / "tiny-janus", stop_bias=2.0)
    return root


@pytest.fixture
def model(models_dir, monkeypatch):
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(models_dir))
    (loaded,) = ModelLoader().load("tiny-janus", "auto", "cpu")
    return loaded


def test_loader_lists_and_loads_once(model, models_dir, monkeypatch):
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(models_dir))
    assert ModelLoader.INPUT_TYPES()["required"]["model"][0] == ["shapeworld-tiny (built in)", "tiny-janus"]
    assert isinstance(model, LoadedModel) and model.got.dtype == torch.float32
    (again,) = ModelLoader().load("tiny-janus", "auto", "cpu")
    assert again is model  # same inputs -> same loaded model, not a second copy
    (bf16,) = ModelLoader().load("tiny-janus", "bf16", "cpu")
    assert bf16 is not model and bf16.got.dtype == torch.bfloat16


@pytest.mark.parametrize("weights", ["fp8", "int8", "int4"])
def test_loader_offers_quantized_weights_and_the_generator_draws_with_them(models_dir, monkeypatch, weights):
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(models_dir))
    assert ModelLoader.INPUT_TYPES()["required"]["weights"][0] == ["auto", "bf16", "fp16", "fp32", "fp8", "int8",
                                                                   "int4"]
    if weights == "int4":  # 32-wide layers: NF4 needs rows in blocks of 64
        with pytest.raises(ValueError, match="blocks of 64 weights; this model's layers are 32 wide. Use int8"):
            ModelLoader().load("tiny-janus", weights, "cpu")
        return
    (quantized,) = ModelLoader().load("tiny-janus", weights, "cpu")
    assert quantized.got.extra["quantize"] == weights and quantized.got.dtype == torch.float32
    images, chains, _ = Generator().generate(quantized, "a red circle", batch_size=2, cfg=3.0, seed=1,
                                             text_temperature=1.0, image_temperature=1.0)
    assert images.shape == (2, 8, 8, 3) and len(split_chains(chains)) == 2


@pytest.mark.parametrize("name", ["../tiny-janus", "/etc/passwd", "tiny-janus/../../x", "missing"])
def test_loader_rejects_names_outside_the_model_folder(models_dir, monkeypatch, name):
    monkeypatch.setenv("GOTR1_MODELS_DIR", str(models_dir))
    with pytest.raises((ValueError, FileNotFoundError)):
        ModelLoader().load(name, "auto", "cpu")


def test_planner_returns_chain_and_layout(model):
    chain, layout = ReasoningPlanner().plan(model, "a red circle", seed=3, temperature=1.0, max_tokens=16)
    assert isinstance(chain, str) and isinstance(layout, Layout)
    again, _ = ReasoningPlanner().plan(model, "a red circle", seed=3, temperature=1.0, max_tokens=16)
    assert again == chain


def test_a_fresh_planner_runs_at_its_defaults_with_the_builtin_model():
    """Every widget at its default, as a node dropped on the canvas has it."""
    (builtin,) = ModelLoader().load("shapeworld-tiny (built in)", "auto", "cpu")
    required = ReasoningPlanner.INPUT_TYPES()["required"]
    defaults = {name: spec[1]["default"] for name, spec in required.items() if name not in ("model", "prompt")}
    chain, layout = ReasoningPlanner().plan(builtin, "a red circle to the left of a blue square", **defaults)
    assert defaults["max_tokens"] == -1 and sorted(layout.labels) == ["blue square", "red circle"]
    _, long = ReasoningPlanner().plan(builtin, "a red circle", **{**defaults, "max_tokens": 600})  # cut, not refused
    assert long.labels == ["red circle"]


def test_generator_plans_per_image(model):
    images, chains, report = Generator().generate(model, "a red circle", batch_size=3, cfg=3.0, seed=1,
                                                  text_temperature=1.0, image_temperature=1.0)
    assert images.shape == (3, 8, 8, 3) and images.dtype == torch.float32
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert len(split_chains(chains)) == 3
    assert [line.split(":")[0] for line in report.splitlines() if line.startswith("image")] == \
        ["image 0", "image 1", "image 2"]


def test_generator_uses_given_chain_or_layout(model):
    images, chains, report = Generator().generate(model, "a red circle", batch_size=2, cfg=3.0, seed=1,
                                                  text_temperature=1.0, image_temperature=0.0, chain=CHAIN)
    assert split_chains(chains) == [CHAIN, CHAIN] and report == "given chain: no problems found"
    layout = Layout.from_chain(CHAIN)
    images_from_layout, chains_from_layout, _ = Generator().generate(
        model, "a red circle", batch_size=2, cfg=3.0, seed=1, text_temperature=1.0, image_temperature=0.0,
        layout=layout)
    assert split_chains(chains_from_layout) == [layout.to_chain()] * 2
    assert images.shape == images_from_layout.shape


def test_generator_draws_a_repaired_chain_as_repaired_and_says_so(model, capsys):
    broken = "a <|obj_start|>red circle <|box_start|>(100,200),(400,500)<|box_end|> on the left"
    images, chains, report = Generator().generate(model, "a red circle", batch_size=1, cfg=3.0, seed=1,
                                                  text_temperature=1.0, image_temperature=0.0, chain=broken)
    repaired = ("a <|obj_start|>red circle <|obj_end|><|box_start|>(100,200),(400,500)<|box_end|> on the left"
                "<begin_of_image>")
    assert split_chains(chains) == [repaired]  # the model saw well-formed tags
    assert "1:27: error: expected <|obj_end|>" in report  # where the <|box_start|> came instead
    assert "repaired before drawing" in capsys.readouterr().out  # and the console says so
    again, _, _ = Generator().generate(model, "a red circle", batch_size=1, cfg=3.0, seed=1,
                                       text_temperature=1.0, image_temperature=0.0, chain=repaired)
    assert torch.equal(images, again)


def test_generator_refuses_a_chain_with_nothing_to_draw(model):
    with pytest.raises(ValueError, match=r"no object with a box in the chain: 1:24: error: expected <\|obj_end\|>"):
        Generator().generate(model, "a red circle", batch_size=4, cfg=3.0, seed=0, text_temperature=1.0,
                             image_temperature=1.0, chain="<|obj_start|>red circle<|box_start|>(1,2")


def test_generator_redraws_one_image_alone(model):
    batch, _, _ = Generator().generate(model, "a red circle", batch_size=3, cfg=3.0, seed=9, text_temperature=1.0,
                                       image_temperature=1.0)
    alone, _, _ = Generator().generate(model, "a red circle", batch_size=1, cfg=3.0, seed=9, text_temperature=1.0,
                                       image_temperature=1.0, first_index=2)
    torch.testing.assert_close(alone[0], batch[2], rtol=0, atol=1e-6)


def test_generator_progress_and_cancel(model, monkeypatch):
    bars = []
    real = services.progress_bar

    def recording(total):
        bars.append(real(total))
        return bars[-1]

    monkeypatch.setattr(services, "progress_bar", recording)
    Generator().generate(model, "a red circle", batch_size=2, cfg=3.0, seed=1, text_temperature=1.0,
                         image_temperature=1.0, chain=CHAIN)
    assert bars and bars[0].current > 0
    services.request_interrupt()
    with pytest.raises(services.InterruptedByUser):
        Generator().generate(model, "a red circle", batch_size=2, cfg=3.0, seed=1, text_temperature=1.0,
                             image_temperature=1.0)


def test_generator_rejects_a_non_model():
    with pytest.raises(TypeError, match="GoT-R1 Model Loader"):
        Generator().generate("model.safetensors", "x", 1, 5.0, 0, 1.0, 1.0)


def test_minus_one_takes_the_models_own_settings(model):
    """cfg / temperatures of -1 (the defaults) use gotr1.json, exactly as the library's None does."""
    from gotr1_core.generation import GenerationConfig, generate

    got = model.ready()
    images, _, _ = Generator().generate(model, "a red circle", batch_size=2, cfg=-1.0, seed=4,
                                          text_temperature=-1.0, image_temperature=-1.0)
    reference = generate(got, "a red circle", GenerationConfig(num_samples=2, seed=4))
    torch.testing.assert_close(images, reference.images, rtol=0, atol=1e-6)
    defaults = Generator.INPUT_TYPES()["required"]
    assert defaults["cfg"][1]["default"] == -1.0 and defaults["image_temperature"][1]["default"] == -1.0


def test_loader_reloads_when_the_folder_changes_and_only_then(models_dir, monkeypatch):
    import os

    monkeypatch.setenv("GOTR1_MODELS_DIR", str(models_dir))
    first = ModelLoader.IS_CHANGED("tiny-janus", "auto", "cpu")
    assert ModelLoader.IS_CHANGED("tiny-janus", "auto", "cpu") == first  # ComfyUI keeps its cached output
    (a,) = ModelLoader().load("tiny-janus", "auto", "cpu")
    (b,) = ModelLoader().load("tiny-janus", "auto", "cpu")
    assert a is b
    weights = models_dir / "tiny-janus" / "model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new export written over it
    assert ModelLoader.IS_CHANGED("tiny-janus", "auto", "cpu") != first
    (c,) = ModelLoader().load("tiny-janus", "auto", "cpu")
    assert c is not a
    missing = ModelLoader.IS_CHANGED("no-such-model", "auto", "cpu")
    assert missing != missing  # NaN: always re-run, so load() reports the problem


def test_generator_asks_model_management_for_the_planned_memory_and_fits_its_chunks(model, monkeypatch):
    from gotr1_core import fitting, generation
    from gotr1_core.fitting import plan_options
    from gotr1_core.generation import GenerationConfig, encode_prompt
    from gotr1_core.memory import plan_memory

    got = model.ready()
    config = GenerationConfig(num_samples=6, seed=1, cfg_scale=3.0)
    options = plan_options(got, config, False, len(encode_prompt(got, "a red circle")))
    plan, two = plan_memory(got.model.config, 6, **options), plan_memory(got.model.config, 6, chunk=2, **options)
    asked = []
    monkeypatch.setattr(services, "free_memory", lambda num_bytes, device: asked.append(num_bytes))
    monkeypatch.setattr(services, "free_bytes", lambda device: two.peak - two.weights)  # room for 2 at a time
    chunks = []
    real = generation.generate
    monkeypatch.setattr(fitting, "generate", lambda *a, **k: chunks.append(a[2].num_samples) or real(*a, **k))
    images, _, _ = Generator().generate(model, "a red circle", batch_size=6, cfg=3.0, seed=1, text_temperature=-1,
                                        image_temperature=-1)
    assert asked == [plan.peak - plan.weights]  # the whole batch's need beyond the loaded weights
    assert chunks == [2, 2, 2] and images.shape[0] == 6
    torch.testing.assert_close(images, real(got, "a red circle", config).images, atol=1e-5, rtol=0)  # unchunked


def test_tooltips_say_what_minus_one_means_with_the_built_in_models_values():
    """-1 takes the model's gotr1.json; the tooltip names the values a user meets (the built-in model's) beside
    upstream's, read from the files, never written into the text by hand."""
    import json

    from gotr1_core.model.spec import BUILTIN_MODEL, GenerationSpec
    from nodes.model_nodes import Generator, ReasoningPlanner

    spec = json.loads((BUILTIN_MODEL / "gotr1.json").read_text())
    generator = Generator.INPUT_TYPES()["required"]
    assert f"{spec['cfg_scale']:g} for the built-in model, {GenerationSpec().cfg_scale:g}" in \
        generator["cfg"][1]["tooltip"]
    assert f"{spec['image_temperature']:g} for the built-in model" in generator["image_temperature"][1]["tooltip"]
    planner = ReasoningPlanner.INPUT_TYPES()["required"]
    assert f"{spec['max_reason_tokens']} for the built-in model" in planner["max_tokens"][1]["tooltip"]
