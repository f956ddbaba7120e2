"""The scripts behind figures in docs/ run end to end at a tiny size (the figures themselves come from the
commands the docs quote)."""

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
from tiny_janus import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import would: worker processes find its functions by name
    spec.loader.exec_module(module)
    return module


def test_grpo_ablation_trains_each_variant_evaluates_all_rows_alike_and_continues_where_it_stopped(tmp_path):
    ablation = _script("grpo_ablation")
    model = make_tiny_model(tmp_path / "model", stop_bias=3.0)
    args = ["--out", str(tmp_path / "out"), "--model", str(model), "--steps", "1", "--count", "2", "--samples", "2",
            "--variants", "none,dynamic_sampling", "--jobs", "2", "prompts_per_step=2", "group_size=2", "micro_batch=4",
            "rollout_batch=8", "prompt_count=40", "max_reason_tokens=24"]
    table = ablation.main(args)
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [r.split("`")[1] for r in rows] == ["start", "none", "dynamic_sampling"]
    figures = json.loads((tmp_path / "out" / "ablation.json").read_text())
    assert {f["eval"]["count"] for f in figures.values()} == {2}  # every row judged on the same scenes
    assert figures["dynamic_sampling"]["last_step"]["sampling/groups_drawn"] >= 2
    config = (tmp_path / "out" / "dynamic_sampling" / "run" / "config.yaml").read_text()
    assert "dynamic_sampling_rounds: 3" in config and "group_size: 2" in config
    choice = json.loads((tmp_path / "out" / "choice.json").read_text())
    assert choice["variant"] in ("none", "dynamic_sampling")
    assert (tmp_path / "out" / "choice.args").read_text().split() == choice["args"]
    weights = tmp_path / "out" / "none" / "run" / "model" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    assert ablation.main(args) == table  # a rerun finds every variant done and redraws the same table
    assert weights.stat().st_mtime_ns == written
    # killed after its last checkpoint, before exporting: the rerun resumes there instead of training again
    shutil.rmtree(weights.parent)
    (tmp_path / "out" / "none" / "eval.json").unlink()
    ablation.main(args)
    log = (tmp_path / "out" / "none" / "run" / "metrics.jsonl").read_text().splitlines()
    assert sum("policy/entropy_chain" in json.loads(line) for line in log) == 1 and weights.exists()


def test_paper_recipe_plan_prints_each_setup_from_skeletons():
    text = _script("paper_recipe_plan").main()
    assert text.count("dry run: nothing was trained or written") == 3
    assert "8 GPUs, LoRA r=32" in text and "8 GPUs, ZeRO-2" in text and "1 GPU, LoRA r=32" in text
    assert text.count("quality model (HPS)") == 3 and "/tmp" not in text


def test_decoding_quality_compares_both_decodings_on_the_same_scenes_and_reuses_its_runs(tmp_path):
    script = _script("decoding_quality")
    model = make_tiny_model(tmp_path / "model", stop_bias=3.0)
    args = ["--model", str(model), "--count", "3", "--samples", "2", "--out", str(tmp_path / "out"), "--device", "cpu",
            "--jobs", "2"]
    table = script.main(args)
    runs = {mode: json.loads((tmp_path / "out" / f"{mode}.json").read_text()) for mode in script.MODES}
    assert [r["prompt"] for r in runs["sequential"]["per_scene"]] == [r["prompt"] for r in runs["jacobi"]["per_scene"]]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "figure" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| render-back correct (%)", "| exact correct (%)",
                                                 "| distinct images", "| distinct layouts"]
    # both runs plan the same chains (the text stage is the same), so the layouts agree scene by scene
    assert rows[3].endswith("| +0.00 [+0.00, +0.00] tie |")
    written = (tmp_path / "out" / "jacobi.json").stat().st_mtime_ns
    assert script.main(args) == table and (tmp_path / "out" / "jacobi.json").stat().st_mtime_ns == written


def _figures(renderback, layouts, pairwise, world=0.8):
    return {"renderback_correct": renderback, "diversity/distinct_layouts": layouts,
            "diversity/pairwise_distance": pairwise, "diversity/world/pairwise_distance": world}


def test_ablation_choice_is_the_most_accurate_variant_keeping_the_diversity_floor_else_the_most_varied():
    choose = _script("grpo_ablation").choose
    rows = [("start", "", _figures(0.7, 8.0, 0.80), {}),            # not a variant: never chosen
            ("none", "", _figures(0.9, 3.0, 0.20), {}),             # most accurate, collapsed
            ("strong_kl", "", _figures(0.8, 6.5, 0.60), {}),        # keeps both floors
            ("hot_rollouts", "", _figures(0.7, 7.5, 0.70), {}),     # keeps them too, less accurate
            ("entropy_bonus", "", _figures(0.85, 7.0, 0.50), {})]   # layouts kept, pairwise under 70 % of 0.8
    choice = choose(rows, 6.0, 0.7)
    assert choice["variant"] == "strong_kl" and choice["args"] == ["beta=0.1"] and "2 variants" in choice["why"]
    collapsed = [rows[0], rows[1], ("hot_rollouts", "", _figures(0.5, 4.0, 0.3), {})]
    choice = choose(collapsed, 6.0, 0.7)
    assert choice["variant"] == "hot_rollouts" and "no variant keeps" in choice["why"]
    assert choice["args"] == ["text_temperature=1.0", "image_temperature=1.0"]


