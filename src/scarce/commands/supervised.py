"""``scarce supervised``: train the same encoder with labels (from scratch or --init RUN), test once."""

from __future__ import annotations

import argparse

from scarce.commands.base import register_command
from scarce.commands.pretrain import add_arguments as add_training_arguments
from scarce.commands.pretrain import execute


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument(
        "--init", help="fine-tune the encoder of this run / checkpoint / weights (default: random init)"
    )
    parser.add_argument("--init-encoder", choices=("context", "target"), default="context")


def recipe_for(config_name: str | None) -> list[str]:
    """The overrides that make ``config_name`` a supervised run: a pretraining preset gets the
    supervised recipe; a supervised preset (e.g. ``finetune-s3l``) is used as it is."""
    from scarce.config import load_config
    from scarce.supervised import SUPERVISED_RECIPE

    if config_name is not None and load_config(config_name).method == "supervised":
        return []
    return list(SUPERVISED_RECIPE)


def run(args: argparse.Namespace) -> int:
    from scarce.supervised import train_supervised

    recipe = recipe_for(args.config)
    if args.init:
        recipe += [f"supervised.init={args.init}", f"supervised.init_encoder={args.init_encoder}"]
    return execute(args, recipe, lambda *a, **k: train_supervised(*a, **k)[0])


register_command("supervised", run, add_arguments)
