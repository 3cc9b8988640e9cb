"""``scarce evaluate``: frozen-feature probes with validation selection and one test pass."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from scarce.commands.base import BUDGET_OPTIONS, add_budget_arguments, add_data_arguments, register_command

if TYPE_CHECKING:
    from scarce.evaluate import EvaluationConfig

DEFAULT_FAMILIES = "attentive,linear,knn,fewshot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", nargs="?", help="run directory, checkpoint (.pt) or weights (.safetensors)")
    add_data_arguments(parser, required=True, what="labelled dataset spec")
    add_budget_arguments(parser)  # default: the evaluated run's own budget
    parser.add_argument(
        "--encoder",
        choices=("context", "target"),
        default="context",
        help="which encoder of a run (default: context, as in the paper)",
    )
    parser.add_argument(
        "--probes", default=DEFAULT_FAMILIES, help=f"comma-separated probe families (default {DEFAULT_FAMILIES})"
    )
    parser.add_argument("--epochs", type=int, help="attentive-probe epochs (default 100, the paper's)")
    parser.add_argument("--batch-size", type=int, help="attentive-probe batch size (default 64)")
    parser.add_argument("--no-augment", action="store_true", help="train attentive probes on un-augmented images")
    parser.add_argument("--random-init", action="store_true", help="evaluate a random-init encoder (the floor)")
    parser.add_argument("-c", "--config", help="with --random-init and no SOURCE: architecture preset/YAML")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="fp32",
        help="frozen-encoder forward precision (default fp32; bf16 autocast is faster on a GPU but can blur "
        "small differences between images' features)",
    )
    parser.add_argument("--workers", type=int, default=0, help="loader processes for probe training")
    parser.add_argument("--out", help="where results.json / results.md go (default: the run directory)")
    parser.add_argument("--no-progress", action="store_true")


def _settings(args: argparse.Namespace) -> EvaluationConfig:
    from pydantic import ValidationError

    from scarce.config import describe_validation_error
    from scarce.errors import ConfigError
    from scarce.evaluate import EvaluationConfig

    probes = tuple(name.strip() for name in args.probes.split(",") if name.strip())
    options: dict[str, object] = {
        "probes": probes,
        "seed": args.seed,
        "device": args.device,
        "precision": args.precision,
        "num_workers": args.workers,
        "augment": not args.no_augment,
        "download": args.download,
    }
    for name in BUDGET_OPTIONS:  # the probes train on the budget's labels only
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    if args.epochs is not None:
        options["epochs"] = args.epochs
        options["warmup_epochs"] = min(20.0, args.epochs / 5)  # the paper's 20/100 share
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    try:
        return EvaluationConfig(**options)  # type: ignore[arg-type]
    except ValidationError as error:
        raise ConfigError(f"invalid evaluation settings: {describe_validation_error(error)}") from None


def run(args: argparse.Namespace) -> int:
    import os

    if int(os.environ.get("RANK", "0")) > 0:  # under torchrun: rank 0 evaluates, the others have nothing to do
        return 0
    from scarce.config import load_config
    from scarce.errors import ConfigError
    from scarce.eval.encoders import load_encoder, random_encoder
    from scarce.evaluate import evaluate

    settings = _settings(args)
    if args.random_init:
        if args.source:
            architecture = load_encoder(args.source, args.encoder)
            loaded = random_encoder(architecture.encoder.config, args.seed)
            loaded.run_dir = architecture.run_dir  # same splits as the run it is the floor of
        elif args.config:
            loaded = random_encoder(load_config(args.config).network_config(), args.seed)
        else:
            raise ConfigError("--random-init needs a SOURCE run (for its architecture) or -c PRESET")
    elif args.source:
        loaded = load_encoder(args.source, args.encoder)
    else:
        raise ConfigError("give a run directory, checkpoint or weights file to evaluate (or --random-init)")
    out = args.out
    if out is None:
        if loaded.run_dir is None:
            raise ConfigError("no run directory to write into: pass --out DIR")
        out = Path(loaded.run_dir) / ("eval-random-init" if args.random_init else f"eval-{args.encoder}")
    evaluate(loaded, args.data, settings, out, show_progress=False if args.no_progress else None)
    return 0


register_command("evaluate", run, add_arguments)