def test_retrain_script_parses_and_names_only_configs_and_variants_that_exist():
    """The full retraining takes hours, so the suite checks what can break without running it: bash syntax,
    every config file it names, every ablation variant, every gotr1-train option it passes."""
    import re
    import shlex
    import subprocess

    from trainer.cli import build_parser

    script = ROOT / "docs" / "scripts" / "retrain_builtin.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    runs = re.findall(r'"grpo (\w+)"', text)  # the GRPO configs the script trains, by name
    paths = {f"trainer/configs/shapeworld_{run}.yaml" for run in runs}
    paths |= set(re.findall(r"trainer/configs/\w+\.yaml", text))
    assert len(runs) == 2 and all((ROOT / p).is_file() for p in paths), paths
    variants = re.search(r"--variants ([\w,]+)", text).group(1).split(",")
    assert set(variants) <= set(_script("grpo_ablation").VARIANTS)
    parser = build_parser()
    commands = [" ".join(c.split()) for c in re.findall(r"gotr1-train [^\n]*", text.replace("\\\n", " "))]
    assert {c.split()[1] for c in commands} == {"vq", "sft", "grpo", "plot", "eval", "compare"}
    for command in commands:
        command = re.sub(r'--split "\$\w+"', "--split test", command)  # a shell variable stands for a split
        command = re.sub(r"\$\{?[\w\[\]@/]+\}?", "X", command)  # or for a name
        parser.parse_args(shlex.split(command, comments=True)[1:])  # exits (fails the test) on an unknown option


def test_model_report_reads_the_retrainings_evaluations_and_says_which_targets_are_missed_by_how_much(tmp_path):
    from trainer.evaluate import PLAN_KINDS, EvalConfig, run_eval

    report = _script("model_report")
    model = make_tiny_model(tmp_path / "model", stop_bias=3.0)
    evals = tmp_path / "eval"
    evals.mkdir()
    one = run_eval(EvalConfig(model=str(model), prompts="shapeworld:test", count=3, samples=2, device="cpu"))
    plans = run_eval(EvalConfig(model=str(model), prompts="shapeworld:test", count=2, samples=1, device="cpu",
                                plans=list(PLAN_KINDS)))
    for split in report.SPLITS:
        for name in report.MODELS:
            figures = json.loads(json.dumps(one))
            if name == "grpo":  # hand-set figures for the targets
                figures["renderback_correct"] = {"test": 0.96, "heldout": 0.5, "zeroshot": 0.7}[split]
                figures["diversity/distinct_layouts"] = 7.0
                figures["diversity/pairwise_distance"] = 0.5 * figures["diversity/world/pairwise_distance"]
            if split == "zeroshot":  # GRPO one scene of three 0.5 worse than SFT, the rest equal
                for row in figures["per_scene"]:
                    row["renderback_correct"] = 1.0
                if name == "grpo":
                    figures["per_scene"][0]["renderback_correct"] = 0.5
            (evals / f"{name}-{split}.json").write_text(json.dumps(figures))
        plan_figures = {**plans, "plans/free/renderback_correct": 0.95 if split == "test" else 0.4}
        for kind in PLAN_KINDS:
            if kind != "free":
                plan_figures[f"plans/{kind}/renderback_correct"] = 0.99
        (evals / f"grpo-plans-{split}.json").write_text(json.dumps(plan_figures))
    text = report.main(["--evals", str(evals), "--output", str(tmp_path / "report.md")])
    assert (tmp_path / "report.md").read_text() == text
    lines = text.splitlines()
    assert "* met: `test` fully correct by the render-back judge 96.0% (target 95%, +1.0 points)" in lines
    assert "* MISSED: `heldout` fully correct by the render-back judge 50.0% (target 92%, -42.0 points)" in lines
    zeroshot = next(line for line in lines if line.startswith("* ") and "GRPO − SFT" in line)
    assert zeroshot.startswith("* MISSED: `zeroshot` GRPO − SFT -16.7 points [-50.0, +0.0]")
    assert "* met: `test` distinct layouts 7.00 in 8 (floor 6)" in lines
    assert sum("MISSED" in line and "pairwise layout distance" in line and "= 50% of" in line for line in lines) == 3
    assert "* met: `test` plan following, worst kind `free` 95.0% by the render-back judge (target 90% each)" in lines
    assert sum(line.startswith("| ") for line in lines) == (1 + 3) + 3 * (1 + 4) + (1 + 4)  # headers and rows
    missing = tmp_path / "empty"
    missing.mkdir()
    with pytest.raises(FileNotFoundError, match="retrain_builtin.sh"):
        report.main(["--evals", str(missing)])
