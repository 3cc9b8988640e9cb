"""One entry point for the networks the methods train: the transformer encoder (SCOTT / ViT
tokens) or an S3L ResNet (feature-map positions as tokens). Both map normalised images
``[B, 3, S, S]`` to tokens ``[B, N, D]`` and expose ``embed_dim``, so methods, probes and the
evaluation suite take either."""

from __future__ import annotations

import json

from torch import nn

from scarce.models.encoder import Encoder, EncoderConfig
from scarce.models.resnet import ResNetBackbone, ResNetConfig

BackboneConfig = EncoderConfig | ResNetConfig


def build_backbone(config: BackboneConfig) -> Encoder | ResNetBackbone:
    """A freshly initialised backbone (uses torch's global RNG: seed it first)."""
    if isinstance(config, ResNetConfig):
        return ResNetBackbone(config)
    return Encoder(config)


def backbone_metadata(backbone: nn.Module) -> dict[str, str]:
    """The safetensors metadata that lets :func:`backbone_from_metadata` rebuild ``backbone``."""
    config = getattr(backbone, "config", None)
    if isinstance(config, ResNetConfig):
        return {"format": "scarce-encoder-v1", "resnet_config": config.model_dump_json()}
    if isinstance(config, EncoderConfig):
        return {"format": "scarce-encoder-v1", "encoder_config": config.model_dump_json()}
    raise TypeError(f"not a scarce backbone: {type(backbone).__name__}")


def config_from_metadata(metadata: dict[str, str]) -> BackboneConfig | None:
    """The backbone config stored by :func:`backbone_metadata`, or None if there is none."""
    if "resnet_config" in metadata:
        return ResNetConfig(**json.loads(metadata["resnet_config"]))
    if "encoder_config" in metadata:
        return EncoderConfig(**json.loads(metadata["encoder_config"]))
    return None
