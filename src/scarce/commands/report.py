"""``scarce report``: one self-contained HTML page on one or several runs (curves, pictures, evaluations)."""

from __future__ import annotations

import argparse

from scarce.commands.base import register_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run directories (several: curves on shared axes)")
    parser.add_argument("--eval", action="append", default=[], help="a scarce evaluate --out directory (repeatable)")
    parser.add_argument("--data", help="images for the pictures of the first run (a dataset spec); none: no pictures")
    parser.add_argument("--images", type=int, default=16, help="images in the PCA maps (default 16)")
    parser.add_argument("--out", required=True, help="the HTML file to write")


def run(args: argparse.Namespace) -> int:
    from scarce.errors import ConfigError
    from scarce.html_report import html_report

    if args.images < 2:
        raise ConfigError(f"--images must be at least 2 (a PCA needs several images), got {args.images}")
    html_report(args.runs, args.out, evaluations=args.eval, data_spec=args.data, num_images=args.images)
    return 0


register_command("report", run, add_arguments)
