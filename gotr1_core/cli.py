"""``gotr1``: the GoT-R1 command line.

Exit codes: 0 success, 1 the input was rejected (e.g. ``--strict`` found
errors), 2 usage errors (bad flags, unreadable files).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .model.spec import DRAFT_TOKENS, IMAGE_DECODING, QUANTIZED_MODES, GenerationSpec, default_values
from .reasoning import ParsedChain, parse_chain

# Everything heavier (torch, PIL, numpy, the models) is imported by the command that needs it, so `gotr1 --help`
# and a mistyped flag answer at once.

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line or its files; exits with code 2."""


def _read_text(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"chain file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"chain file {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at position "
                         f"{exc.start}): a chain is text; save it as UTF-8") from None
    except OSError as exc:
        raise UsageError(f"cannot read chain file {path}: {exc}") from None


def _report(parsed: ParsedChain, layout) -> str:
    lines = [f"{len(layout)} boxes, {len(parsed.objects)} objects"]
    for obj in layout.objects:
        b = obj.box
        lines.append(f"  {obj.label:<30} ({b.x1},{b.y1}),({b.x2},{b.y2})")
    lines += [f"  {label:<30} (no box)" for label in layout.unplaced]
    if parsed.diagnostics:
        lines.append(f"{len(parsed.diagnostics)} diagnostics:")
        lines += [f"  {d}" for d in parsed.diagnostics]
    return "\n".join(lines)


def _parse_input(args):
    """``(parsed chain, Layout, exit status)`` of the chain file."""
    from .layout import Layout

    parsed = parse_chain(_read_text(args.file))
    status = EXIT_REJECTED if args.strict and not parsed.ok else EXIT_OK
    return parsed, Layout.from_chain(parsed), status


def cmd_parse(args) -> int:
    parsed, layout, status = _parse_input(args)
    if args.json:
        print(json.dumps({
            "ok": parsed.ok,
            "layout": layout.to_dict(),
            "text": parsed.text,
            "ends_with_image_start": parsed.ends_with_image_start,
            "diagnostics": [
                {"code": d.code, "severity": d.severity, "message": d.message,
                 "line": d.line, "column": d.column, "offset": d.offset}
                for d in parsed.diagnostics
            ],
        }, indent=2, ensure_ascii=False))
    else:
        print(_report(parsed, layout))
    return status


def cmd_draw(args) -> int:
    import numpy as np
    from PIL import Image

    from .images import to_pil
    from .layout import render_layout

    parsed, layout, status = _parse_input(args)
    if status != EXIT_OK:
        print(_report(parsed, layout), file=sys.stderr)
        return status
    if args.size is not None and min(args.size) <= 0:
        raise UsageError(f"--size needs positive numbers, got {args.size[0]} {args.size[1]}")
    background = None
    if args.on:
        try:
            image = Image.open(args.on).convert("RGB")
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read background image {args.on}: {exc}") from None
        if args.size is not None and tuple(args.size) != image.size:  # asked for a size: the picture is scaled to it
            image = image.resize(tuple(args.size), Image.Resampling.LANCZOS)
        background = np.asarray(image)
    width, height = args.size or (background.shape[1::-1] if background is not None else (512, 512))
    picture = render_layout(layout, width, height, background=background)
    out = Path(args.output)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True)
    to_pil(picture).save(out)
    print(f"wrote {out} ({picture.shape[1]}x{picture.shape[0]}, {len(layout)} boxes, "
          f"{len(parsed.diagnostics)} diagnostics)")
    return EXIT_OK


def _load(args):
    from .demo import builtin_model_path
    from .model.loading import load_model

    if args.model and args.model != "builtin":
        return load_model(args.model, device=args.device, dtype=args.dtype, quantize=args.quantize)
    try:
        return load_model(builtin_model_path(), device=args.device, dtype=args.dtype, quantize=args.quantize)
    except FileNotFoundError as exc:
        raise UsageError(str(exc)) from None


