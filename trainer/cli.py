"""``gotr1-train``: the training command line.

Subcommands are registered in :data:`COMMANDS` as they land; each takes a
validated config so that no work starts on a bad run description.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from gotr1_core.model.spec import IMAGE_DECODING, QUANTIZED_MODES

from .bench import command as bench_command
from .config import ConfigError, load_config

# The modules behind the commands import torch; each is imported when its command runs, so that `gotr1-train --help`
# and a mistyped command answer at once. The choices below are spelled out for the same reason (tests/test_cli.py
# checks them against gotr1_core.shapeworld.scenes.EVALUATION_SPLITS and trainer.evaluate.PLAN_KINDS).
EVALUATION_SPLITS = ("test", "heldout", "zeroshot")
PLAN_KINDS = ("model", "prose", "free", "edit")


def _module(name: str):
    return importlib.import_module(f"{__package__}.{name}")


def training_command(module: str, config_class: str, train: str, example: str, dry_run: str | None = None):
    """CLI glue shared by every training command: ``--config FILE [--resume] [key=value ...]``; with a
    ``dry_run(config, gpus, gpu_memory) -> str`` (``"module.function"``), also ``--dry-run [--gpus N]
    [--gpu-memory SIZE]``. Names, not objects: the module is imported when the command runs."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", required=True, help=f"YAML file (see trainer/configs/{example})")
        parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
        if dry_run is not None:
            parser.add_argument("--dry-run", action="store_true",
                                help="validate the config, build the models as skeletons from their config.json "
                                     "and print the memory plan per GPU; train nothing")
            parser.add_argument("--gpus", type=int, default=1, help="GPUs the plan is for (default 1)")
            parser.add_argument("--gpu-memory", help="memory of one GPU, e.g. 80GB: says whether the plan fits")
        parser.add_argument("overrides", nargs="*", help="key=value settings that replace the file's")

    def run(args) -> int:
        code = _module(module)
        config = load_config(getattr(code, config_class), args.config, args.overrides)
        if getattr(args, "dry_run", False):
            if args.gpus < 1:
                raise ConfigError("--gpus", [f"--gpus must be >= 1, got {args.gpus}"])
            planner, function = dry_run.split(".")
            print(getattr(_module(planner), function)(config, args.gpus, args.gpu_memory))
            return 0
        print(json.dumps(getattr(code, train)(config, resume=args.resume), indent=2))
        return 0

    return add_arguments, run


