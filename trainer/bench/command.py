"""``gotr1-train bench BENCHMARK [MODEL]``: draw a benchmark's images, score them, print the table.

Every step checks what it needs before the long part starts (the prompt lists,
the scorer folders, the model), drawing resumes where a killed run stopped, and
``--draw-only`` / ``--score-only`` split the two halves (draw on the machine with
the model, score where the scorers are, or score images drawn by another tool).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import SimpleNamespace

from gotr1_core.benchmarks.scorer_kinds import SCORERS
from gotr1_core.model.spec import QUANTIZED_MODES

from ..config import ConfigError

BENCHMARKS = ("shapeworld", "t2i-compbench", "geneval")
DEFAULT_IMAGES = {"shapeworld": 4, "t2i-compbench": 10, "geneval": 4}  # as the benchmarks ask


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmark", choices=BENCHMARKS,
                        help="shapeworld: T2I-CompBench-shaped categories over the clean evaluation splits, judged "
                             "by render-back; t2i-compbench and geneval: the paper's benchmarks")
    parser.add_argument("model", nargs="?", default="builtin", help="model folder (default: the built-in model)")
    parser.add_argument("--images-per-prompt", type=int, dest="images_per_prompt",
                        help="images per prompt (default: 4 shapeworld, 10 t2i-compbench, 4 geneval)")
    parser.add_argument("--out", help="folder for the images, results.json/.md and chart.png "
                                      "(default runs/bench-BENCHMARK-MODEL)")
    parser.add_argument("--seed", type=int, default=0, help="sampling seed: image i of a prompt is stream (seed, i)")
    parser.add_argument("--max-batch", type=int, default=16, dest="max_batch", help="images drawn at once")
    parser.add_argument("--memory-budget", dest="memory_budget",
                        help="size batches by the memory plan to fit this much, e.g. 20GB (replaces --max-batch)")
    parser.add_argument("--quantize", choices=QUANTIZED_MODES, metavar="MODE",
                        help=f"load the model's weights quantized ({', '.join(QUANTIZED_MODES)})")
    parser.add_argument("--device", default="auto")
    shapeworld = parser.add_argument_group("shapeworld")
    shapeworld.add_argument("--count", type=int, default=50, help="scenes per category (default 50)")
    paper = parser.add_argument_group("t2i-compbench and geneval")
    paper.add_argument("--prompts-dir", dest="prompts_dir",
                       help="a folder holding the official prompt files (offline); default: download the pinned "
                            "commit's files once into the cache ($GOTR1_CACHE or ~/.cache/gotr1)")
    paper.add_argument("--version", choices=["2025", "2024"], default="2025",
                       help="T2I-CompBench's lists: 2025 (current) or 2024 (colour's list before its duplicates "
                            "were removed)")
    paper.add_argument("--categories", nargs="+",
                       help="T2I-CompBench categories or GenEval tasks to run (default all)")
    paper.add_argument("--limit", type=int, help="only the first N prompts of each category (a quick look)")
    paper.add_argument("--scorers", default=os.environ.get("GOTR1_BENCH_MODELS", "models/bench"),
                       help="folder of the scorer models, one subfolder each: "
                            + ", ".join(kind.folder for kind in SCORERS.values())
                            + " (default $GOTR1_BENCH_MODELS or models/bench)")
    for key in SCORERS:
        paper.add_argument(f"--{key.replace('_', '-')}-model", dest=f"{key}_model",
                           help=f"the {key.replace('_', ' ')} folder (default SCORERS/{SCORERS[key].folder})")
    stage = paper.add_mutually_exclusive_group()
    stage.add_argument("--draw-only", action="store_true", dest="draw_only", help="draw the images, score nothing")
    stage.add_argument("--score-only", action="store_true", dest="score_only",
                       help="score the images already in --out (drawn by any tool in the official layout)")


def run(args) -> int:
    from ..evaluate import model_path
    from . import report

    if args.images_per_prompt is None:
        args.images_per_prompt = DEFAULT_IMAGES[args.benchmark]
    for name in ("count", "images_per_prompt", "max_batch", "limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError("bench", [f"--{name.replace('_', '-')} must be >= 1, got {value}"])
    if args.benchmark != "shapeworld" and args.model == "builtin" and not args.score_only:
        raise ConfigError("bench", [f"{args.benchmark}: name the model folder to bench (the built-in model knows only "
                                    "ShapeWorld; `gotr1-train bench shapeworld` benches it)"])
    label = model_path(args.model).name
    out = Path(args.out or f"runs/bench-{args.benchmark}-{label}")
    if args.benchmark == "shapeworld":
        return _run_shapeworld(args, out, label)
    prepared = (_prepare_compbench if args.benchmark == "t2i-compbench" else _prepare_geneval)(args, out)
    if not args.score_only:
        got = _load(args, out)
        prepared.draw(got)
    if args.draw_only:
        print(f"drew the images into {out}; score them with --score-only")
        return 0
    results = prepared.score()
    results.update({"model": str(args.model), "seed": args.seed, "benchmark": args.benchmark,
                    "prompt_lists": prepared.lists})
    print(report.write_scores(results, out, prepared.title, prepared.columns, prepared.published,
                              prepared.source, label))
    print(f"wrote {out}/results.json, results.md and chart.png")
    return 0


def _bar(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not sys.stderr.isatty())


def _load(args, out: Path):
    """The model to bench, quantized if asked, with batches sized by the memory plan if a budget is given; ``out``
    is claimed for its weights and seed (a rerun into a folder drawn by other weights is refused)."""
    from gotr1_core.model.loading import CheckpointError, load_model

    from ..evaluate import model_path
    from . import harness

    folder = model_path(args.model)
    if args.memory_budget:
        from gotr1_core.memory import largest_chunk, parse_bytes
        from gotr1_core.model.loading import _tensor_source, read_config_json, resolve_device

        try:
            config = _tensor_source(folder, read_config_json(folder))[0]
            args.max_batch = largest_chunk(config, parse_bytes(args.memory_budget), args.images_per_prompt,
                                           weights=args.quantize or "auto", device=resolve_device(args.device).type)
        except (OSError, ValueError) as exc:
            raise ConfigError("bench", [f"--memory-budget: {exc}"]) from None
    try:
        got = load_model(folder, device=args.device, quantize=args.quantize)
    except (CheckpointError, OSError, ValueError) as exc:
        raise ConfigError("bench", [f"model {folder}: {exc}"]) from None
    try:
        harness.claim(out, harness.weights_identity(folder, seed=args.seed, quantize=args.quantize))
    except ValueError as exc:
        raise ConfigError("bench", [str(exc)]) from None
    return got


def _scorer_path(args, key: str) -> Path:
    return Path(getattr(args, f"{key}_model") or Path(args.scorers) / SCORERS[key].folder).expanduser()


def _check_scorers(args, keys) -> None:
    """Every scorer folder a run needs, checked before any image is drawn."""
    from gotr1_core.benchmarks.scorers import scorer_problem

    if args.draw_only:
        return
    problems = [problem for key in keys if (problem := scorer_problem(key, _scorer_path(args, key)))]
    if problems:
        raise ConfigError("bench", problems + ["docs/benchmarks.md lists the scorer folders and where to get them"])


def _scorers(args, keys) -> dict:
    """The scorers ``keys`` name, loaded from their folders."""
    from gotr1_core.benchmarks.scorers import load_scorer

    return {key: load_scorer(key, _scorer_path(args, key), args.device) for key in keys}


def _chosen(args, known: tuple[str, ...]) -> list[str]:
    chosen = args.categories or list(known)
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise ConfigError("bench", [f"--categories: unknown {', '.join(unknown)}; choose from {', '.join(known)}"])
    return chosen


def _prepare_compbench(args, out: Path) -> SimpleNamespace:
    """T2I-CompBench ready to run: its prompts, how to draw them and how to score them."""
    from gotr1_core.benchmarks.compbench import NEEDS, Scorers, complex_key

    from . import compbench, harness, published, sources

    chosen = _chosen(args, compbench.CATEGORIES)
    files = {k: v for k, v in sources.T2I_COMPBENCH[args.version].items()
             if k in chosen or (k.startswith("complex_") and "complex" in chosen)}
    try:
        paths = sources.fetch(files, args.prompts_dir)
    except sources.PromptListError as exc:
        raise ConfigError("bench", [str(exc)]) from None
    prompts = {c: sources.read_lines(paths[c])[:args.limit] for c in chosen}
    lists = {"complex_lists": {k: {complex_key(p) for p in sources.read_lines(paths[f"complex_{k}"])}
                               for k in ("spatial", "action") if f"complex_{k}" in paths}}
    needs = sorted({key for category in chosen for key in NEEDS[category]})
    _check_scorers(args, needs)

    def draw(got) -> None:
        for category in chosen:
            with _bar(len(prompts[category]), f"draw {category}") as bar:
                harness.draw(got, prompts[category], out / category, args.images_per_prompt, args.seed,
                             args.max_batch, progress=lambda done, total: bar.update(done - bar.n),
                             name=lambda _, prompt, i: f"samples/{harness.image_name(prompt, i)}")

    def score() -> dict:
        scorers = Scorers(**_scorers(args, needs))
        with _bar(sum(map(len, prompts.values())), "score") as bar:
            return compbench.score_folder(out, prompts, args.images_per_prompt, scorers,
                                          lists["complex_lists"], args.seed, progress=bar.update)

    record = {c: {"file": f.path, "repo": f.repo, "commit": f.commit, "sha256": f.sha256}
              for c, f in files.items()}
    return SimpleNamespace(draw=draw, score=score, title=f"T2I-CompBench ({args.version} lists)",
                           columns=compbench.COLUMNS, published=published.T2I_COMPBENCH, source=published.SOURCE,
                           lists={"version": args.version, "files": record})


def _prepare_geneval(args, out: Path) -> SimpleNamespace:
    """GenEval ready to run, as :func:`_prepare_compbench`."""
    from . import geneval, harness, published, sources

    chosen = _chosen(args, geneval.TASKS)
    try:
        paths = sources.fetch(sources.GENEVAL, args.prompts_dir)
        rows = [row for row in geneval.read_metadata(paths["metadata"]) if row["tag"] in chosen]
    except (sources.PromptListError, ValueError) as exc:
        raise ConfigError("bench", [str(exc)]) from None
    if args.limit:
        rows = [r for tag in chosen for r in [r for r in rows if r["tag"] == tag][:args.limit]]
    object_names = [line.strip() for line in paths["object_names"].read_text(encoding="utf-8").splitlines()
                    if line.strip()]
    _check_scorers(args, ("segmenter", "color_clip"))

    def draw(got) -> None:
        geneval.write_metadata(out, rows)
        with _bar(len(rows), "draw") as bar:
            harness.draw(got, [r["prompt"] for r in rows], out, args.images_per_prompt, args.seed, args.max_batch,
                         progress=lambda done, total: bar.update(done - bar.n),
                         name=lambda k, _, i: f"{geneval.folder_name(k)}/samples/{geneval.sample_name(i)}")

    def score() -> dict:
        loaded = _scorers(args, ("segmenter", "color_clip"))
        with _bar(len(rows), "score") as bar:
            return geneval.score_folder(out, rows, args.images_per_prompt, loaded["segmenter"], loaded["color_clip"],
                                        object_names, args.seed, progress=bar.update)

    pinned = sources.GENEVAL["metadata"]
    return SimpleNamespace(draw=draw, score=score, title="GenEval", columns=geneval.COLUMNS,
                           published=published.GENEVAL, source=published.SOURCE,
                           lists={"file": pinned.path, "repo": pinned.repo, "commit": pinned.commit,
                                  "sha256": pinned.sha256})


def _run_shapeworld(args, out: Path, label: str) -> int:
    from . import harness, report, shapeworld

    try:
        scenes = shapeworld.bench_scenes(args.count)
    except ValueError as exc:
        raise ConfigError("bench", [str(exc)]) from None
    shapeworld.write_scenes(out, scenes)
    prompts = [scene.prompt for chosen in scenes.values() for scene in chosen]
    got = _load(args, out)
    with _bar(len(prompts), "bench") as bar:
        harness.draw(got, prompts, out / "samples", args.images_per_prompt, args.seed, args.max_batch,
                     progress=lambda done, total: bar.update(done - bar.n))
    results = shapeworld.score_folder(out / "samples", scenes, args.images_per_prompt, args.seed)
    results.update({"model": str(args.model), "seed": args.seed})
    print(report.write(results, out, f"ShapeWorld bench: {label}"))
    print(f"wrote {out}/results.json, results.md, chart.png and the images in {out}/samples")
    return 0