def cmd_memory(args) -> int:
    from .memory import PUBLISHED, WEIGHT_MODES, human, largest_chunk, parse_bytes, plan_memory, published_config
    from .model.loading import _tensor_source, read_config_json

    if args.quantize not in WEIGHT_MODES:
        raise UsageError(f"--quantize: unknown weights mode {args.quantize!r}; use one of {', '.join(WEIGHT_MODES)}")
    name = args.model or "builtin"
    reason = args.reason_tokens
    if name in PUBLISHED:
        config, reason = published_config(name), reason or GenerationSpec().max_reason_tokens
    else:
        from .demo import builtin_model_path

        folder = builtin_model_path() if name == "builtin" else Path(name).expanduser()
        if not folder.is_dir():
            raise UsageError(f"{name!r} is neither a model folder, 'builtin', nor one of {', '.join(PUBLISHED)}")
        config = _tensor_source(folder, read_config_json(folder))[0]  # reads headers, not weights
        reason = reason or GenerationSpec.read(folder).max_reason_tokens
    options = dict(weights=args.quantize, device=args.device, cfg=not args.no_cfg, prompt_tokens=args.prompt_tokens,
                   reason_tokens=reason, chain_given=args.chain_given, model_name=name)
    budget = parse_bytes(args.budget) if args.budget else None
    chunk = largest_chunk(config, budget, args.images, **options) if budget else None
    plan = plan_memory(config, args.images, chunk=chunk, **options)
    print(plan.table(budget))
    for stage, peak in plan.stage_peaks.items():
        print(f"    {stage + ' stage':<30}{human(peak):>10}")
    if budget:
        print(f"fits: {chunk} image(s) per chunk ({-(-args.images // chunk)} chunk(s) for {args.images})")
    return EXIT_OK


def cmd_demo(args) -> int:
    from .demo import DEFAULT_PROMPT, run_demo

    asked = args.prompt or DEFAULT_PROMPT
    report = run_demo(asked, args.num, args.output, seed=args.seed, got=_load(args),
                      image_decoding=args.image_decoding, draft_tokens=args.draft_tokens)
    print(f"prompt: {report['prompt']}" + (f"  (read from {asked!r})" if report["prompt"] != asked else ""))
    for i, chain in enumerate(report["chains"]):
        row = report["rewards"][i] if report["rewards"] else None
        score = f"  total {row['total']:.2f}{'  correct' if row.get('correct') else ''}" if row else ""
        print(f"[{i}]{score}  {chain}")
    print(f"wrote {report['sheet']}  (load {report['load_seconds']:.1f} s, generate "
          f"{report['generate_seconds']:.1f} s, total {report['total_seconds']:.1f} s)")
    return EXIT_OK


def _generation_config(args, **overrides):
    from .generation import GenerationConfig

    fields = dict(num_samples=args.num, seed=args.seed, text_temperature=args.text_temperature,
                  max_reason_tokens=args.max_tokens, max_batch=args.max_batch, first_index=args.first_index)
    fields.update(overrides)
    return GenerationConfig(**fields)


def _model_prompt(got, prompt: str) -> str:
    """The prompt the model is given; says so on stderr when it differs from what was typed."""
    from .demo import model_prompt

    seen = model_prompt(got, prompt)
    if seen != prompt:
        print(f"prompt read as {seen!r}", file=sys.stderr)
    return seen


def cmd_plan(args) -> int:
    from .generation import generate

    got = _load(args)
    result = generate(got, _model_prompt(got, args.prompt), _generation_config(args), images=False)
    if args.json:
        print(json.dumps([{"seed": seed, "index": index, "chain": chain, "finished": bool(done),
                           "layout": layout.to_dict()}
                          for seed, index, chain, done, layout in zip(result.seeds, result.streams, result.chains,
                                                                      result.finished, result.layouts)],
                         indent=2, ensure_ascii=False))
        return EXIT_OK
    for seed, index, chain, parsed, layout in zip(result.seeds, result.streams, result.chains, result.parsed,
                                                  result.layouts):
        print(f"--- seed {seed}, sample {index}")
        print(chain)
        print(_report(parsed, layout))
    return EXIT_OK


