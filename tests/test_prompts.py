import numpy as np
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

    from trainer.plot import figure_for, plot_run, read_series, smooth

    rows = [{"step": s, "reward/total_mean": s / 10} for s in range(1, 21)] + [{"step": 5, "reward/total_mean": 9.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    steps, values = read_series(tmp_path, "reward/total_mean")
    assert list(steps) == list(range(1, 21)) and values[4] == 9.0
    figure = figure_for(tmp_path, ["reward/total_mean", "train/kl"], window=5)
    top, bottom = figure.axes
    raw, smoothed = top.get_lines()
    assert list(raw.get_xdata()) == list(steps) and list(raw.get_ydata()) == list(values)
    assert list(smoothed.get_ydata()) == pytest.approx(list(smooth(values, 5)))
    assert smoothed.get_linewidth() > raw.get_linewidth()  # the trend over the faint raw values
    assert all(line.get_visible() for line in top.get_ygridlines()) and len(top.get_yticks()) > 2  # not min/max
    assert "no values logged" in [t.get_text() for t in bottom.texts] and not bottom.get_lines()
    out = plot_run(tmp_path, ["reward/total_mean", "train/kl"], tmp_path / "curve.png")
    with Image.open(out) as image:
        assert image.size[1] > image.size[0] * 0.5
    with pytest.raises(FileNotFoundError, match="run folder"):
        read_series(tmp_path / "nothing", "x")


def test_moving_average_by_hand():
    from trainer.plot import smooth

    assert smooth(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert smooth(np.array([1.0, 2.0]), 1).tolist() == [1.0, 2.0]


def test_log_panels_keep_a_spike_from_flattening_the_curve(tmp_path, monkeypatch):
    """A KL spike on a log panel: the axis is logarithmic, values at or below 0 are drawn at the smallest
    positive one, and the command draws train/kl that way unless told otherwise."""
    import json

    from trainer.cli import main
    from trainer.plot import figure_for

    rows = [{"step": s, "train/kl": 45712.0 if s == 7 else (0.0 if s == 3 else 0.001 * s)} for s in range(1, 21)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert figure_for(tmp_path, ["train/kl"]).axes[0].get_yscale() == "linear"
    ax = figure_for(tmp_path, ["train/kl"], log_keys=["train/kl"]).axes[0]
    assert ax.get_yscale() == "log" and ax.get_title(loc="left") == "train/kl (log scale)"
    assert min(ax.get_lines()[0].get_ydata()) == pytest.approx(0.001)
    assert main(["plot", str(tmp_path), "--keys", "train/kl", "-o", str(tmp_path / "log.png")]) == 0
    assert (tmp_path / "log.png").stat().st_size > 0
    import trainer.plot

    asked = []
    monkeypatch.setattr(trainer.plot, "plot_run", lambda *args, **kwargs: asked.append(kwargs) or tmp_path / "x.png")
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "default.png")]) == 0
    assert main(["plot", str(tmp_path), "--keys", "train/kl", "--log-keys", "-o", str(tmp_path / "lin.png")]) == 0
    assert asked[0]["log_keys"] == ["train/kl"] and asked[1]["log_keys"] == []


