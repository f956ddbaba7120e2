"""Fuzz the tolerant chain parser: random and mutated chains, crashes and throughput.

    python benchmarks/fuzz_parser.py --count 100000 [--seed 0]

Half the inputs are mutations of generated well-formed chains (tags deleted,
duplicated, swapped or inserted; digits corrupted; truncation), half are random
character soup biased towards the grammar's own characters. Every input must
parse without an exception and yield only valid boxes. Also times the 1 MB
adversarial strings of the unit suite.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gotr1_core.reasoning import (  # noqa: E402
    BOX_END,
    BOX_START,
    IMAGE_START,
    OBJ_END,
    OBJ_START,
    TAG_RE,
    parse_chain,
)

TAGS = [OBJ_START, OBJ_END, BOX_START, BOX_END, IMAGE_START]
WORDS = ["a", "red", "apple", "left of", "the", "猫", "café", "🍎", "blue cup", "sky", ",", ".", "\n"]
SOUP = list("()[],.-0123456789 <|>_abcdefghijklmnopqrstuvwxyz\n\t") + TAGS + ["1000", "-5", "3.7"]


def random_chain(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 6)):
        parts.append(" ".join(rng.choices(WORDS, k=rng.randint(0, 6))) + " ")
        parts += [OBJ_START, " ".join(rng.choices(WORDS[:10], k=rng.randint(1, 3))), OBJ_END]
        for _ in range(rng.randint(0, 2)):
            x1, y1 = rng.randint(0, 999), rng.randint(0, 999)
            x2, y2 = rng.randint(x1 + 1, 1000), rng.randint(y1 + 1, 1000)
            parts += [" ", BOX_START, f"({x1},{y1}),({x2},{y2})", BOX_END]
    parts.append(IMAGE_START if rng.random() < 0.8 else "")
    return "".join(parts)


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 5)):
        tags = list(TAG_RE.finditer(text))
        kind = rng.choice(["delete", "duplicate", "digit", "truncate", "insert", "swap"])
        if kind in ("delete", "duplicate") and tags:
            m = rng.choice(tags)
            text = text[: m.start()] + ("" if kind == "delete" else m.group() * 2) + text[m.end():]
        elif kind == "digit":
            digits = [i for i, c in enumerate(text) if c.isdigit()]
            if digits:
                i = rng.choice(digits)
                text = text[:i] + rng.choice(["", "9" * rng.randint(1, 30), "-", ".5", " ", ",", "x"]) + text[i + 1:]
        elif kind == "truncate" and text:
            text = text[: rng.randint(0, len(text))]
        elif kind == "insert":
            i = rng.randint(0, len(text))
            text = text[:i] + rng.choice(SOUP) + text[i:]
        elif kind == "swap" and len(tags) >= 2:
            a, b = sorted(rng.sample(range(len(tags)), 2))
            ma, mb = tags[a], tags[b]
            text = text[: ma.start()] + mb.group() + text[ma.end(): mb.start()] + ma.group() + text[mb.end():]
    return text


def soup(rng: random.Random) -> str:
    return "".join(rng.choices(SOUP, k=rng.randint(0, 200)))


def adversarial() -> dict[str, str]:
    return {
        "1M '('": "<|box_start|>" + "(" * 1_000_000,
        "80k <|obj_start|>": OBJ_START * 80_000,
        "1M digits in a box": "<|obj_start|>a<|obj_end|><|box_start|>(" + "1" * 1_000_000 + ",1),(2,2)<|box_end|>",
        "40k unclosed boxes": "<|obj_start|>a<|obj_end|>" + "<|box_start|>(1,2),(3,4)" * 40_000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    inputs = [mutate(rng, random_chain(rng)) if i % 2 == 0 else soup(rng) for i in range(args.count)]
    total_bytes = sum(len(s.encode("utf-8")) for s in inputs)

    crashes, diagnostics, boxes = 0, 0, 0
    start = time.perf_counter()
    for text in inputs:
        try:
            parsed = parse_chain(text)
            diagnostics += len(parsed.diagnostics)
            for obj in parsed.objects:
                for box in obj.boxes:
                    assert 0 <= box.x1 < box.x2 <= 1000 and 0 <= box.y1 < box.y2 <= 1000
                    boxes += 1
        except Exception:  # noqa: BLE001 - counting crashes is the point
            crashes += 1
            if crashes <= 3:
                print(f"CRASH on {text[:200]!r}")
                traceback.print_exc()
    elapsed = time.perf_counter() - start

    print(f"inputs:        {args.count} ({args.count // 2} mutated chains, {args.count - args.count // 2} random)")
    print(f"crashes:       {crashes}")
    print(f"recovered:     {boxes} boxes, {diagnostics} diagnostics")
    print(f"throughput:    {args.count / elapsed:,.0f} chains/s, {total_bytes / elapsed / 1e6:.2f} MB/s "
          f"({total_bytes / 1e6:.1f} MB in {elapsed:.2f} s)")
    for name, text in adversarial().items():
        t0 = time.perf_counter()
        parse_chain(text)
        print(f"adversarial:   {name:<22} {len(text) / 1e6:.2f} MB in {time.perf_counter() - t0:.3f} s")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
