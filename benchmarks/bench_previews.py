"""What live previews cost: the same generation with and without the nodes' LivePreview, interleaved pairs.

    python benchmarks/bench_previews.py [--pairs 10] [--hidden 512] [--images 8]

Builds the random mid-size Janus of bench_generate.py (49M parameters at hidden 512), then times
``generate`` with ``preview=LivePreview(...)`` (its shipped rationing: one per 0.25 s at most, 2 % of the
run's time) and without, alternating which goes first. Reports the overhead of each pair, the previews
sent per run and the time they took themselves.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_generate import PROMPT, build_model  # noqa: E402
from gotr1_core.generation import GenerationConfig, generate  # noqa: E402
from gotr1_core.model.loading import load_model  # noqa: E402
from nodes.previews import LivePreview  # noqa: E402


class DiscardingBar:
    """A progress bar that takes previews and drops them (the server's send is not what is measured)."""

    current, total = 0, 1

    def update_absolute(self, value, total=None, preview=None) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--grid", type=int, default=12, help="image tokens per side")
    parser.add_argument("--reason-tokens", type=int, default=48)
    args = parser.parse_args()
    shape = argparse.Namespace(vocab=8192, hidden=args.hidden, layers=args.layers, grid=args.grid, codebook=4096,
                               reason_tokens=args.reason_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        build_model(Path(tmp) / "model", shape)
        got = load_model(Path(tmp) / "model", device="cpu")
    config = GenerationConfig(num_samples=args.images, seed=0, text_temperature=0, image_temperature=0,
                              max_reason_tokens=args.reason_tokens)
    generate(got, PROMPT, config)  # warm-up
    overheads, sent, spent, base = [], [], [], []
    for pair in range(args.pairs):
        seconds = {}
        for mode in (("off", "on") if pair % 2 == 0 else ("on", "off")):
            preview = LivePreview(got, DiscardingBar()) if mode == "on" else None
            start = time.perf_counter()
            generate(got, PROMPT, config, preview=preview)
            seconds[mode] = time.perf_counter() - start
            if preview is not None:
                sent.append(preview.sent)
                spent.append(preview.spent)
        base.append(seconds["off"])
        overheads.append(seconds["on"] / seconds["off"] - 1)
    print(f"{sum(p.numel() for p in got.model.parameters()) / 1e6:.0f}M parameters, {args.images} images, "
          f"{statistics.median(base):.2f} s a run without previews")
    print("overhead per pair: " + ", ".join(f"{100 * o:+.1f} %" for o in overheads))
    print(f"median {100 * statistics.median(overheads):+.1f} %, mean {100 * statistics.mean(overheads):+.1f} %; "
          f"previews per run {min(sent)}-{max(sent)}, taking {statistics.median(spent):.3f} s of each run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
