"""``scarce semisup``: self-train a classifier run on its unlabelled images with confident pseudo-labels, test once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scarce.commands.base import BUDGET_OPTIONS, register_command
from scarce.commands.finetune import architecture_overrides
from scarce.commands.pretrain import add_arguments as add_training_arguments
from scarce.commands.pretrain import execute

DEFAULT_PRESET = "semisup-cpu"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="the classifier run to start from (scarce finetune / scarce supervised)")
    add_training_arguments(parser)


def inherited_budget(run: str, args: argparse.Namespace) -> list[str]:
    """The classifier run's label budget (same labelled images), for the options not given here."""
    from scarce.engine.run_dir import RunDirectory

    path = Path(run)
    if not (path.is_dir() and (path / "config.yaml").exists()):
        return []
    data = RunDirectory(path).read_config().get("data", {}) or {}
    given = {name for name in BUDGET_OPTIONS if getattr(args, name, None) is not None}
    if given & {"labels_per_class", "label_fraction"}:  # one amount replaces the other
        given |= {"labels_per_class", "label_fraction"}
    return [
        f"{key}={json.dumps(data[key.split('.')[1]])}"
        for name, key in BUDGET_OPTIONS.items()
        if name not in given and data.get(key.split(".")[1]) is not None
    ]


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