def cmd_generate(args) -> int:
    from .fitting import weights_mode
    from .generation import generate
    from .images import to_pil

    chain = None
    if args.chain:
        from .reasoning import chain_to_draw, diagnostics_text

        text = _read_text(args.chain)
        if not text.strip():
            raise UsageError(f"chain file {args.chain} is empty: write a chain in it, or leave --chain out to let "
                             "the model plan")
        chain, parsed = chain_to_draw(text)  # drawn as repaired; nothing to draw: exit 1
        if parsed.diagnostics:
            print(f"{args.chain}: repaired before drawing:\n{diagnostics_text(parsed)}", file=sys.stderr)
    got = _load(args)
    config = _generation_config(args, cfg_scale=args.cfg, image_temperature=args.image_temperature,
                                top_k=args.top_k, top_p=args.top_p, image_decoding=args.image_decoding,
                                draft_tokens=args.draft_tokens)
    prompt = _model_prompt(got, args.prompt)
    result = generate(got, prompt, config, chains=chain)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for i, image in enumerate(result.images):
        name = f"{i:03d}_seed{result.seeds[i]}_{result.streams[i]}.png"
        to_pil(image).save(out / name)
        files.append(name)
    record = {
        "prompt": prompt,
        "model": str(got.path),
        "weights": weights_mode(got),
        "settings": result.settings,
        "images": [{"file": f, "seed": seed, "index": index, "chain": chain, "finished": bool(done),
                    "layout": layout.to_dict()}
                   for f, seed, index, chain, done, layout in zip(files, result.seeds, result.streams,
                                                                  result.chains, result.finished, result.layouts)],
    }
    (out / "generation.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(files)} images and generation.json to {out}")
    return EXIT_OK


def cmd_convert(args) -> int:
    from .model.loading import convert_checkpoint

    out = convert_checkpoint(args.src, args.dst, dtype=args.dtype, max_shard_size=args.max_shard_size)
    print(f"wrote {out} (HF Janus format, safetensors); load it with --model {out}")
    return EXIT_OK


def cmd_convert_hps(args) -> int:
    from .rewards.hps_convert import convert_hps

    out = convert_hps(args.src, args.tokenizer, args.dst, *args.heads)
    print(f"wrote {out} (transformers CLIP, safetensors); score with `gotr1 judge --quality {out}` or "
          f"quality_model: {out}")
    return EXIT_OK


def cmd_judge(args) -> int:
    import numpy as np
    from PIL import Image

    from .reasoning import split_chains
    from .rewards import RewardFormula, is_judge_url, load_judge

    if args.quantize and (args.judge == "shapeworld" or is_judge_url(args.judge)):
        raise UsageError("--quantize applies to a Qwen2.5-VL judge folder (the exact ShapeWorld judge has no "
                         "weights; a judge server quantizes its own)")
    try:
        formula = RewardFormula.of(args.formula, args.expression)
    except ValueError as exc:
        raise UsageError(f"--formula: {exc}") from None
    try:
        judge = load_judge(args.judge, device=args.device, quantize=args.quantize, quality=args.quality,
                           formula=formula, questions=args.questions)
    except ValueError as exc:
        raise UsageError(f"--judge: {exc}") from None
    images = []
    for name in args.images:
        try:
            images.append(np.asarray(Image.open(name).convert("RGB")))
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read image {name}: {exc}") from None
    chains = split_chains(_read_text(args.chain))
    if len(chains) == 1:
        chains = chains * len(images)
    if len(chains) != len(images):
        raise UsageError(f"{len(chains)} chains for {len(images)} images: give one chain, or one per image")
    rewards = judge.score([args.prompt] * len(images), chains, None, images)
    if args.json:
        print(rewards.to_json())
        return EXIT_OK
    columns = {"r_sem": "R_sem", "r_spa": "R_spa", "r_ri": "R_RI", "r_pi": "R_PI"}
    if rewards.r_hps is not None:
        columns["r_hps"] = "R_HPS"
    print(f"{'image':<28}{'total':>7}" + "".join(f"{title:>7}" for title in columns.values()) + "  notes")
    for name, row in zip(args.images, rewards.to_list()):
        print(f"{Path(name).name[:27]:<28}{row['total']:>7.3f}" + "".join(f"{row[c]:>7.3f}" for c in columns)
              + f"  {'; '.join(row['explanation']) or 'ok'}")
    print(f"total = {rewards.formula.expression} (reward formula {rewards.formula.describe()})")
    return EXIT_OK


