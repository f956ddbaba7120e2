import json

import torch
from safetensors.torch import load_file

from trainer.cli import main
from trainer.vq import VQConfig, build_vq, decode_tokens, encode_images, train_vq

SMALL = dict(batch_size=8, train_scenes=200, eval_scenes=10, log_every=5, warmup_steps=5, codebook_size=64)


def test_smoke_run_lowers_the_loss(tmp_path):
    metrics = train_vq(VQConfig(output_dir=str(tmp_path), steps=40, save_every=20, **SMALL), progress=False)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    losses = [row["train/loss"] for row in logged if "train/loss" in row]
    assert losses[-1] < losses[0] * 0.8
    assert {"eval/mse", "eval/correct", "eval/codes_used"} <= set(metrics)
    assert (tmp_path / "vq.safetensors").exists() and (tmp_path / "config.yaml").exists()


def test_stopped_and_resumed_run_equals_uninterrupted(tmp_path):
    config = dict(steps=12, save_every=4, restart_every=3, **SMALL)
    train_vq(VQConfig(output_dir=str(tmp_path / "straight"), **config), progress=False)
    assert train_vq(VQConfig(output_dir=str(tmp_path / "split"), **config), progress=False, stop_after=7) == \
        {"stopped_at": 7}
    train_vq(VQConfig(output_dir=str(tmp_path / "split"), **config), progress=False, resume=True)
    a = load_file(str(tmp_path / "straight" / "vq.safetensors"))
    b = load_file(str(tmp_path / "split" / "vq.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_tokens_round_trip_through_the_model_decoder():
    tokenizer = build_vq(VQConfig(output_dir="x", codebook_size=64)).eval()
    images = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    tokens = encode_images(tokenizer, images)
    assert tokens.shape == (3, 64) and tokens.max() < 64
    assert decode_tokens(tokenizer.vq, tokens).shape == (3, 64, 64, 3)


def test_a_token_depends_on_its_patch_only():
    """The same picture piece gets the same token wherever it is and whatever surrounds it."""
    tokenizer = build_vq(VQConfig(output_dir="x", codebook_size=64)).eval()
    images = torch.full((2, 64, 64, 3), 255, dtype=torch.uint8)
    piece = torch.randint(0, 255, (8, 8, 3), dtype=torch.uint8)
    images[0, 8:16, 16:24] = piece
    images[1, 40:48, 0:8] = piece
    images[1, 0:8, 0:8] = 0  # different surroundings elsewhere
    tokens = encode_images(tokenizer, images).view(2, 8, 8)
    assert tokens[0, 1, 2] == tokens[1, 5, 0]
    assert tokens[0, 0, 0] == tokens[1, 7, 7]  # white patches: one token, not one per context


def test_cli_rejects_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("output_dir: x\nvq_channels: 40\nsteps: 0\ncolour: red\n")
    assert main(["vq", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "unknown key 'colour'" in err
    path.write_text("output_dir: x\nvq_channels: 40\nsteps: 0\n")
    assert main(["vq", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "vq_channels: must be a multiple of 32" in err and "steps: must be > 0" in err
