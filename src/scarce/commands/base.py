"""The registry of ``scarce`` sub-commands.

A command is one module that registers a :class:`Command` in :data:`COMMANDS`; the CLI builds
its parser from the registry. ``run(args) -> exit code``; errors the user can fix raise
:class:`scarce.errors.ScarceError` (one line on stderr, exit code 2).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scarce.registry import Registry


@dataclass(frozen=True)
class Command:
    """One sub-command: its handler, its arguments and a one-line summary for ``--help``."""

    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] | None
    summary: str


COMMANDS: Registry[Command] = Registry("command")


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool, what: str = "dataset spec") -> None:
    """``--data SPEC`` (the registered data formats) and ``--download`` (the sets that can fetch
    themselves: Imagenette, CIFAR-10, Flowers-102, Pets-37)."""
    from scarce.data.datasets import SPEC_FORMS

    parser.add_argument("--data", required=required, help=f"{what}: {' | '.join(SPEC_FORMS)}")
    parser.add_argument(
        "--download",
        action="store_true",
        help="fetch a missing imagenette / cifar10 / flowers102 / pets37 dataset into its ROOT (checksummed)",
    )


def register_command(
    name: str, run: Callable[[argparse.Namespace], int], add_arguments: Callable[[argparse.ArgumentParser], None] | None
) -> None:
    """Register ``name``; its summary is the first line of the handler's module docstring after
    the command name (``"``scarce x``: does y"`` -> ``"does y"``), else of the handler's docstring."""
    import sys

    doc = (sys.modules[run.__module__].__doc__ if add_arguments is not None else run.__doc__) or name
    summary = doc.strip().splitlines()[0].split(": ", 1)[-1]
    COMMANDS.register(name)(Command(run, add_arguments, summary))


BUDGET_OPTIONS = {
    "labels_per_class": "data.labels_per_class",
    "label_fraction": "data.label_fraction",
    "val_per_class": "data.val_per_class",
    "label_seed": "data.label_seed",
}
"""``args`` attribute -> config key of the label-budget options (:mod:`scarce.data.budget`)."""


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """``--labels-per-class N | --label-fraction F``, ``--val-per-class V``, ``--label-seed S``."""
    group = parser.add_argument_group("label budget (the rest of the training split stays unlabelled)")
    amount = group.add_mutually_exclusive_group()
    amount.add_argument("--labels-per-class", type=int, help="keep the labels of N training images per class")
    amount.add_argument("--label-fraction", type=float, help="keep the labels of this share of the training images")
    group.add_argument(
        "--val-per-class", type=int, help="of each class's budget, this many validate (default: no validation split)"
    )
    group.add_argument("--label-seed", type=int, help="seed of the labelled subset (default 0)")


def budget_overrides(args: argparse.Namespace) -> list[str]:
    """``data.labels_per_class=N`` ... for the budget options given on the command line."""
    return [
        f"{key}={getattr(args, name)}" for name, key in BUDGET_OPTIONS.items() if getattr(args, name, None) is not None
    ]


SPLIT_KEYS = ("split_seed", "val_fraction", "test_fraction")
"""``data`` keys that decide the splits: a run that continues another (semisup, distill) takes them
over, so that its test split holds none of the other run's training images."""


def inherited_budget(run: str, args: argparse.Namespace) -> list[str]:
    """``data.*`` overrides that give a run the splits and the label budget of ``run`` (the same
    labelled images: a semi-supervised or distilled run of a fine-tuned one), for the budget
    options not given here (``--set`` still overrides any of them)."""
    from scarce.engine.run_dir import RunDirectory

    path = Path(run)
    if not (path.is_dir() and (path / "config.yaml").exists()):
        return []
    data = RunDirectory(path).read_config().get("data", {}) or {}
    given = {name for name in BUDGET_OPTIONS if getattr(args, name, None) is not None}
    if given & {"labels_per_class", "label_fraction"}:  # one amount replaces the other
        given |= {"labels_per_class", "label_fraction"}
    budget = [
        f"{key}={json.dumps(data[key.split('.')[1]])}"
        for name, key in BUDGET_OPTIONS.items()
        if name not in given and data.get(key.split(".")[1]) is not None
    ]
    return [*(f"data.{key}={json.dumps(data[key])}" for key in SPLIT_KEYS if key in data), *budget]