QUANTIZE_HELP = ("store the decoder layers' weights quantized: fp8, int8 (weight-only, one byte per weight) or "
                 "int4 (NF4, half a byte); computed in --dtype")


def _model_default(name: str) -> str:
    return f"default: the model's gotr1.json — {default_values(name)}"


def _add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model folder (config.json, safetensors, tokenizer); default: the built-in "
                                    "ShapeWorld model")
    p.add_argument("--prompt", required=True, help="what the image should show")
    p.add_argument("-n", "--num", type=int, default=1, help="samples per prompt (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); sample i draws from (seed, i), "
                                                        "the same whatever -n")
    p.add_argument("--first-index", type=int, default=0, metavar="I",
                   help="number the samples from I: '-n 1 --first-index 3' redraws sample 3 of a batch alone")
    p.add_argument("--text-temperature", type=float, default=None,
                   help=f"chain sampling temperature; 0 = greedy ({_model_default('text_temperature')})")
    p.add_argument("--max-tokens", type=int, default=None,
                   help=f"longest chain in tokens ({_model_default('max_reason_tokens')})")
    p.add_argument("--max-batch", type=int, default=16, help="rows generated together (memory knob)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    p.add_argument("--quantize", choices=QUANTIZED_MODES, metavar="MODE", help=QUANTIZE_HELP)


def _add_decoding_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-decoding", choices=IMAGE_DECODING, default=IMAGE_DECODING[0],
                   help="image tokens one forward pass each, or by speculative Jacobi decoding: a draft of "
                        "guesses checked per pass, samples from the same distribution in fewer passes")
    p.add_argument("--draft-tokens", type=int, default=DRAFT_TOKENS, metavar="N",
                   help=f"guesses checked per pass with --image-decoding jacobi (default {DRAFT_TOKENS})")


