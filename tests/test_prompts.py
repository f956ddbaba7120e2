import pytest

from trainer.prompts import batch_for_step, load_prompts, source_problem


def test_text_and_jsonl_prompt_files(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("# my prompts\na red circle\n\n  two cats  \n")
    assert [r["prompt"] for r in load_prompts(str(txt), 10)] == ["a red circle", "two cats"]
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"prompt": "a dog", "tag": 1}\n\n{"prompt": "a cat"}\n')
    records = load_prompts(str(jsonl), 10)
    assert records[0] == {"prompt": "a dog", "tag": 1} and len(records) == 2
    assert len(load_prompts(str(jsonl), 1)) == 1


@pytest.mark.parametrize("line, message", [('{"prompt": ', "p.jsonl:2: not valid JSON"),
                                           ('{"text": "x"}', 'p.jsonl:2: each line needs'),
                                           ('["a"]', 'p.jsonl:2: each line needs')])
def test_bad_jsonl_lines_are_named(tmp_path, line, message):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok"}\n' + line + "\n")
    with pytest.raises(ValueError, match=message):
        load_prompts(str(path), 10)


def test_sources_join_with_plus(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("a red circle\ntwo cats\n")
    records = load_prompts(f"{txt}+shapeworld:heldout", 5, seed=1)
    assert [r["prompt"] for r in records[:2]] == ["a red circle", "two cats"] and len(records) == 7
    assert records[2]["split"] == "heldout"
    assert "not found" in source_problem(f"{txt}+{tmp_path / 'missing.txt'}")


def test_sources_that_cannot_work(tmp_path):
    assert "unknown ShapeWorld split" in source_problem("shapeworld:validation")
    assert "not found" in source_problem(str(tmp_path / "missing.txt"))
    assert ".jsonl" in source_problem("prompts.csv")
    assert source_problem("shapeworld:heldout") is None
    empty = tmp_path / "e.txt"
    empty.write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="holds no prompts"):
        load_prompts(str(empty), 5)


def test_batches_depend_only_on_seed_and_step_and_cover_each_epoch():
    records = list(range(10))
    epoch = [x for step in range(5) for x in batch_for_step(records, step, 2, seed=3)]
    assert sorted(epoch) == records  # one pass over the data per epoch, no repeats
    assert batch_for_step(records, 7, 3, seed=3) == batch_for_step(records, 7, 3, seed=3)
    assert epoch != [x for step in range(5) for x in batch_for_step(records, step, 2, seed=4)]


def test_plot_draws_logged_curves_and_keeps_the_last_value_of_a_redone_step(tmp_path):
    import json

    from PIL import Image

    from trainer.plot import plot_run, read_series

    rows = [{"step": s, "reward/total_mean": s / 10} for s in range(1, 21)] + [{"step": 5, "reward/total_mean": 9.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    steps, values = read_series(tmp_path, "reward/total_mean")
    assert list(steps) == list(range(1, 21)) and values[4] == 9.0
    out = plot_run(tmp_path, ["reward/total_mean", "train/kl"], tmp_path / "curve.png")
    with Image.open(out) as image:
        assert image.size[1] > 2 * 200
    with pytest.raises(FileNotFoundError, match="run folder"):
        read_series(tmp_path / "nothing", "x")


def test_plot_fits_a_spike_label_and_draws_log_panels(tmp_path):
    """A KL spike's label (4.57e+04) is drawn whole (the sheet widens past the usual margin rather than cut
    it), and on a log panel the spike no longer flattens the rest of the curve onto the bottom edge."""
    import json

    import numpy as np
    from PIL import Image, ImageFont

    from trainer.plot import MARGIN, PANEL_W, plot_run

    rows = [{"step": s, "train/kl": 45712.0 if s == 7 else 0.001 * s} for s in range(1, 21)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = plot_run(tmp_path, ["train/kl"], tmp_path / "curve.png")
    label = ImageFont.load_default(size=13).getlength("4.57e+04")
    with Image.open(out) as image:
        pixels = np.asarray(image.convert("L"))
    assert image.size[0] >= MARGIN + PANEL_W + 4 + label
    right_of_panel = pixels[:, MARGIN + PANEL_W + 2:]
    assert (right_of_panel[:, -3:] == 255).all()  # nothing drawn at the very edge: the label ends inside

    def end_height(path):  # height of the curve's last steps (0.016..0.02) above the panel's bottom, 0..1
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB")).astype(int)
        panel = np.nonzero((np.abs(rgb[:, MARGIN] - 160) < 5).all(-1))[0]  # the panel frame's left edge
        column = rgb[panel.min():panel.max() + 1, MARGIN + PANEL_W - 6]
        drawn = np.nonzero((np.abs(column - [20, 60, 160]).sum(-1) < 30))[0] + panel.min()
        return (panel.max() - drawn.mean()) / (panel.max() - panel.min())

    assert end_height(out) < 0.02
    assert end_height(plot_run(tmp_path, ["train/kl"], tmp_path / "c.png", log_keys=["train/kl"])) > 0.1

    from trainer.cli import main  # the command draws train/kl on a log scale unless told otherwise
    assert main(["plot", str(tmp_path), "--keys", "train/kl", "-o", str(tmp_path / "log.png")]) == 0
    assert main(["plot", str(tmp_path), "--keys", "train/kl", "--log-keys", "-o", str(tmp_path / "lin.png")]) == 0
    assert end_height(tmp_path / "log.png") > 0.1 and end_height(tmp_path / "lin.png") < 0.02
