"""``scarce visualize``: PNG pictures of what a run's encoder learned (PCA maps, attention, masks, neighbours)."""

from __future__ import annotations

import argparse

from scarce.commands.base import add_data_arguments, register_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="run directory, checkpoint (.pt) or weights (.safetensors)")
    add_data_arguments(parser, required=True, what="images to show")
    parser.add_argument("--out", required=True, help="directory for the PNG files")
    parser.add_argument("--images", type=int, default=16, help="images in the PCA maps (default 16)")
    parser.add_argument("--block", type=int, default=-1, help="block of the attention maps (default: the last)")
    parser.add_argument(
        "--token", type=int, help="query token of the attention-from map (row-major; default: the centre)"
    )
    parser.add_argument("--seed", type=int, default=0, help="which images are shown")


def run(args: argparse.Namespace) -> int:
    from scarce.errors import ConfigError
    from scarce.visualize import visualize

    if args.images < 2:
        raise ConfigError(f"--images must be at least 2 (a PCA needs several images), got {args.images}")
    visualize(
        args.source,
        args.data,
        args.out,
        num_images=args.images,
        block=args.block,
        token=args.token,
        seed=args.seed,
        download=args.download,
    )
    return 0


register_command("visualize", run, add_arguments)