def _pack_nodes():
    """The pack's ``nodes`` package, imported under a private name: a top-level ``nodes`` would be
    ComfyUI's own module, so the pack never installs one."""
    import importlib
    import importlib.util

    if "gotr1_pack_nodes" in sys.modules:
        return importlib.import_module("gotr1_pack_nodes.workflows")
    folder = Path(__file__).resolve().parent.parent / "nodes"
    if not (folder / "__init__.py").exists():
        raise UsageError("check-workflow needs the node pack's folder (a git checkout, or the pack inside "
                         "ComfyUI/custom_nodes); this installation has only the library")
    spec = importlib.util.spec_from_file_location("gotr1_pack_nodes", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["gotr1_pack_nodes"] = module
    spec.loader.exec_module(module)
    return importlib.import_module("gotr1_pack_nodes.workflows")


def cmd_check_workflow(args) -> int:
    workflows = _pack_nodes()
    check_workflow, load_workflow = workflows.check_workflow, workflows.load_workflow
    status = EXIT_OK
    for path in args.files:
        try:
            problems, notes = check_workflow(load_workflow(path))
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        unchecked = workflows.unchecked(notes)
        verdict = (f"{len(problems)} problem(s)" if problems else
                   f"OK for the nodes it knows; {len(unchecked)} not checked" if unchecked else "OK")
        print(f"{path}: {verdict}")
        for line in problems:
            print(f"  error: {line}")
        for line in notes:
            print(f"  note: {line}")
        if problems:
            status = EXIT_REJECTED
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gotr1", description="GoT-R1: reasoning-chain image generation tools.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("parse", help="read a chain and print its layout and diagnostics")
    p.add_argument("file", nargs="?", default="-", help="chain text file, or - for stdin (default)")
    p.add_argument("--strict", action="store_true", help="exit 1 if the chain needed any repair")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_parse)

    d = sub.add_parser("draw", help="draw a chain's layout to a PNG")
    d.add_argument("file", nargs="?", default="-", help="chain text file, or - for stdin (default)")
    d.add_argument("-o", "--output", required=True, help="PNG file to write")
    d.add_argument("--size", nargs=2, type=int, metavar=("W", "H"),
                   help="canvas size in pixels (default 512 512, or the --on image's size); with --on, the image "
                        "is scaled to it")
    d.add_argument("--on", metavar="IMAGE", help="draw over this image instead of a blank canvas")
    d.add_argument("--strict", action="store_true", help="refuse chains that needed repair (exit 1)")
    d.set_defaults(func=cmd_draw)

    pl = sub.add_parser("plan", help="stage 1 only: write reasoning chains for a prompt")
    _add_model_arguments(pl)
    pl.add_argument("--json", action="store_true", help="print JSON instead of text")
    pl.set_defaults(func=cmd_plan)

    g = sub.add_parser("generate", help="both stages: chains and images, written as PNGs + generation.json")
    _add_model_arguments(g)
    g.add_argument("-o", "--output", required=True, help="folder for the PNGs and generation.json")
    g.add_argument("--chain", metavar="FILE", help="use this chain (file, or - for stdin) instead of planning")
    g.add_argument("--cfg", type=float, default=None,
                   help=f"classifier-free guidance scale ({_model_default('cfg_scale')})")
    g.add_argument("--image-temperature", type=float, default=None,
                   help=f"image-token temperature; 0 = greedy ({_model_default('image_temperature')})")
    g.add_argument("--top-k", type=int, default=None, help="sample image tokens from the k most likely")
    g.add_argument("--top-p", type=float, default=None, help="nucleus sampling of image tokens")
    _add_decoding_arguments(g)
    g.set_defaults(func=cmd_generate)

    c = sub.add_parser("convert", help="original DeepSeek/GoT-R1 checkpoint -> HF Janus folder (safetensors)")
    c.add_argument("src", help="original-format folder (config.json with language_config, weights, tokenizer)")
    c.add_argument("dst", help="new folder to write")
    c.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="dtype of the written weights (auto: as stored)")
    c.add_argument("--max-shard-size", default="4GB", help="largest safetensors shard (default 4GB)")
    c.set_defaults(func=cmd_convert)

    dm = sub.add_parser("demo", help="plan, generate and judge, all on one PNG sheet (built-in model by default)")
    dm.add_argument("prompt", nargs="?", help="default: 'a red circle left of a blue square'")
    dm.add_argument("-n", "--num", type=int, default=4, help="images (default 4)")
    dm.add_argument("-o", "--output", default="out", help="folder for demo.png (default out/)")
    dm.add_argument("--model", help="model folder; default: the built-in ShapeWorld model")
    dm.add_argument("--seed", type=int, default=0)
    dm.add_argument("--device", default="auto")
    dm.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    dm.add_argument("--quantize", choices=QUANTIZED_MODES, metavar="MODE", help=QUANTIZE_HELP)
    _add_decoding_arguments(dm)
    dm.set_defaults(func=cmd_demo)

    m = sub.add_parser("memory", help="the memory a generation needs (weights, key/value cache, activations, "
                                      "VQ decode) and the largest chunk that fits a budget")
    m.add_argument("model", nargs="?", help="model folder, 'builtin' (default), GoT-R1-1B or GoT-R1-7B")
    m.add_argument("--images", type=int, default=1, help="images of one prompt (default 1)")
    m.add_argument("--quantize", default="auto", metavar="MODE",
                   help="weights mode: auto (bf16 on a GPU, fp32 on the CPU), bf16, fp16, fp32, fp8, int8, int4")
    m.add_argument("--budget", help="memory to fit, e.g. 12GB: prints the largest chunk that fits")
    m.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="where it runs (default cuda)")
    m.add_argument("--prompt-tokens", type=int, default=48, help="prompt length in tokens (default 48)")
    m.add_argument("--reason-tokens", type=int, help="chain budget (default: the model's max_reason_tokens)")
    m.add_argument("--chain-given", action="store_true", help="draw from one given chain (no reasoning stage)")
    m.add_argument("--no-cfg", action="store_true", help="without classifier-free guidance (cfg 1)")
    m.set_defaults(func=cmd_memory)

    j = sub.add_parser("judge", help="score images with the four GoT-R1 rewards")
    j.add_argument("--prompt", required=True, help="the prompt the images follow")
    j.add_argument("--chain", required=True, metavar="FILE", help="chain file (one chain, or one per image joined "
                                                                  "by <|next_chain|> lines), or - for stdin")
    j.add_argument("--images", nargs="+", required=True, help="PNG/JPEG files to score")
    j.add_argument("--judge", default="shapeworld",
                   help="shapeworld (exact, built in), a Qwen2.5-VL folder, or a judge server URL "
                        "http://HOST:PORT/v1 (OpenAI-compatible: vLLM, SGLang, transformers serve)")
    j.add_argument("--device", default="auto", help="device for an MLLM judge")
    j.add_argument("--quantize", choices=QUANTIZED_MODES, metavar="MODE",
                   help="store a Qwen2.5-VL judge's language model quantized: fp8, int8 or int4")
    j.add_argument("--quality", metavar="FOLDER",
                   help="HPS v2.1 as a transformers CLIP folder (gotr1 convert-hps): adds R_HPS, visual quality")
    j.add_argument("--formula", default="v1",
                   help="how the rewards combine: v1 R_PI*(R_sem+R_spa)*R_RI (default), v2 "
                        "R_PI*(R_sem+R_spa)/2*R_RI*R_HPS (needs --quality), custom (with --expression)")
    j.add_argument("--expression", help="the custom formula, e.g. 'r_pi * r_ri + 0.5 * r_hps'")
    j.add_argument("--questions", default="pack",
                   help="a Qwen2.5-VL judge's wording: pack (ours, default) or paper (the GoT-R1 criteria)")
    j.add_argument("--json", action="store_true", help="print JSON instead of a table")
    j.set_defaults(func=cmd_judge)

    h = sub.add_parser("convert-hps", help="HPS v2.1 OpenCLIP weights (safetensors) -> transformers CLIP folder")
    h.add_argument("src", help="the OpenCLIP state dict saved as .safetensors (docs/rewards.md says how)")
    h.add_argument("dst", help="new folder to write")
    h.add_argument("--tokenizer", required=True, metavar="FOLDER",
                   help="a local CLIP folder with its tokenizer (vocab.json + merges.txt), e.g. ViT-H-14's")
    h.add_argument("--heads", nargs=2, type=int, default=[16, 16], metavar=("VISION", "TEXT"),
                   help="attention heads of the two towers (ViT-H/14: 16 16)")
    h.set_defaults(func=cmd_convert_hps)

    w = sub.add_parser("check-workflow", help="validate ComfyUI workflow JSON files (editor or API format)")
    w.add_argument("files", nargs="+", help="workflow .json files")
    w.set_defaults(func=cmd_check_workflow)
    return parser


def _explains_itself(exc: Exception) -> bool:
    """Bad checkpoints, prompts and settings (``ValueError``) and judge servers (``JudgeServerError``) say what
    is wrong; anything else is a bug and keeps its traceback. A judge-server error can only come from a command
    that imported the served judge, so a light command does not import it to ask."""
    served = sys.modules.get(f"{__package__}.rewards.served_judge")
    return isinstance(exc, ValueError) or (served is not None and isinstance(exc, served.JudgeServerError))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader went away (`gotr1 plan --json | head`): nothing more to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail too
        return EXIT_OK
    except UsageError as exc:
        print(f"gotr1 {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:
        if not _explains_itself(exc):
            raise
        print(f"gotr1 {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main())
