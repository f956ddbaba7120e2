"""``gotr1-train``: the training command line.

Subcommands are registered in :data:`COMMANDS` as they land; each takes a
validated config so that no work starts on a bad run description.
"""

from __future__ import annotations

import argparse
import sys

COMMANDS: dict = {}


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
        if not COMMANDS:
            print("\nno training commands are available in this version", file=sys.stderr)
        return 2
    return COMMANDS[args.command][2](args)


if __name__ == "__main__":
    sys.exit(main())
