"""Building a run's parts from its configuration: the method (MIM-JEPA, MoCo v2, SimCLR, BYOL or
supervised, on a transformer encoder or an S3L ResNet) and the training views."""

from __future__ import annotations

import torch
from torch import nn

from scarce.config import ScarceConfig, config_differences
from scarce.data.transforms import AlignedTwoViewTransform, PhotometricConfig, SingleViewTransform, TwoCropTransform
from scarce.errors import ConfigError
from scarce.methods.base import Method
from scarce.methods.byol import BYOL
from scarce.methods.mimjepa import MIMJEPA
from scarce.methods.moco import MoCoV2
from scarce.methods.simclr import SimCLR
from scarce.methods.supervised import Supervised
from scarce.models.backbone import build_backbone
from scarce.models.encoder import Encoder
from scarce.models.predictor import build_predictor
from scarce.models.resnet import ResNetBackbone, ResNetConfig


def _supervised_backbone(config: ScarceConfig) -> nn.Module:
    """A random-init backbone, or the ``supervised.init`` run's encoder; a pretrained S3L backbone
    without its last stage gets a fresh ``layer4`` when the run's backbone has one."""
    backbone = build_backbone(config.network_config())
    if config.supervised.init is None:
        return backbone
    from scarce.eval.encoders import load_encoder

    pretrained = load_encoder(config.supervised.init, config.supervised.init_encoder).encoder
    wanted = config.network_config()
    if isinstance(pretrained, ResNetBackbone) and isinstance(wanted, ResNetConfig):
        if pretrained.config.drop_last_stage and not wanted.drop_last_stage:
            pretrained.add_last_stage()  # S3L: conv5 comes back at random init (seeded by run.seed)
        differences = config_differences(
            pretrained.config.model_dump(exclude={"img_size"}), wanted.model_dump(exclude={"img_size"})
        )
        pretrained.config = wanted  # fine-tuned at this run's resolution (a ResNet takes any)
    else:
        differences = config_differences(pretrained.config.model_dump(), wanted.model_dump())
    if differences:
        raise ConfigError(
            f"supervised.init {config.supervised.init}: its backbone differs from this run's: " + "; ".join(differences)
        )
    return pretrained


def build_method(config: ScarceConfig, num_classes: int = 0, train_size: int | None = None) -> Method:
    """The method of ``config`` with freshly initialised modules (seeded by ``run.seed``); a
    supervised run with ``supervised.init`` starts from that run's encoder weights. ``train_size``
    caps MoCo's queue at the number of training images (S3L)."""
    torch.manual_seed(config.run.seed)
    if config.method == "supervised":
        supervised = config.supervised
        return Supervised(
            _supervised_backbone(config),
            num_classes,
            supervised.head,
            supervised.label_smoothing,
            mixup_alpha=supervised.mixup_alpha,
            warmup_epochs=supervised.warmup_last_stage_epochs,
        )
    if config.is_contrastive:
        return build_contrastive(config, build_backbone(config.network_config()), train_size)
    encoder = Encoder(config.model.encoder_config())
    predictor = build_predictor(
        encoder.config,
        depth=config.model.predictor_depth,
        init=config.model.predictor_init,
        masked_input=config.model.predictor_masked_input,
    )
    return MIMJEPA(encoder, predictor, target_centering=config.mimjepa.target_centering)


def build_contrastive(config: ScarceConfig, backbone: nn.Module, train_size: int | None) -> Method:
    """MoCo v2, SimCLR or BYOL on ``backbone`` with the ``contrastive`` section's settings."""
    options = config.contrastive
    if config.method == "mocov2":
        queue = options.queue_size if train_size is None else min(options.queue_size, train_size)
        return MoCoV2(
            backbone,
            queue_size=queue,
            temperature=options.temperature,
            projection_hidden=options.projection_hidden,
            projection_dim=options.projection_dim,
            shuffle_bn_splits=options.shuffle_bn_splits,
        )
    if config.method == "simclr":
        return SimCLR(backbone, options.temperature, options.projection_hidden, options.projection_dim)
    return BYOL(backbone, options.projection_hidden, options.projection_dim, options.prediction_hidden)


ViewTransform = AlignedTwoViewTransform | SingleViewTransform | TwoCropTransform


def build_transform(config: ScarceConfig, crop_size: int | None = None) -> ViewTransform:
    """The training view(s) at ``crop_size`` (default: the config's): two aligned views for
    MIM-JEPA, two independent crops for the contrastive methods, one view for supervised training."""
    aug = config.augmentation
    photometric = PhotometricConfig(
        p=aug.photometric_p,
        jitter_p=aug.jitter_p,
        brightness=aug.brightness,
        contrast=aug.contrast,
        saturation=aug.saturation,
        hue=aug.hue,
        grayscale_p=aug.grayscale_p,
        blur_p=aug.blur_p,
        blur_kernel=aug.blur_kernel,
        blur_sigma=aug.blur_sigma,
    )
    geometry = {"scale": aug.crop_scale, "ratio": aug.crop_ratio, "flip_p": aug.flip_p}
    size = crop_size or config.crop_size
    if config.method == "supervised":
        return SingleViewTransform(size, photometric=photometric, geometry=aug.geometry, **geometry)  # type: ignore[arg-type]
    if config.is_contrastive:
        return TwoCropTransform(SingleViewTransform(size, photometric=photometric, **geometry))  # type: ignore[arg-type]
    return AlignedTwoViewTransform(size, mode=aug.mode, photometric=photometric, **geometry)  # type: ignore[arg-type]
