"""One entry point for the networks the methods train, by name (``backbone.kind``): the
transformer ``encoder`` (SCOTT / ViT tokens) or an S3L ResNet (feature-map positions as tokens).
Every backbone maps normalised images ``[B, 3, S, S]`` to tokens ``[B, N, D]``, exposes
``embed_dim``, ``config`` and ``forward_intermediates``, so methods, probes and the evaluation
suite take any of them.

A new backbone is one module that registers a :class:`BackboneKind` in :data:`BACKBONES`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from torch import nn

from scarce.models.encoder import Encoder, EncoderConfig
from scarce.models.resnet import ResNetBackbone, ResNetConfig
from scarce.registry import Registry

BackboneConfig = EncoderConfig | ResNetConfig
METADATA_FORMAT = "scarce-encoder-v1"


@dataclass(frozen=True)
class BackboneKind:
    """How to build one kind of backbone.

    Attributes:
        module: the ``nn.Module`` class, built as ``module(config)``.
        config_type: its pydantic architecture config.
        metadata_key: the safetensors metadata key that holds the config as JSON.
        from_sections: ``(model section, backbone section) -> config`` of a run's configuration.
        family: ``transformer`` (a fixed token grid; takes a token keep mask) or ``resnet`` (any
            resolution; the ``backbone.cifar_stem`` / ``drop_last_stage`` options).
    """

    module: Callable[[Any], nn.Module]
    config_type: type[BaseModel]
    metadata_key: str
    from_sections: Callable[[Any, Any], BaseModel]
    family: Literal["transformer", "resnet"]


BACKBONES: Registry[BackboneKind] = Registry("backbone")
"""Backbone kinds by name (``backbone.kind``)."""

BACKBONES.register("encoder")(
    BackboneKind(Encoder, EncoderConfig, "encoder_config", lambda model, _: model.encoder_config(), "transformer")
)


def _resnet(arch: Literal["resnet18", "resnet50"]) -> BackboneKind:
    def from_sections(model: Any, section: Any) -> ResNetConfig:
        return ResNetConfig(
            arch=arch, cifar_stem=section.cifar_stem, drop_last_stage=section.drop_last_stage, img_size=model.img_size
        )

    return BackboneKind(ResNetBackbone, ResNetConfig, "resnet_config", from_sections, "resnet")


for _arch in ("resnet18", "resnet50"):
    BACKBONES.register(_arch)(_resnet(_arch))


def _kind_of(config: BaseModel) -> BackboneKind:
    for _, kind in BACKBONES.items():
        if type(config) is kind.config_type:
            return kind
    raise TypeError(f"no registered backbone takes a {type(config).__name__}")


def build_backbone(config: BaseModel) -> nn.Module:
    """A freshly initialised backbone of ``config`` (uses torch's global RNG: seed it first)."""
    return _kind_of(config).module(config)


def backbone_metadata(backbone: nn.Module) -> dict[str, str]:
    """The safetensors metadata that lets :func:`config_from_metadata` rebuild ``backbone``."""
    config = getattr(backbone, "config", None)
    if not isinstance(config, BaseModel):
        raise TypeError(f"not a scarce backbone: {type(backbone).__name__}")
    return {"format": METADATA_FORMAT, _kind_of(config).metadata_key: config.model_dump_json()}


def config_from_metadata(metadata: dict[str, str]) -> BaseModel | None:
    """The backbone config stored by :func:`backbone_metadata`, or None if there is none.

    Raises:
        ValueError: the stored config is not valid JSON or not a valid config (one line).
    """
    for _, kind in BACKBONES.items():
        if kind.metadata_key in metadata:
            try:
                return kind.config_type(**json.loads(metadata[kind.metadata_key]))
            except ValidationError as error:
                problem = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
                raise ValueError(f"invalid {kind.metadata_key} in the metadata: {problem}") from None
            except (json.JSONDecodeError, TypeError) as error:
                problem = str(error).replace("\n", " ")
                raise ValueError(f"invalid {kind.metadata_key} in the metadata: {problem}") from None
    return None
