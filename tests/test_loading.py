import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from gotr1_core.model.loading import (
    CheckpointError,
    GenerationSpec,
    load_model,
    resolve_dtype,
    save_model,
)
from tiny_janus import make_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def copy(model_dir, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(model_dir, target)
    return target


def logits_of(got, ids=(0, 10, 20, 30)):
    with torch.no_grad():
        return got.model(input_ids=torch.tensor([list(ids)])).logits


def test_loads_hf_folder_like_a_user_checkpoint(model_dir):
    got = load_model(model_dir, device="cpu")
    assert type(got.model).__name__ == "JanusForConditionalGeneration"
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    assert not got.model.training
    assert not any(p.requires_grad for p in got.model.parameters())
    assert got.num_image_tokens == 16 and got.image_size == 8
    assert got.spec.max_reason_tokens == 24
    assert got.token_ids.image_start == got.tokenizer.convert_tokens_to_ids("<begin_of_image>")
    # Weights are the saved ones, not a fresh random init.
    saved = load_file(str(model_dir / "model.safetensors"))
    assert torch.equal(got.model.lm_head.weight, saved["lm_head.weight"])


def test_save_and_reload_round_trip(model_dir, tmp_path):
    got = load_model(model_dir, device="cpu")
    out = save_model(got, tmp_path / "exported", max_shard_size="1MB")
    assert (out / "model.safetensors.index.json").exists()  # sharded
    again = load_model(out, device="cpu")
    for name, tensor in again.model.state_dict().items():
        assert torch.equal(tensor, got.model.state_dict()[name]), name
    # Equal weights promise equal values, not equal kernel paths: outputs to float32 rounding.
    torch.testing.assert_close(logits_of(got), logits_of(again), rtol=1e-5, atol=1e-6)
    assert again.spec == got.spec


def test_dtype_selection():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bf16", torch.device("cpu")) == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int3", torch.device("cpu"))


def test_bf16_load(model_dir):
    got = load_model(model_dir, device="cpu", dtype="bf16")
    assert got.dtype == torch.bfloat16
    assert logits_of(got).dtype == torch.bfloat16


def test_missing_weights_file_is_named(copy):
    (copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        load_model(copy, device="cpu")


def test_legacy_bin_points_to_convert(copy):
    (copy / "model.safetensors").rename(copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="gotr1 convert"):
        load_model(copy, device="cpu")


def test_truncated_weights_file_is_named(copy):
    path = copy / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: cannot read safetensors file"):
        load_model(copy, device="cpu")


def test_wrong_shape_is_named(copy):
    path = copy / "model.safetensors"
    tensors = load_file(str(path))
    tensors["model.generation_head.vision_head.weight"] = torch.zeros(3, 3)
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=r"model.generation_head.vision_head.weight has shape \(3, 3\)"):
        load_model(copy, device="cpu")


def test_missing_and_unexpected_keys_are_named(copy):
    path = copy / "model.safetensors"
    tensors = load_file(str(path))
    del tensors["model.language_model.layers.1.mlp.up_proj.weight"]
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match="missing from the checkpoint: model.language_model.layers.1.mlp.up_proj"):
        load_model(copy, device="cpu")
    tensors["model.language_model.layers.1.mlp.up_proj.weight"] = torch.zeros(128, 32)
    tensors["model.extra.weight"] = torch.zeros(2)
    save_file(tensors, str(path))
    with pytest.raises(CheckpointError, match=r"not used by JanusForConditionalGeneration: model.extra.weight"):
        load_model(copy, device="cpu")


def test_missing_shard_is_named(model_dir, tmp_path):
    out = save_model(load_model(model_dir, device="cpu"), tmp_path / "sharded", max_shard_size="1MB")
    shard = sorted(out.glob("model-*.safetensors"))[0]
    shard.unlink()
    with pytest.raises(CheckpointError, match=f"shards that are missing: {shard.name}"):
        load_model(out, device="cpu")


