"""``scarce supervised``: train the same encoder with labels (from scratch or --init RUN), test once."""

from __future__ import annotations

import argparse

from scarce.commands.pretrain import add_arguments as add_training_arguments
from scarce.commands.pretrain import execute


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument(
        "--init", help="fine-tune the encoder of this run / checkpoint / weights (default: random init)"
    )
    parser.add_argument("--init-encoder", choices=("context", "target"), default="context")


def run(args: argparse.Namespace) -> int:
    from scarce.supervised import SUPERVISED_RECIPE, train_supervised

    recipe = list(SUPERVISED_RECIPE)
    if args.init:
        recipe += [f"supervised.init={args.init}", f"supervised.init_encoder={args.init_encoder}"]
    return execute(args, recipe, lambda *a, **k: train_supervised(*a, **k)[0])
