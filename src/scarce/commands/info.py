"""Commands that describe the installation: ``info``, ``models`` and ``presets``."""

from __future__ import annotations

import argparse

from scarce.commands.base import register_command
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
    from scarce.methods import METHODS

    for name in list_config_presets():
        config = load_config(name)
        model, backbone = config.model, config.backbone
        size = f"{model.img_size} px"
        if METHODS.get(config.method).architecture_from_init:
            network, size = "the pretrained run's", "the run's"
        elif backbone.is_resnet:
            network = f"{backbone.kind}{' -layer4' if backbone.drop_last_stage else ''}"
        else:
            network = f"{model.tokenizer} D {model.embed_dim} depth {model.depth}"
        if config.crop_size != model.img_size:  # pretraining / evaluation resolution (S3L)
            size = f"{config.crop_size}/{size}"
        print(
            f"{name:<14} {config.method:<10} {network:<24} {size:<12} "
            f"epochs {config.schedule.epochs:<3} batch {config.run.batch_size}"
        )
    return 0


register_command("info", cmd_info, None)
register_command("models", cmd_models, None)
register_command("presets", cmd_presets, None)
