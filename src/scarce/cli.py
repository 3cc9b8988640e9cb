"""The ``scarce`` command line.

Every sub-command is a function ``(args) -> exit code`` registered in :data:`scarce.commands.COMMANDS`.
Errors the user can fix raise :class:`scarce.errors.ScarceError`: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import scarce
from scarce.errors import ScarceError
from scarce.runtime import tune_cpu_allocator


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command registered in :data:`scarce.commands.COMMANDS`."""
    from scarce.commands import COMMANDS

    parser = argparse.ArgumentParser(
        prog="scarce",
        description="Self-supervised vision representation learning from scarce data (SCOTT + MIM-JEPA, S3L).",
    )
    parser.add_argument("--version", action="version", version=f"scarce {scarce.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.summary, description=command.summary)
        if command.add_arguments is not None:
            command.add_arguments(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_cpu_allocator()
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except ScarceError as error:
        print(f"scarce {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scarce {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
