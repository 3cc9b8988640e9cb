"""The ``scarce`` command line.

Every sub-command is a function ``(args) -> exit code`` registered in :func:`build_parser`.
Errors the user can fix raise :class:`scarce.errors.ScarceError`: one line on stderr, exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import scarce
from scarce.errors import ScarceError
from scarce.runtime import environment_info, tune_cpu_allocator


def cmd_info(args: argparse.Namespace) -> int:
    """Print versions, device and threads."""
    info = environment_info()
    info["malloc_tuning"] = str(tune_cpu_allocator())
    width = max(len(key) for key in info)
    for key, value in info.items():
        print(f"{key:<{width}}  {value}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the encoder presets with their token grid and trainable parameters."""
    from scarce.models import count_parameters, create_encoder, list_presets, preset_config

    print(f"{'preset':<18} {'tokenizer':<9} {'px':>4} {'grid':>6} {'D':>4} {'depth':>5} {'heads':>5} {'params':>12}")
    for name in list_presets():
        config = preset_config(name)
        params = count_parameters(create_encoder(name))
        grid = f"{config.grid_size[0]}x{config.grid_size[1]}"
        print(
            f"{name:<18} {config.tokenizer:<9} {config.img_size:>4} {grid:>6} {config.embed_dim:>4} "
            f"{config.depth:>5} {config.num_heads:>5} {params:>12,}"
        )
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    """List the shipped training configurations (use with scarce pretrain -c NAME)."""
    from scarce.config import list_config_presets, load_config

    for name in list_config_presets():
        config = load_config(name)
        model, backbone = config.model, config.backbone
        if backbone.is_resnet:
            network = f"{backbone.kind}{' -layer4' if backbone.drop_last_stage else ''}"
        else:
            network = f"{model.tokenizer} D {model.embed_dim} depth {model.depth}"
        size = f"{model.img_size} px"
        if config.crop_size != model.img_size:  # pretraining / evaluation resolution (S3L)
            size = f"{config.crop_size}/{size}"
        print(
            f"{name:<14} {config.method:<10} {network:<24} {size:<12} "
            f"epochs {config.schedule.epochs:<3} batch {config.run.batch_size}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scarce",
        description="Self-supervised vision representation learning from scarce data (SCOTT + MIM-JEPA, S3L).",
    )
    parser.add_argument("--version", action="version", version=f"scarce {scarce.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from scarce.commands import embed, evaluate, pretrain, supervised

    handlers: dict[
        str, tuple[Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None] | None]
    ] = {
        "info": (cmd_info, None),
        "models": (cmd_models, None),
        "presets": (cmd_presets, None),
        "pretrain": (pretrain.run, pretrain.add_arguments),
        "supervised": (supervised.run, supervised.add_arguments),
        "evaluate": (evaluate.run, evaluate.add_arguments),
        "embed": (embed.run, embed.add_arguments),
    }
    for name, (handler, add_arguments) in handlers.items():
        doc = (handler.__doc__ if add_arguments is None else sys.modules[handler.__module__].__doc__) or ""
        summary = doc.strip().splitlines()[0].split(": ", 1)[-1] if doc.strip() else name
        sub = commands.add_parser(name, help=summary, description=summary)
        if add_arguments is not None:
            add_arguments(sub)
        sub.set_defaults(handler=handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    tune_cpu_allocator()
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.handler(args))
    except ScarceError as error:
        print(f"scarce {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"scarce {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
