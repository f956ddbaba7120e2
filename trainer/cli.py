"""``gotr1-train``: the training command line.

Subcommands are registered in :data:`COMMANDS` as they land; each takes a
validated config so that no work starts on a bad run description.
"""

from __future__ import annotations

import argparse
import sys

from . import sft, vq
from .config import ConfigError

COMMANDS: dict = {
    "vq": ("train the image tokenizer (VQ) on ShapeWorld pictures", vq.add_arguments, vq.run),
    "sft": ("teacher-forced training on (prompt, chain, image tokens)", sft.add_arguments, sft.run),
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
