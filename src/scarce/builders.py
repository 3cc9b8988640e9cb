"""Building a run's parts from its configuration, through the method registry: the method (on a
transformer encoder or an S3L ResNet) and its training views. Nothing here names a method."""

from __future__ import annotations

from collections.abc import Callable

import torch

from scarce.config import ScarceConfig
from scarce.data.views import ViewTransform
from scarce.methods import METHODS, BuildContext, Method


def build_method(
    config: ScarceConfig, num_classes: int = 0, train_size: int | None = None, log: Callable[[str], None] = print
) -> Method:
    """The registered method ``config.method`` with freshly initialised modules (seeded by
    ``run.seed``). ``train_size``: the images it trains on (MoCo caps its queue at it, S3L)."""
    torch.manual_seed(config.run.seed)
    return METHODS.get(config.method).from_config(config, BuildContext(num_classes, train_size, log))


def build_transform(config: ScarceConfig, crop_size: int | None = None) -> ViewTransform:
    """The training view(s) of ``config.method`` at ``crop_size`` (default: the config's)."""
    return METHODS.get(config.method).train_transform(config, crop_size or config.crop_size)
