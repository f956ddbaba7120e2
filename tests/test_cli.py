import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gotr1_core.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "gotr1_core" / "assets" / "example_chain.txt"
BROKEN = "<|obj_start|>cat<|obj_end|> <|box_start|>(500,500),(100,100)<|box_end|> and <|obj_end|>"


def test_parse_example_chain(capsys):
    assert main(["parse", str(EXAMPLE), "--strict"]) == 0
    out = capsys.readouterr().out
    assert "4 boxes, 4 objects" in out
    assert "white ceramic mug" in out and "(96,402),(338,721)" in out


def test_parse_json_from_stdin(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(BROKEN))
    assert main(["parse", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["layout"]["objects"] == [{"label": "cat", "box": [100, 100, 500, 500]}]
    assert [d["code"] for d in report["diagnostics"]] == ["inverted-corners", "stray-tag"]
    assert report["diagnostics"][1]["column"] == BROKEN.rindex("<|obj_end|>") + 1 == 77


def test_strict_rejection_exits_1(tmp_path, capsys):
    chain = tmp_path / "broken.txt"
    chain.write_text(BROKEN)
    assert main(["parse", str(chain), "--strict"]) == 1
    assert "inverted-corners" in capsys.readouterr().out
    assert main(["draw", str(chain), "--strict", "-o", str(tmp_path / "x.png")]) == 1
    assert not (tmp_path / "x.png").exists()


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["parse", str(tmp_path / "missing.txt")]) == 2
    assert "chain file not found" in capsys.readouterr().err
    assert main(["draw", str(EXAMPLE), "-o", str(tmp_path / "a.png"), "--on", str(tmp_path / "nope.png")]) == 2
    assert "cannot read background image" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["draw", str(EXAMPLE)])  # -o is required
    assert info.value.code == 2


