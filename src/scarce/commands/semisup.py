"""``scarce semisup``: self-train a classifier run on its unlabelled images with confident pseudo-labels, test once."""

from __future__ import annotations

import argparse
import json

from scarce.commands.base import inherited_budget, register_command
from scarce.commands.finetune import architecture_overrides
from scarce.commands.pretrain import add_arguments as add_training_arguments
from scarce.commands.pretrain import execute

DEFAULT_PRESET = "semisup-cpu"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the classifier run to start from (scarce finetune / scarce supervised)")
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from scarce.models.classifier import load_classifier
    from scarce.supervised import train_supervised

    recipe: list[str] = []
    if not args.resume:
        args.config = args.config or DEFAULT_PRESET
        head = load_classifier(args.run).metadata["head"]
        recipe = ["method=semisup", *architecture_overrides(args.run, "context"), *inherited_budget(args.run, args)]
        recipe += [f"semisup.init={json.dumps(str(args.run))}", f"semisup.head={head}"]
    return execute(args, recipe, lambda *a, **k: train_supervised(*a, **k)[0])


register_command("semisup", run, add_arguments)
