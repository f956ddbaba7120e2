import json

import pytest
import torch

from gotr1_core.generation import GenerationConfig, generate
from gotr1_core.model.loading import load_model
from trainer.config import ConfigError, load_config
from trainer.sft import SFTConfig, train_sft
from trainer.vq import VQConfig, train_vq


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vq")
    train_vq(VQConfig(output_dir=str(folder), steps=3, batch_size=4, train_scenes=50, eval_scenes=4,
                      codebook_size=64, save_every=3), progress=False)
    return folder


SMALL = dict(vocab_size=320, hidden_size=64, num_layers=2, num_heads=2, batch_size=8, train_scenes=300,
             eval_scenes=4, log_every=5, warmup_steps=5, lr=3e-3)


def test_smoke_sft_lowers_loss_and_exports_a_loadable_model(tmp_path, vq_run):
    config = SFTConfig(output_dir=str(tmp_path / "sft"), vq_run=str(vq_run), steps=40, save_every=20, **SMALL)
    metrics = train_sft(config, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    text = [r["train/text_loss"] for r in rows if "train/text_loss" in r]
    image = [r["train/image_loss"] for r in rows if "train/image_loss" in r]
    assert text[-1] < 0.7 * text[0] and image[-1] < image[0]
    assert 0.0 <= metrics["test/correct"] <= 1.0 and "heldout/chains_clean" in metrics

    folder = tmp_path / "sft" / "model"
    card = json.loads((folder / "model_card.json").read_text())
    assert card["seed"] == 0 and card["config"]["steps"] == 40 and card["metrics"]["steps"] == 40
    got = load_model(folder, device="cpu")  # the public loader, as a user's checkpoint
    assert got.num_image_tokens == 64 and got.image_size == 64
    result = generate(got, "a red circle left of a blue square", GenerationConfig(num_samples=2, max_reason_tokens=40))
    assert result.images.shape == (2, 64, 64, 3)
    # The VQ inside the exported model is the trained one, unchanged by SFT.
    from safetensors.torch import load_file

    trained_vq = load_file(str(vq_run / "vq.safetensors"))
    assert torch.equal(got.model.model.vqmodel.quantize.embedding.weight, trained_vq["quantize.embedding.weight"])


def test_sft_config_checks_the_vq_run(tmp_path):
    with pytest.raises(ConfigError, match="holds no finished VQ run"):
        load_config(SFTConfig, None, [f"output_dir={tmp_path}", f"vq_run={tmp_path / 'none'}"])
    with pytest.raises(ConfigError, match="divisible by num_heads"):
        load_config(SFTConfig, None, [f"output_dir={tmp_path}", f"vq_run={tmp_path}", "hidden_size=30",
                                      "num_heads=4"])
    with pytest.raises(ConfigError, match=r"free_coordinates: must be in \[0, 1\)") as info:
        load_config(SFTConfig, None, [f"output_dir={tmp_path}", f"vq_run={tmp_path}", "free_coordinates=1.5",
                                      "person_plans=-0.1"])
    assert "person_plans: must be in [0, 1)" in str(info.value)  # every problem, not only the first


def test_person_plans_teach_the_image_but_not_the_chain():
    """A plan in a person's wording or at a person's coordinates is conditioning: its tokens get no LM
    target, its image tokens do; the model's own chains are learned as before, and unconditional rows
    learn only their image."""
    from gotr1_core.reasoning import parse_chain
    from gotr1_core.shapeworld import generate_split
    from gotr1_core.shapeworld.scenes import drawn_box
    from trainer.sft import IGNORE, collate, scene_chains

    scenes = generate_split("train", 200, seed=0)
    chains = scene_chains(scenes, 0.5, 0.5, seed=0)
    learned = [i for i, (_, learn) in enumerate(chains) if learn]
    assert 25 <= len(learned) <= 75 and scene_chains(scenes, 0.5, 0.5, seed=0) == chains  # a quarter, seeded
    off_lattice = 0
    for i, (chain, learn) in enumerate(chains):
        parsed = parse_chain(chain, strict=True)
        boxes = [b for o in parsed.objects for b in o.boxes]
        assert [o.label for o in parsed.objects] == scenes[i].spec.object_names()
        assert [drawn_box(b) for b in boxes] == [o.pixel_box for o in scenes[i].objects]  # draws the same scene
        off_lattice += boxes != [o.box for o in scenes[i].layout.objects]
        assert (chain == scenes[i].chain) == learn
    assert 70 <= off_lattice <= 130
    examples = [([1, 2, 3], [10, 11, 12], [5, 6], True), ([1, 2, 3], [20, 21], [7, 8], False)]
    _, _, _, text_target, image_target = collate(examples, pad=0, drop=torch.tensor([False, False]))
    assert text_target[0].tolist().count(IGNORE) < text_target.shape[1] and (text_target[1] == IGNORE).all()
    assert [t for t in image_target[1].tolist() if t != IGNORE] == [7, 8]
    _, _, _, text_target, image_target = collate(examples[:1], pad=0, drop=torch.tensor([True]))
    assert (text_target == IGNORE).all() and [t for t in image_target[0].tolist() if t != IGNORE] == [5, 6]


def test_sft_refuses_several_processes_with_the_way_out(tmp_path, vq_run, monkeypatch):
    """SFT is not data-parallel: N processes would each train the same batches without syncing. A launch with two
    processes stops before any work, saying how to run it."""
    import accelerate

    class TwoProcesses(accelerate.Accelerator):
        num_processes = 2

    monkeypatch.setattr(accelerate, "Accelerator", TwoProcesses)
    config = SFTConfig(output_dir=str(tmp_path / "sft"), vq_run=str(vq_run), steps=2, **SMALL)
    with pytest.raises(ValueError, match="runs in one process .* launched with 2: run it without accelerate launch"):
        train_sft(config, progress=False)
    assert not (tmp_path / "sft" / "config.yaml").exists()
