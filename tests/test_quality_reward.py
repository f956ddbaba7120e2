"""R_HPS (visual quality through a CLIP folder), the OpenCLIP conversion, and the reward formulas."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tiny_clip import make_tiny_clip

from gotr1_core.model.loading import CheckpointError
from gotr1_core.rewards import HPSScorer, RewardFormula, Rewards, ScoredJudge, ShapeWorldJudge, load_judge
from gotr1_core.rewards.hps_convert import convert_hps
from gotr1_core.shapeworld import generate_split


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("hps") / "tiny-hps")


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 40, 48, 3)).astype(np.float32)


# -- the formulas ----------------------------------------------------------------------------


def test_presets_on_hand_computed_numbers():
    values = {"r_sem": 0.5, "r_spa": 1.0, "r_ri": 0.8, "r_pi": 0.6, "r_hps": 0.3}
    assert RewardFormula.of("v1")(**values) == pytest.approx(0.6 * 1.5 * 0.8)        # 0.72
    assert RewardFormula.of("v2")(**values) == pytest.approx(0.6 * 0.75 * 0.8 * 0.3)  # 0.108
    custom = RewardFormula.of("custom", "min(r_pi, r_ri) + 0.5 * r_hps ** 2 - -r_sem / 4")
    assert custom(**values) == pytest.approx(0.6 + 0.5 * 0.09 + 0.125)
    assert RewardFormula.of("custom", "r_sem / (r_spa - 1)")(**values) == 0.0  # a zero denominator earns 0
    assert RewardFormula.of("v2").needs == {"r_pi", "r_sem", "r_spa", "r_ri", "r_hps"}
    assert "r_hps" not in RewardFormula.of("v1").needs


@pytest.mark.parametrize("expression, needle", [
    ("__import__('os').system('true')", "__import__"), ("r_sem.real", "r_sem.real"), ("r_x * 2", "r_x"),
    ("[r_sem]", "[r_sem]"), ("r_sem if r_spa else 0", "if"), ("'a' * 3", "'a'"), ("r_sem +", "not an expression"),
])
def test_custom_formula_refuses_anything_but_arithmetic(expression, needle):
    with pytest.raises(ValueError, match="reward formula") as info:
        RewardFormula.of("custom", expression)
    assert needle in str(info.value)


def test_formula_choices_are_checked():
    with pytest.raises(ValueError, match="v1, v2, custom"):
        RewardFormula.of("v3")
    with pytest.raises(ValueError, match="needs reward_expression"):
        RewardFormula.of("custom")
    with pytest.raises(ValueError, match="only read with reward_formula custom"):
        RewardFormula.of("v1", "r_pi")


def test_rewards_total_follows_the_formula_and_reports_it():
    base = Rewards([1.0, 0.5], [1.0, 1.0], [0.5, 1.0], [1.0, 0.2])
    assert base.total == pytest.approx([1.0, 0.3])
    v2 = Rewards([1.0, 0.5], [1.0, 1.0], [0.5, 1.0], [1.0, 0.2], r_hps=[0.3, 0.25], formula=RewardFormula.of("v2"))
    assert v2.total == pytest.approx([0.15, 0.0375])
    rows = v2.to_list()
    assert rows[1]["r_hps"] == 0.25 and rows[1]["formula"] == "v2"
    assert v2.select([1]).total == pytest.approx([0.0375])
    assert Rewards.concat([v2.select([1]), v2.select([0])]).total == pytest.approx([0.0375, 0.15])
    with pytest.raises(ValueError, match="different formulas"):
        Rewards.concat([base, v2])
    with pytest.raises(ValueError, match="R_HPS"):
        Rewards([1.0], [1.0], [1.0], [1.0], formula=RewardFormula.of("v2"))
    with pytest.raises(ValueError, match="r_hps value 1.5"):
        Rewards([1.0], [1.0], [1.0], [1.0], r_hps=[1.5])


# -- the quality model -------------------------------------------------------------------------


def test_hps_score_is_the_cosine_of_the_embeddings(clip_folder):
    """Hand-computed: the image tower's pooled output through the visual projection, the text tower's
    through the text projection, both normalised; R_HPS is their dot product floored at 0 — in batches."""
    scorer = HPSScorer(clip_folder, device="cpu", dtype="float32", max_batch=2)
    prompts = ["a red circle", "two blue squares", "a green triangle above a red square"]
    pictures = images(3)
    model = scorer.model
    expected = []
    for prompt, picture in zip(prompts, pictures):
        pixels = scorer.images(images=[(picture * 255).round().astype(np.uint8)], return_tensors="pt")["pixel_values"]
        ids = scorer.tokenizer([prompt], return_tensors="pt")["input_ids"]
        with torch.no_grad():
            image = model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)[0].numpy()
            text = model.text_projection(model.text_model(input_ids=ids).pooler_output)[0].numpy()
        expected.append(max(0.0, float(image @ text / np.linalg.norm(image) / np.linalg.norm(text))))
    assert scorer.score(prompts, pictures) == pytest.approx(expected, abs=1e-4)
    assert any(e > 0 for e in expected), "the fixed input should give a positive cosine somewhere"
    with pytest.raises(ValueError, match="one prompt per image"):
        scorer.score(prompts[:2], pictures)


@pytest.mark.parametrize("breakage, needle", [
    ("no_config", "no config.json"), ("qwen", "model_type is 'qwen2_5_vl'"), ("pickle", "no \\*.safetensors"),
    ("no_tokenizer", "no tokenizer \\(vocab.json \\+ merges.txt, or tokenizer.json\\)"),
    ("missing_tensor", "weights missing"),
])
def test_quality_folder_problems_say_what_is_expected(clip_folder, tmp_path, breakage, needle):
    import shutil

    from safetensors.torch import load_file

    folder = tmp_path / "hps"
    shutil.copytree(clip_folder, folder)
    if breakage == "no_config":
        (folder / "config.json").unlink()
    elif breakage == "qwen":
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "qwen2_5_vl"}))
    elif breakage == "pickle":
        (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    elif breakage == "no_tokenizer":
        (folder / "vocab.json").unlink()
    else:
        tensors = load_file(str(folder / "model.safetensors"))
        del tensors["visual_projection.weight"]
        save_file(tensors, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match=needle):
        HPSScorer(folder, device="cpu")


def test_judge_with_quality_scores_r_hps_and_combines_by_v2(clip_folder):
    """The exact judge plus the quality model, through load_judge (the trainer's and the CLI's path)."""
    scenes = generate_split("train", 3, seed=5)
    pictures = np.stack([scene.render() for scene in scenes])
    prompts, chains = [scene.prompt for scene in scenes], [scene.chain for scene in scenes]
    judge = load_judge("shapeworld", device="cpu", quality=str(clip_folder), formula=RewardFormula.of("v2"))
    assert isinstance(judge, ScoredJudge) and judge.name == "shapeworld+hps"
    rewards = judge.score(prompts, chains, None, pictures)
    plain = ShapeWorldJudge().score(prompts, chains, None, pictures)
    hps = HPSScorer(clip_folder, device="cpu").score(prompts, pictures)
    assert rewards.r_hps == pytest.approx(hps, abs=1e-5)
    assert rewards.total == pytest.approx([t / 2 * h for t, h in zip(plain.total, hps)], abs=1e-5)
    with pytest.raises(ValueError, match="R_HPS"):
        load_judge("shapeworld", formula=RewardFormula.of("v2"))
    with pytest.raises(ValueError, match="no config.json"):
        load_judge("shapeworld", quality=str(clip_folder.parent / "nowhere"))
    assert isinstance(load_judge("shapeworld"), ShapeWorldJudge)  # nothing added, nothing wrapped


# -- OpenCLIP to transformers -------------------------------------------------------------------


def open_clip_names(model) -> dict[str, torch.Tensor]:
    """The reference for the conversion: a transformers CLIP's tensors under OpenCLIP's names (fused q/k/v
    input projection, projections stored as x @ P)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = {"logit_scale": state["logit_scale"], "visual.proj": state["visual_projection.weight"].T,
           "text_projection": state["text_projection.weight"].T}
    for new, old in (("visual.class_embedding", "vision_model.embeddings.class_embedding"),
                     ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
                     ("visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"),
                     ("token_embedding.weight", "text_model.embeddings.token_embedding.weight"),
                     ("positional_embedding", "text_model.embeddings.position_embedding.weight")):
        out[new] = state[old]
    for kind in ("weight", "bias"):
        out[f"visual.ln_pre.{kind}"] = state[f"vision_model.pre_layrnorm.{kind}"]
        out[f"visual.ln_post.{kind}"] = state[f"vision_model.post_layernorm.{kind}"]
        out[f"ln_final.{kind}"] = state[f"text_model.final_layer_norm.{kind}"]
    for tower, prefix, config in (("vision_model", "visual.transformer.resblocks", model.config.vision_config),
                                  ("text_model", "transformer.resblocks", model.config.text_config)):
        for i in range(config.num_hidden_layers):
            src, dst = f"{tower}.encoder.layers.{i}.", f"{prefix}.{i}."
            for kind in ("weight", "bias"):
                out[f"{dst}attn.in_proj_{kind}"] = torch.cat(
                    [state[f"{src}self_attn.{p}_proj.{kind}"] for p in "qkv"])
                for old, new in (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("self_attn.out_proj", "attn.out_proj"),
                                 ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj")):
                    out[f"{dst}{new}.{kind}"] = state[f"{src}{old}.{kind}"]
    return {f"module.{k}": v.contiguous() for k, v in out.items()}  # as a distributed run saves them


def test_open_clip_weights_convert_to_the_same_scores(clip_folder, tmp_path):
    original = HPSScorer(clip_folder, device="cpu", dtype="float32")
    source = tmp_path / "HPS_v2.1.safetensors"
    save_file(open_clip_names(original.model), str(source))
    heads = (original.model.config.vision_config.num_attention_heads,
             original.model.config.text_config.num_attention_heads)
    converted = convert_hps(source, clip_folder, tmp_path / "converted", *heads)
    assert not (tmp_path / "converted.partial").exists()
    scorer = HPSScorer(converted, device="cpu", dtype="float32")
    for name, tensor in original.model.state_dict().items():
        assert torch.equal(scorer.model.state_dict()[name], tensor), name
    prompts, pictures = ["a red circle", "two blue squares"], images(2, seed=3)
    assert scorer.score(prompts, pictures) == pytest.approx(original.score(prompts, pictures), abs=1e-5)
    with pytest.raises(CheckpointError, match="exists"):
        convert_hps(source, clip_folder, converted, *heads)
    with pytest.raises(CheckpointError, match="must be a .safetensors"):
        convert_hps(tmp_path / "HPS_v2.1_compressed.pt", clip_folder, tmp_path / "other")
    broken = tmp_path / "broken.safetensors"
    save_file({"visual.conv1.weight": torch.zeros(4, 3, 14, 14)}, str(broken))
    with pytest.raises(CheckpointError, match="not an OpenCLIP CLIP state dict"):
        convert_hps(broken, clip_folder, tmp_path / "other")


def test_formula_total_range_matches_the_docs():
    """v1 totals reach 2 and v2 totals stay within [0, 1] at the extremes."""
    ones = {"r_sem": 1.0, "r_spa": 1.0, "r_ri": 1.0, "r_pi": 1.0, "r_hps": 1.0}
    assert RewardFormula.of("v1")(**ones) == 2.0
    assert math.isclose(RewardFormula.of("v2")(**ones), 1.0)
