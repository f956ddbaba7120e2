"""`gotr1-train compare`: paired differences between models judged on the same scenes."""

import json

import pytest

from trainer import cli
from trainer.compare import CompareError, compare, compare_table, load_eval


def _eval(correct, renderback=None, layouts=None, prompts=None, samples=4):
    prompts = prompts or [f"scene {i}" for i in range(len(correct))]
    renderback = renderback if renderback is not None else correct
    layouts = layouts or [4] * len(correct)
    return {"prompts": "shapeworld:test", "samples": samples,
            "per_scene": [{"prompt": p, "correct": c, "renderback_correct": r, "distinct_layouts": n,
                           "distinct_images": n} for p, c, r, n in zip(prompts, correct, renderback, layouts)]}


def test_paired_difference_is_the_mean_of_per_scene_differences_and_a_constant_gain_is_not_a_tie():
    base = _eval([0.5, 0.25, 1.0, 0.0] * 5)
    better = _eval([0.75, 0.5, 1.0, 0.25] * 5)  # +0.25 on three scenes of four, never worse
    figures = compare({"sft": base, "rl": better})
    gain = figures["correct"]["minus_base"]["rl"]
    assert gain["difference"] == pytest.approx(100 * 0.75 * 0.25)
    assert 0 < gain["low"] <= gain["difference"] <= gain["high"] <= 25 and not gain["tie"]
    assert figures["correct"]["runs"]["sft"]["mean"] == pytest.approx(100 * 1.75 / 4)
    same = compare({"a": base, "b": base})["distinct_layouts"]["minus_base"]["b"]
    assert (same["difference"], same["low"], same["high"], same["tie"]) == (0.0, 0.0, 0.0, True)


def test_table_has_a_column_per_model_and_a_paired_column_per_later_model():
    text = compare_table({"SFT": _eval([0.5, 1.0]), "GRPO": _eval([1.0, 1.0]), "other": _eval([0.5, 0.5])})
    header = next(line for line in text.splitlines() if line.startswith("| figure"))
    assert header == "| figure | SFT | GRPO | other | GRPO − SFT (paired) | other − SFT (paired) |"
    exact = next(line for line in text.splitlines() if line.startswith("| exact correct"))
    assert "| 75.0 [" in exact and "+25.0 [" in exact and "-25.0 [" in exact


def test_evaluations_of_different_scenes_or_sample_counts_are_refused():
    with pytest.raises(CompareError, match="different scenes"):
        compare({"a": _eval([1, 0]), "b": _eval([1, 0], prompts=["x", "y"])})
    with pytest.raises(CompareError, match="same --samples"):
        compare({"a": _eval([1, 0]), "b": _eval([1, 0], samples=8)})


def test_cli_compares_files_and_says_what_to_rerun_for_a_file_without_per_scene_rows(tmp_path, capsys):
    a, b, bare = tmp_path / "sft.json", tmp_path / "grpo.json", tmp_path / "bare.json"
    a.write_text(json.dumps(_eval([0.0, 1.0])))
    b.write_text(json.dumps(_eval([1.0, 1.0])))
    bare.write_text(json.dumps({"correct": 0.5}))
    assert cli.main(["compare", str(a), str(b), "--output", str(tmp_path / "t.md")]) == 0
    printed = capsys.readouterr().out
    assert "| figure | sft | grpo | grpo − sft (paired) |" in printed
    assert (tmp_path / "t.md").read_text().strip() == printed.strip()
    assert cli.main(["compare", str(a), str(bare)]) == 1
    assert "no per-scene rows" in capsys.readouterr().err
    assert cli.main(["compare", str(a), str(b), "--names", "one"]) == 1
    with pytest.raises(CompareError, match="cannot read"):
        load_eval(tmp_path / "missing.json")
