"""``gotr1-train``: the training command line.

Subcommands are registered in :data:`COMMANDS` as they land; each takes a
validated config so that no work starts on a bad run description.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import sft, vq
from .config import ConfigError, load_config


def training_command(config_class, train, example: str):
    """CLI glue shared by every training command: ``--config FILE [--resume] [key=value ...]``."""

    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", required=True, help=f"YAML file (see trainer/configs/{example})")
        parser.add_argument("--resume", action="store_true", help="continue from the newest complete checkpoint")
        parser.add_argument("overrides", nargs="*", help="key=value settings that replace the file's")

    def run(args) -> int:
        config = load_config(config_class, args.config, args.overrides)
        print(json.dumps(train(config, resume=args.resume), indent=2))
        return 0

    return add_arguments, run


COMMANDS: dict = {
    "vq": ("train the image tokenizer (VQ) on ShapeWorld pictures",
           *training_command(vq.VQConfig, vq.train_vq, "shapeworld_vq.yaml")),
    "sft": ("teacher-forced training on (prompt, chain, image tokens)",
            *training_command(sft.SFTConfig, sft.train_sft, "shapeworld_sft.yaml")),
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
