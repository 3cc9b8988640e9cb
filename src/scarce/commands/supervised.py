"""``scarce supervised``: train the same encoder with labels (from scratch or --init RUN), test once."""

from __future__ import annotations

import argparse

from scarce.commands.pretrain import add_arguments as add_training_arguments
from scarce.commands.pretrain import training_overrides


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser)
    parser.add_argument(
        "--init", help="fine-tune the encoder of this run / checkpoint / weights (default: random init)"
    )
    parser.add_argument("--init-encoder", choices=("context", "target"), default="context")


def run(args: argparse.Namespace) -> int:
    from scarce.config import load_config
    from scarce.pretrain import load_run_config, summary_line
    from scarce.supervised import SUPERVISED_RECIPE, train_supervised

    overrides = list(SUPERVISED_RECIPE) + training_overrides(args)
    if args.init:
        overrides += [f"supervised.init={args.init}", f"supervised.init_encoder={args.init_encoder}"]
    config = (
        load_run_config(args.out, training_overrides(args))
        if args.resume and args.config is None
        else load_config(args.config, overrides)
    )
    result, _ = train_supervised(
        config,
        args.out,
        resume=args.resume,
        stop_after_epoch=args.stop_after_epoch,
        max_minutes=args.max_minutes,
        show_progress=False if args.no_progress else None,
    )
    print(summary_line(result))
    return 0 if result.status != "interrupted" else 130