def test_draw_writes_png_of_requested_size(tmp_path):
    out = tmp_path / "sub" / "layout.png"
    assert main(["draw", str(EXAMPLE), "-o", str(out), "--size", "320", "200"]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (200, 320, 3)
    assert (picture != 255).any() and (picture == 255).all(axis=-1).any()


def test_draw_on_image_uses_its_size(tmp_path):
    background = tmp_path / "bg.png"
    Image.new("RGB", (90, 60), (10, 20, 30)).save(background)
    out = tmp_path / "over.png"
    assert main(["draw", str(EXAMPLE), "-o", str(out), "--on", str(background)]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (60, 90, 3)
    assert (picture[0, 0] == (10, 20, 30)).all()  # the corner is outside every box


def test_console_script_is_installed():
    result = subprocess.run(["gotr1", "parse", str(EXAMPLE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "4 boxes" in result.stdout
    result = subprocess.run(["gotr1-train"], capture_output=True, text=True)
    assert result.returncode == 2 and "usage: gotr1-train" in result.stdout


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tiny_janus import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("cli") / "model", stop_bias=2.0)


def test_generate_writes_pngs_and_record(tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--model", str(tiny_model), "--prompt", "a red circle", "-n", "3", "--seed", "5",
                 "--cfg", "3", "-o", str(out)]) == 0
    record = json.loads((out / "generation.json").read_text())
    assert [(img["seed"], img["index"]) for img in record["images"]] == [(5, 0), (5, 1), (5, 2)]
    assert record["settings"]["cfg_scale"] == 3.0
    for img in record["images"]:
        assert np.asarray(Image.open(out / img["file"])).shape == (8, 8, 3)


def test_generate_from_chain_file(tiny_model, tmp_path):
    chain = tmp_path / "chain.txt"
    chain.write_text(EXAMPLE.read_text())
    out = tmp_path / "out"
    assert main(["generate", "--model", str(tiny_model), "--prompt", "breakfast", "--chain", str(chain),
                 "-o", str(out)]) == 0
    record = json.loads((out / "generation.json").read_text())
    assert record["images"][0]["chain"] == EXAMPLE.read_text().rstrip()  # the trailing newline is not part of it
    assert len(record["images"][0]["layout"]["objects"]) == 4


def test_generate_redraws_one_image_alone(tiny_model, tmp_path):
    """Image i of a batch, redrawn with --first-index i -n 1, is the same picture."""
    both, one = tmp_path / "both", tmp_path / "one"
    common = ["generate", "--model", str(tiny_model), "--prompt", "a red circle", "--seed", "3"]
    assert main(common + ["-n", "2", "-o", str(both)]) == 0
    assert main(common + ["-n", "1", "--first-index", "1", "-o", str(one)]) == 0
    second = json.loads((both / "generation.json").read_text())["images"][1]
    alone = json.loads((one / "generation.json").read_text())["images"][0]
    assert alone["index"] == 1 and alone["chain"] == second["chain"]
    assert np.array_equal(np.asarray(Image.open(both / second["file"])), np.asarray(Image.open(one / alone["file"])))


def test_generate_refuses_a_chain_with_nothing_to_draw(tiny_model, tmp_path, capsys):
    chain = tmp_path / "chain.txt"
    chain.write_text("<|obj_start|>red circle<|box_start|>(1,2")
    assert main(["generate", "--model", str(tiny_model), "--prompt", "a red circle", "--chain", str(chain),
                 "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "no object with a box" in err and "1:24: error: expected <|obj_end|>" in err


def test_generate_and_plan_load_quantized_weights(tiny_model, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", "--model", str(tiny_model), "--prompt", "a red circle", "-n", "2", "--quantize", "int8",
                 "-o", str(out)]) == 0
    record = json.loads((out / "generation.json").read_text())
    assert record["weights"] == "int8" and len(record["images"]) == 2
    capsys.readouterr()
    assert main(["plan", "--model", str(tiny_model), "--prompt", "a cat", "--quantize", "fp8", "--json",
                 "--max-tokens", "8"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 1
    with pytest.raises(SystemExit):
        main(["plan", "--model", str(tiny_model), "--prompt", "a cat", "--quantize", "int3"])
    assert "invalid choice: 'int3'" in capsys.readouterr().err
    assert main(["judge", "--prompt", "a red circle", "--chain", "-", "--images", "x.png", "--quantize", "int8"]) == 2
    assert "--quantize applies to a Qwen2.5-VL judge folder" in capsys.readouterr().err


def test_plan_prints_chains(tiny_model, capsys):
    assert main(["plan", "--model", str(tiny_model), "--prompt", "a cat", "-n", "2", "--json",
                 "--max-tokens", "8"]) == 0
    plans = json.loads(capsys.readouterr().out)
    assert [(p["seed"], p["index"]) for p in plans] == [(0, 0), (0, 1)]


def test_model_errors_exit_1(tmp_path, capsys):
    assert main(["plan", "--model", str(tmp_path / "none"), "--prompt", "x"]) == 1
    assert "model folder not found" in capsys.readouterr().err


def test_judge_command(tmp_path, capsys):
    from gotr1_core.shapeworld import generate_split

    scene = generate_split("test", 1, seed=4)[0]
    good, blank = tmp_path / "good.png", tmp_path / "blank.png"
    Image.fromarray(scene.render()).save(good)
    Image.new("RGB", (64, 64), (255, 255, 255)).save(blank)
    chain = tmp_path / "chain.txt"
    chain.write_text(scene.chain)
    assert main(["judge", "--prompt", scene.prompt, "--chain", str(chain), "--images", str(good), str(blank),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["total"] for r in rows] == [2.0, 0.0]
    assert main(["judge", "--prompt", scene.prompt, "--chain", str(chain), "--images", str(good)]) == 0
    assert "2.000" in capsys.readouterr().out
    assert main(["judge", "--prompt", "a pink cat", "--chain", str(chain), "--images", str(good)]) == 1
    assert "not a ShapeWorld prompt" in capsys.readouterr().err


def test_memory_prints_the_plan_and_the_chunk_that_fits(capsys):
    from gotr1_core.memory import plan_memory, published_config

    assert main(["memory", "GoT-R1-7B", "--images", "16", "--budget", "24GB"]) == 0
    out = capsys.readouterr().out
    assert "key/value cache" in out and "weights" in out and "fits: 8 image(s) per chunk" in out
    chunk8 = plan_memory(published_config("GoT-R1-7B"), 16, chunk=8)
    assert chunk8.peak <= 24 * 1024 ** 3 < plan_memory(published_config("GoT-R1-7B"), 16, chunk=9).peak
    assert main(["memory", "--images", "2", "--device", "cpu"]) == 0  # the built-in model by default
    assert "builtin: 2 image(s)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [(["--quantize", "int3"], "unknown weights mode 'int3'"),
                                           (["--budget", "lots"], "12GB or 800MB"),
                                           (["--budget", "2GB", "GoT-R1-7B"], "for one image")])
def test_memory_refuses_bad_modes_and_impossible_budgets(capsys, args, message):
    assert main(["memory", *args]) in (1, 2)
    assert message in capsys.readouterr().err


def test_generate_help_gives_the_built_in_models_own_defaults(capsys):
    """The help's defaults are read from the built-in model's gotr1.json, not remembered upstream values."""
    import json

    from gotr1_core.cli import main
    from gotr1_core.demo import BUILTIN_MODEL

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    spec = json.loads((BUILTIN_MODEL / "gotr1.json").read_text())
    for name in ("cfg_scale", "text_temperature", "image_temperature", "max_reason_tokens"):
        assert f"{spec[name]:g} for the built-in model" in text, name
    assert "(model default" not in text


def test_draw_on_an_image_at_a_given_size_scales_the_image_to_it(tmp_path):
    background = tmp_path / "bg.png"
    Image.new("RGB", (64, 64), (10, 20, 30)).save(background)
    out = tmp_path / "over.png"
    assert main(["draw", str(EXAMPLE), "-o", str(out), "--size", "640", "480", "--on", str(background)]) == 0
    picture = np.asarray(Image.open(out))
    assert picture.shape == (480, 640, 3) and (picture[0, 0] == (10, 20, 30)).all()


def test_convert_says_what_is_wrong_with_a_folder_that_is_not_an_original_checkpoint(tmp_path, tiny_model, capsys):
    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    assert f"folder not found: {tmp_path / 'missing'}" in capsys.readouterr().err
    assert main(["convert", str(tiny_model), str(tmp_path / "out")]) == 1  # already HF format
    err = capsys.readouterr().err
    assert "not an original-format checkpoint" in err and f"--model {tiny_model}" in err and "Traceback" not in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"model_type": "llama"}')
    assert main(["convert", str(tmp_path / "other"), str(tmp_path / "out")]) == 1
    assert "language_config" in capsys.readouterr().err


def test_a_missing_model_folder_names_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--model", "mymodel", "--prompt", "a red circle"]) == 1
    assert f"looked for {tmp_path / 'mymodel'}" in capsys.readouterr().err


def test_chain_files_that_are_empty_or_not_text_are_refused_for_what_they_are(tiny_model, tmp_path, capsys):
    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.txt"
    empty.write_text("  \n")
    binary.write_bytes(b"\x80\x81\xfe<|obj_start|>")
    base = ["generate", "--model", str(tiny_model), "--prompt", "a red circle", "-o", str(tmp_path / "out")]
    assert main([*base, "--chain", str(empty)]) == 2
    assert "is empty: write a chain in it, or leave --chain out" in capsys.readouterr().err
    assert main([*base, "--chain", str(binary)]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text (byte 0x80 at position 0)" in err and "codec" not in err


def test_an_error_about_a_long_prompt_quotes_only_an_excerpt(capsys):
    prompt = "a red circle " * 400
    assert main(["plan", "--prompt", prompt]) == 1
    err = capsys.readouterr().err
    assert "not a ShapeWorld prompt" in err and f"({len(prompt):,} characters)" in err and len(err) < 1200


def test_plan_json_into_a_reader_that_stops_early_ends_quietly(tiny_model):
    """`gotr1 plan --json | head -1`: the reader closes the pipe; no BrokenPipeError traceback."""
    plan = subprocess.Popen([sys.executable, "-m", "gotr1_core.cli", "plan", "--model", str(tiny_model), "--prompt",
                             "a red circle", "-n", "64", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    plan.stdout.close()  # what head does once it has its line; here before the first write, so no timing matters
    err = plan.stderr.read().decode()
    assert plan.wait(timeout=300) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err


def test_check_workflow_tells_typos_core_nodes_and_other_packs_nodes_apart(tmp_path, capsys):
    graph = {"1": {"class_type": "GoTR1ParseChian", "inputs": {}},                # a typo of the pack's node
             "2": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},       # core, not checked
             "3": {"class_type": "ImpactWildcardProcessor", "inputs": {}}}         # another pack's
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph))
    assert main(["check-workflow", str(path)]) == 1
    out = capsys.readouterr().out
    assert "did you mean 'GoTR1ParseChain'" in out and "1 problem(s)" in out
    assert "node 2 (LoadImage): a ComfyUI core node; not checked" in out
    assert "node 3 (ImpactWildcardProcessor): neither a GoT-R1 node nor a ComfyUI core node" in out
    del graph["1"]
    path.write_text(json.dumps(graph))
    assert main(["check-workflow", str(path)]) == 0
    assert f"{path}: OK for the nodes it knows; 2 not checked" in capsys.readouterr().out


def _run_in_fresh_python(module: str, argvs: list[list[str]], watched: tuple[str, ...]) -> str:
    """What ``module.main`` prints for each of ``argvs`` in a new interpreter, then which of ``watched`` got
    imported (the last line)."""
    script = (f"import sys\nfrom {module} import main\nfor argv in {argvs!r}:\n"
              "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
              f"print(sorted(m for m in {watched!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_help_and_usage_errors_answer_without_loading_torch():
    """`gotr1 --help` took seconds importing torch and transformers for text; the help of every command (with
    the built-in model's defaults read from its gotr1.json) and a bad flag need none of them."""
    out = _run_in_fresh_python("gotr1_core.cli", [["--help"], ["generate", "--help"], ["plan", "--help"],
                                                  ["demo", "--bad-flag"]], ("torch", "transformers", "numpy", "PIL"))
    assert out.strip().splitlines()[-1] == "[]"
    assert "0.7 for the built-in model" in out  # the defaults are still the model's own


def test_training_command_help_answers_without_loading_torch_and_its_choices_are_the_real_ones():
    """Each `gotr1-train` command imports its module (and torch) when it runs; the parsers' choices are spelled out
    in trainer/cli.py for that, so they are checked here against the modules that define them."""
    out = _run_in_fresh_python("trainer.cli", [["--help"], ["eval", "--help"], ["grpo", "--help"],
                                               ["bench", "--help"], ["sft", "--x"]], ("torch", "transformers"))
    assert out.strip().splitlines()[-1] == "[]"
    assert "{test,heldout,zeroshot}" in out and "model,prose,free,edit" in out

    from gotr1_core.benchmarks.scorers import SCORERS
    from gotr1_core.model.quantize import QUANTIZED_MODES
    from gotr1_core.shapeworld.scenes import EVALUATION_SPLITS
    from trainer import cli
    from trainer.bench import command
    from trainer.evaluate import PLAN_KINDS

    assert cli.EVALUATION_SPLITS == EVALUATION_SPLITS and cli.PLAN_KINDS == PLAN_KINDS
    assert command.SCORERS is SCORERS and command.QUANTIZED_MODES == QUANTIZED_MODES