def test_tokenizer_without_chain_tokens_is_explained(copy):
    """A plain text tokenizer (no chain tokens) splits the tags into pieces: refuse it and say why."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.train_from_iterator(["plain text only"], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "</s>", "<pad>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (copy / name).unlink()
    PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                            pad_token="<pad>").save_pretrained(str(copy))
    with pytest.raises(CheckpointError, match=r"does not encode <\|obj_start\|>, <\|obj_end\|>, <\|box_start\|>, "
                                              r"<\|box_end\|>, <begin_of_image> as single tokens"):
        load_model(copy, device="cpu")


def test_config_problems_are_clear(copy, tmp_path):
    with pytest.raises(CheckpointError, match="model folder not found"):
        load_model(tmp_path / "nope")
    (copy / "config.json").write_text(json.dumps({"model_type": "multi_modality", "language_config": {}}))
    with pytest.raises(CheckpointError, match="original config lacks 'vision_config'"):
        load_model(copy, device="cpu")
    (copy / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(CheckpointError, match="expected 'janus'"):
        load_model(copy, device="cpu")
    (copy / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_model(copy, device="cpu")


def test_generation_spec_file_is_validated(copy):
    (copy / "gotr1.json").write_text(json.dumps({"prompt_templ": "x"}))
    with pytest.raises(CheckpointError, match=r"unknown keys \['prompt_templ'\]"):
        load_model(copy, device="cpu")
    (copy / "gotr1.json").write_text(json.dumps({"prompt_template": "no placeholder"}))
    with pytest.raises(CheckpointError, match="exactly once"):
        load_model(copy, device="cpu")
    (copy / "gotr1.json").write_text(json.dumps({"plan_wording": "poetic"}))
    with pytest.raises(CheckpointError, match="plan_wording must be one of as_written, shapeworld, got 'poetic'"):
        load_model(copy, device="cpu")
    # Trailing whitespace dropped, leading kept, as the GoT-R1 release prompts its models.
    assert GenerationSpec().format_prompt("  a cat \n") == (
        "User: Follow the caption to generate an image through a chain of thought process:   a cat\n\nAssistant:")


def test_trained_tokenizers_read_numbers_digit_by_digit():
    """As DeepSeek's tokenizer does: any grid coordinate is a sequence over ten digit tokens, whatever numbers
    the training text held (here only multiples of 125), and decoding gives the text back."""
    from gotr1_core.model.tokenizer import train_tokenizer

    corpus = [f"<|box_start|>({a},{b}),({a + 250},{b + 375})<|box_end|>" for a in range(0, 750, 125)
              for b in range(0, 625, 125)] * 4
    tokenizer = train_tokenizer(corpus, vocab_size=300)
    for text in ("(130,275),(1000,0)", "(125,250),(375,625)", "x 987654321 y"):
        ids = tokenizer.encode(text, add_special_tokens=False)
        pieces = tokenizer.convert_ids_to_tokens(ids)
        digits = [p for p in pieces if any(ch.isdigit() for ch in p)]
        assert all(len(p) == 1 for p in digits), pieces
        assert len(digits) == sum(ch.isdigit() for ch in text)
        assert tokenizer.decode(ids) == text
    whole = train_tokenizer(corpus, vocab_size=300, split_digits=False)  # the shipped model's kind
    assert "125" in whole.convert_ids_to_tokens(whole.encode("(125,250)", add_special_tokens=False))


def test_generation_only_loading_leaves_the_understanding_path_out(model_dir, tmp_path):
    from gotr1_core.generation import GenerationConfig, generate
    from gotr1_core.model.loading import NotLoaded

    lean, whole = load_model(model_dir, device="cpu"), load_model(model_dir, device="cpu", understanding=True)
    saved = load_file(str(model_dir / "model.safetensors"))
    skipped = {p: sum(t.numel() for k, t in saved.items() if k.startswith(p + ".")) for p in
               ("model.vision_model", "model.aligner")}
    assert lean.extra["not_loaded"] == skipped and all(skipped.values())  # listed by name, counted
    assert isinstance(lean.model.model.vision_model, NotLoaded) and isinstance(lean.model.model.aligner, NotLoaded)
    assert sum(p.numel() for p in lean.model.parameters()) == \
        sum(p.numel() for p in whole.model.parameters()) - sum(skipped.values())
    assert not any(k.startswith(("model.vision_model.", "model.aligner.")) for k in lean.model.state_dict())
    with pytest.raises(RuntimeError, match="understanding=True"):
        lean.model.model.vision_model(torch.zeros(1, 3, 8, 8))
    config = GenerationConfig(num_samples=2, seed=4)
    a, b = generate(lean, ["a red circle"], config), generate(whole, ["a red circle"], config)
    assert a.chains == b.chains and torch.equal(a.image_ids, b.image_ids)  # the same images come out
    # saved whole: the parts left out are copied from the folder the model came from
    again = load_model(save_model(lean, tmp_path / "out"), device="cpu", understanding=True)
    for name, tensor in whole.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    assert isinstance(lean.model.model.vision_model, NotLoaded)  # and the loaded model is as it was


def test_generation_only_loading_does_not_read_the_understanding_weights(copy):
    path = copy / "model.safetensors"
    tensors = load_file(str(path))
    save_file({k: v for k, v in tensors.items() if not k.startswith("model.vision_model.")}, str(path))
    assert load_model(copy, device="cpu").extra["not_loaded"]["model.vision_model"] > 0
    with pytest.raises(CheckpointError, match="missing from the checkpoint: model.vision_model"):
        load_model(copy, device="cpu", understanding=True)  # asked for, it is checked name by name as before


def test_an_index_cannot_point_at_files_outside_the_model_folder(copy, tmp_path):
    """A shared folder's index naming ``../`` shards would read any safetensors file on the machine."""
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.copy(copy / "model.safetensors", elsewhere)
    names = list(load_file(str(copy / "model.safetensors")))
    (copy / "model.safetensors").unlink()
    (copy / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {name: "../elsewhere.safetensors" for name in names}}))
    with pytest.raises(CheckpointError, match=r"shards outside the model folder \(\.\./elsewhere"):
        load_model(copy, device="cpu")
