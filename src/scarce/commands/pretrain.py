"""``scarce pretrain``: self-supervised pretraining into a run directory."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

from scarce.commands.base import add_budget_arguments, add_data_arguments, budget_overrides, register_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", help="preset name (scarce presets) or YAML file; default with --resume: the run's"
    )
    add_data_arguments(parser, required=False)
    add_budget_arguments(parser)
    parser.add_argument("-o", "--out", required=True, help="run directory (created; refused if it holds a run)")
    parser.add_argument("--epochs", type=int, help="schedule.epochs")
    parser.add_argument("--batch-size", type=int, help="run.batch_size")
    parser.add_argument("--limit", type=int, help="use a seeded, stratified subset of N training images")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N | mps")
    parser.add_argument("--seed", type=int, help="run.seed")
    parser.add_argument("--workers", type=int, help="data loader processes (data.num_workers)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. --set masking.ratio=0.75 (repeatable)",
    )
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--stop-after-epoch", type=int, help="stop cleanly (with a checkpoint) after this epoch")
    parser.add_argument("--max-minutes", type=float, help="stop cleanly after the epoch that passes this time")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (one line per epoch)")


def training_overrides(args: argparse.Namespace) -> list[str]:
    """Config overrides from the common training options (``--epochs`` -> ``schedule.epochs`` ...)."""
    options = {
        "data.spec": args.data,
        "data.download": True if args.download else None,
        "schedule.epochs": args.epochs,
        "run.batch_size": args.batch_size,
        "data.subset_total": args.limit,
        "run.device": args.device,
        "run.seed": args.seed,
        "data.num_workers": args.workers,
    }
    named = [f"{key}={value}" for key, value in options.items() if value is not None]
    return named + budget_overrides(args) + list(args.overrides)


def execute(args: argparse.Namespace, recipe: Sequence[str], train: Callable[..., Any]) -> int:
    """Build the config (``recipe`` overrides first, then the command line's), run ``train`` and
    turn its outcome into an exit code: 0 done or stopped, 1 diverged, 130 interrupted."""
    import os

    from scarce.config import load_config
    from scarce.engine.loop import TrainingDivergedError
    from scarce.errors import ConfigError
    from scarce.pretrain import load_run_config, summary_line

    overrides = training_overrides(args)
    if args.resume and args.config is None:
        config = load_run_config(args.out, overrides)
    else:
        config = load_config(args.config, [*recipe, *overrides])
    if args.epochs is not None and config.stages:
        raise ConfigError(
            f"--epochs {args.epochs} sets schedule.epochs, which a multi-stage config ignores: set each stage's "
            "epochs instead (--set 'stages=[{epochs: 50, crop_size: 56}, {epochs: 50}]')"
        )
    os.environ["SCARCE_COMMAND"] = "scarce " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
    try:
        result = train(
            config,
            args.out,
            resume=args.resume,
            stop_after_epoch=args.stop_after_epoch,
            max_minutes=args.max_minutes,
            show_progress=False if args.no_progress else None,
        )
    except TrainingDivergedError as error:
        print(f"scarce {args.command}: {error}", file=sys.stderr)
        return 1
    print(summary_line(result))
    return 128 + int(signal.SIGINT) if result.status == "interrupted" else 0


def run(args: argparse.Namespace) -> int:
    from scarce.pretrain import pretrain

    return execute(args, (), pretrain)


register_command("pretrain", run, add_arguments)
