"""``scarce finetune``: fine-tune a pretrained encoder end to end (layer decay, MixUp/CutMix, EMA), test once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scarce.commands.base import register_command
from scarce.commands.pretrain import add_arguments as add_training_arguments
from scarce.commands.pretrain import execute

DEFAULT_PRESET = "finetune-cpu"
ARCHITECTURE_FIELDS = (
    "tokenizer",
    "img_size",
    "embed_dim",
    "depth",
    "num_heads",
    "stride",
    "ffn",
    "mlp_ratio",
    "num_registers",
    "in_chans",
)
"""Encoder fields a fine-tuning run takes from the pretrained run (its regularisation is the recipe's)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run",
        help="the pretrained run directory, checkpoint or encoder .safetensors (with --random-init, a preset "
        "name also gives the architecture)",
    )
    add_training_arguments(parser)
    parser.add_argument("--encoder", choices=("context", "target"), default="context", help="which encoder of RUN")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="the same recipe and architecture from random init (the scratch baseline)",
    )


def architecture_overrides(source: str, which: str, preset_allowed: bool = False) -> list[str]:
    """``model.*`` / ``backbone.*`` overrides that give a run the architecture of ``source``'s encoder
    (with ``preset_allowed``, ``source`` may also name a preset: its backbone, for a run from random init)."""
    from scarce.config import list_config_presets, load_config
    from scarce.errors import ConfigError
    from scarce.eval.encoders import load_encoder
    from scarce.models.resnet import ResNetConfig

    if not Path(source).exists() and source in list_config_presets():
        if not preset_allowed:
            raise ConfigError(f"{source} is a preset, not a pretrained run: it has no weights (--random-init)")
        network = load_config(source).network_config()
    else:
        network = load_encoder(source, which).encoder.config  # type: ignore[arg-type,assignment]
    if isinstance(network, ResNetConfig):
        values = {
            "backbone.kind": network.arch,
            "backbone.cifar_stem": network.cifar_stem,
            "backbone.drop_last_stage": network.drop_last_stage,
            "model.img_size": network.img_size,
        }
    else:
        dumped = network.model_dump()
        values = {"backbone.kind": "encoder", **{f"model.{name}": dumped[name] for name in ARCHITECTURE_FIELDS}}
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def run(args: argparse.Namespace) -> int:
    from scarce.supervised import train_supervised

    recipe: list[str] = []
    if not args.resume:
        args.config = args.config or DEFAULT_PRESET
        recipe = ["method=finetune", *architecture_overrides(args.run, args.encoder, preset_allowed=args.random_init)]
        if not args.random_init:
            recipe += [f"finetune.init={json.dumps(str(args.run))}", f"finetune.init_encoder={args.encoder}"]
    return execute(args, recipe, lambda *a, **k: train_supervised(*a, **k)[0])


register_command("finetune", run, add_arguments)