def _add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model folder (or 'builtin')")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--split", choices=EVALUATION_SPLITS,
                        help="a ShapeWorld evaluation split: its fixed list of distinct scenes (shapeworld:SPLIT)")
    source.add_argument("--prompts", help="shapeworld:<split>, a .txt or a .jsonl file (default shapeworld:heldout)")
    parser.add_argument("--count", type=int, default=300, help="prompts (scenes) to judge (default 300)")
    parser.add_argument("--samples", type=int, default=8,
                        help="images per prompt (or per plan), each judged; two or more also measure diversity "
                             "(default 8)")
    parser.add_argument("--judge", default="shapeworld", help="'shapeworld' or a local Qwen2.5-VL folder")
    parser.add_argument("--sample-seed", type=int, dest="sample_seed",
                        help="seed of the images and the model's own plans (never changes which scenes)")
    parser.add_argument("--plan-seed", type=int, dest="plan_seed", help="seed of the plans handed over with --plans")
    parser.add_argument("--seed", type=int, help="both seeds at once")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", help="also write the metrics JSON here")
    parser.add_argument("--disagreements", help="write a PNG of images on which the two judges disagree")
    parser.add_argument("--cfg", type=float, help="guidance scale of the image stage (default: the model's own)")
    parser.add_argument("--cfg-plausibility", type=float, dest="cfg_plausibility",
                        help="guide only among image tokens at least this likely relative to the conditional "
                             "model's best (0 = plain guidance; default: the model's own)")
    parser.add_argument("--plans", nargs="?", const=",".join(PLAN_KINDS), default=None,
                        help="plan following instead: draw from given plans of these kinds (comma-separated; "
                             f"default all: {','.join(PLAN_KINDS)}), judged exactly")
    parser.add_argument("--quantize", choices=QUANTIZED_MODES, metavar="MODE",
                        help="evaluate the model with its decoder layers stored quantized: fp8, int8 or int4")
    parser.add_argument("--image-decoding", choices=IMAGE_DECODING, dest="image_decoding",
                        help="how image tokens are drawn: sequential (default) or jacobi (speculative Jacobi "
                             "decoding: the same distribution in fewer passes)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list) and all(isinstance(v, float) for v in value):
        return "[" + ", ".join(f"{v:.3f}" for v in value) + "]"
    return str(value)


def _run_eval(args) -> int:
    if args.seed is not None:
        args.sample_seed = args.sample_seed if args.sample_seed is not None else args.seed
        args.plan_seed = args.plan_seed if args.plan_seed is not None else args.seed
    if args.split:
        args.prompts = f"shapeworld:{args.split}"
    fields = ("model", "prompts", "count", "samples", "judge", "sample_seed", "plan_seed", "device", "output",
              "disagreements", "cfg", "cfg_plausibility", "quantize", "image_decoding")
    overrides = [f"{k}={json.dumps(getattr(args, k))}" for k in fields if getattr(args, k) is not None]
    if args.plans:
        overrides.append(f"plans={json.dumps([k.strip() for k in args.plans.split(',') if k.strip()])}")
    evaluate = _module("evaluate")
    metrics = evaluate.run_eval(load_config(evaluate.EvalConfig, None, overrides))
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        width = max(len(k) for k in metrics)
        for key, value in metrics.items():
            if key != "per_scene":  # one row per prompt: in the JSON (--output, --json) only
                print(f"{key:<{width}}  {_value(value)}")
    return 0


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a gotr1-train grpo output folder")
    parser.add_argument("destination", help="where to write the model folder")
    parser.add_argument("--step", type=int, help="export the checkpoint of this step instead of the newest")


def _run_export(args) -> int:
    try:
        out = _module("grpo").export_run(args.run, args.destination, step=args.step)
    except FileNotFoundError as exc:
        print(f"gotr1-train export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


def _add_plot_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="a gotr1-train run folder (holds metrics.jsonl)")
    parser.add_argument("-o", "--output", default="curves.png")
    parser.add_argument("--keys", nargs="+", default=["reward/total_mean", "reward/correct", "train/kl",
                                                      "policy/entropy_chain", "policy/entropy_image",
                                                      "policy/distinct_plans"],
                        help="metrics to draw, one panel each")
    parser.add_argument("--log-keys", nargs="*", default=["train/kl"],
                        help="of those, the ones drawn on a log scale (a KL spike would flatten a linear panel); "
                             "--log-keys with no names draws every panel linear")
    parser.add_argument("--title")


def _run_plot(args) -> int:
    try:
        out = _module("plot").plot_run(args.run, args.keys, args.output, title=args.title, log_keys=args.log_keys)
    except FileNotFoundError as exc:
        print(f"gotr1-train plot: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    return 0


def _add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("evals", nargs="+", metavar="EVAL.json",
                        help="gotr1-train eval --output files of the same scenes; the first is the base the others "
                             "are compared with")
    parser.add_argument("--names", help="comma-separated column names (default: the file names)")
    parser.add_argument("--output", help="also write the table (markdown) here")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")


def _run_compare(args) -> int:
    names = [n.strip() for n in args.names.split(",")] if args.names else [Path(p).stem for p in args.evals]
    if len(names) != len(args.evals) or len(set(names)) != len(names):
        print(f"gotr1-train compare: give {len(args.evals)} distinct --names, one per file", file=sys.stderr)
        return 1
    compare = _module("compare")
    try:
        runs = {name: compare.load_eval(path) for name, path in zip(names, args.evals)}
        text = json.dumps(compare.compare(runs), indent=2) if args.json else compare.compare_table(runs)
    except compare.CompareError as exc:
        print(f"gotr1-train compare: {exc}", file=sys.stderr)
        return 1
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


COMMANDS: dict = {
    "vq": ("train the image tokenizer (VQ) on ShapeWorld pictures",
           *training_command("vq", "VQConfig", "train_vq", "shapeworld_vq.yaml")),
    "sft": ("teacher-forced training on (prompt, chain, image tokens)",
            *training_command("sft", "SFTConfig", "train_sft", "shapeworld_sft.yaml")),
    "grpo": ("GRPO reinforcement learning on reasoning + image tokens against a judge",
             *training_command("grpo", "GRPOConfig", "train_grpo", "shapeworld_grpo.yaml", "plan.dry_run")),
    "eval": ("judge a model on a ShapeWorld split or a prompt file", _add_eval_arguments, _run_eval),
    "compare": ("compare models' evaluations of the same scenes: paired differences with intervals",
                _add_compare_arguments, _run_compare),
    "export": ("write a GRPO run's newest checkpoint as a model folder (LoRA merged)",
               _add_export_arguments, _run_export),
    "bench": ("benchmark a model: images in the official layout, scored, as a table, JSON and chart",
              bench_command.add_arguments, bench_command.run),
    "plot": ("draw a run's metrics (reward curve, KL, ...) as a PNG", _add_plot_arguments, _run_plot),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gotr1-train", description="Train and export GoT-R1 checkpoints.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command][2](args)
    except ConfigError as exc:
        print(f"gotr1-train {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
