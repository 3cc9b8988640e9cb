"""ResNet-18 / ResNet-50 backbones for S3L (Cao & Wu, "Rethinking Self-supervised Learning: Small is
Beautiful", arXiv 2103.13559).

The S3L *small architecture* is a ResNet with its last stage (``conv5`` = torchvision's ``layer4``)
removed: ResNet-50 then gives 1024-d features with about 20% fewer MACs and 64% fewer parameters at
224 px. Before fine-tuning, ``conv5`` is added back at random initialisation and warmed up with
``conv1``-``conv4`` frozen (:meth:`ResNetBackbone.add_last_stage`,
:meth:`ResNetBackbone.freeze_all_but_last_stage`).

The backbone returns *tokens*: ``forward(images [B, 3, H, W]) -> [B, h·w, C]``, the last feature map
flattened row-major with channels last, so that the probes written for transformer tokens apply
unchanged. :meth:`ResNetBackbone.pooled` gives the usual global-average-pooled ``[B, C]`` feature.

The layers are torchvision's (``torchvision.models.resnet18/resnet50(weights=None)``) with their
initialisation; ``fc`` and ``avgpool`` are dropped.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import torch
import torchvision
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from scarce.flops import count_flops
from scarce.models.layers import resolve_indices

ResNetArch = Literal["resnet18", "resnet50"]

# Output channels of layer1..layer4 per block expansion (1 for BasicBlock, 4 for Bottleneck).
_STAGE_PLANES = (64, 128, 256, 512)
_EXPANSION = {"resnet18": 1, "resnet50": 4}


class ResNetConfig(BaseModel):
    """Architecture of a :class:`ResNetBackbone`.

    Attributes:
        arch: ``"resnet18"`` or ``"resnet50"`` (torchvision's definitions).
        cifar_stem: a 3x3 stride-1 ``conv1`` and no max-pool (total stride 8 instead of 32), as in the
            SimCLR / MoCo CIFAR variants, for 32 px images.
        drop_last_stage: no ``layer4`` (``conv5``): the S3L small architecture.
        img_size: the evaluation resolution; not used by the layers (ResNets take any size), kept so
            that saved weights say what they expect.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arch: ResNetArch = "resnet18"
    cifar_stem: bool = False
    drop_last_stage: bool = False
    img_size: int = Field(224, ge=8)


def _torchvision_resnet(arch: ResNetArch) -> torchvision.models.ResNet:
    """A freshly initialised torchvision ResNet (with its ``fc``, which callers discard)."""
    builder = torchvision.models.resnet18 if arch == "resnet18" else torchvision.models.resnet50
    return builder(weights=None)


def _to_tokens(feature_map: Tensor) -> Tensor:
    """``[B, C, h, w] -> [B, h·w, C]``, row-major over ``(h, w)``."""
    return feature_map.flatten(2).transpose(1, 2)


class ResNetBackbone(nn.Module):
    """A torchvision ResNet without ``avgpool`` and ``fc``, returning tokens.

    Attributes:
        config: the :class:`ResNetConfig` it currently implements (updated by :meth:`add_last_stage`).
        embed_dim: output width ``C``: 512 / 2048 (resnet18 / resnet50), 256 / 1024 without ``layer4``.
        stem: ``nn.Sequential`` of ``conv1, bn1, relu, maxpool`` (7x7 stride 2 + 3x3 stride-2 max-pool,
            total stride 4), or ``conv1, bn1, relu`` with a 3x3 stride-1 ``conv1`` for the CIFAR stem.
        layer1, layer2, layer3: torchvision's stages (strides 1, 2, 2).
        layer4: torchvision's last stage (stride 2), or ``None`` when ``config.drop_last_stage``.
        frozen_stages: True after :meth:`freeze_all_but_last_stage` until :meth:`unfreeze`.
    """

    layer4: nn.Sequential | None

    def __init__(self, config: ResNetConfig) -> None:
        super().__init__()
        self.config = config
        net = _torchvision_resnet(config.arch)
        if config.cifar_stem:
            conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            # torchvision's initialisation of every conv in a ResNet.
            nn.init.kaiming_normal_(conv1.weight, mode="fan_out", nonlinearity="relu")
            self.stem = nn.Sequential(OrderedDict(conv1=conv1, bn1=net.bn1, relu=net.relu))
        else:
            self.stem = nn.Sequential(OrderedDict(conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool))
        self.layer1 = net.layer1
        self.layer2 = net.layer2
        self.layer3 = net.layer3
        self.layer4 = None if config.drop_last_stage else net.layer4
        self.embed_dim = self._stage_channels()[-1]
        self.frozen_stages = False

    # ------------------------------------------------------------------ structure

    def _stages(self) -> list[nn.Module]:
        """The present stages ``layer1 .. layer3[, layer4]``, in order."""
        stages: list[nn.Module] = [self.layer1, self.layer2, self.layer3]
        if self.layer4 is not None:
            stages.append(self.layer4)
        return stages

    @property
    def num_layers(self) -> int:
        """Layer ids of :meth:`layer_id`: ``0`` (stem) to the number of stages (3, or 4 with ``layer4``)."""
        return len(self._stages()) + 1

    def layer_id(self, parameter_name: str) -> int:
        """The depth of a parameter for layer-wise LR decay, per stage: 0 for the stem, ``k`` for ``layerk``."""
        first = parameter_name.split(".")[0]
        return int(first.removeprefix("layer")) if first.startswith("layer") else 0

    def _stage_channels(self) -> list[int]:
        expansion = _EXPANSION[self.config.arch]
        return [planes * expansion for planes in _STAGE_PLANES[: len(self._stages())]]

    def _frozen_modules(self) -> list[nn.Module]:
        return [self.stem, self.layer1, self.layer2, self.layer3]

    # ------------------------------------------------------------------ forward

    def _feature_map(self, images: Tensor) -> Tensor:
        x = self.stem(images)
        for stage in self._stages():
            x = stage(x)
        return x

    def forward(self, images: Tensor, keep_mask: Tensor | None = None) -> Tensor:
        """Tokens of the last feature map.

        Args:
            images: ``[B, 3, H, W]``.
            keep_mask: must be ``None``; a ResNet cannot drop tokens.

        Returns:
            ``[B, h·w, C]`` with ``C = embed_dim`` and ``(h, w)`` the last map's size (``H / 32`` with the
            standard stem and all four stages, ``H / 16`` without ``layer4``; ``H / 8`` and ``H / 4``
            with the CIFAR stem), row-major.
        """
        if keep_mask is not None:
            raise ValueError("ResNets cannot take a token mask")
        return _to_tokens(self._feature_map(images))

    def pooled(self, images: Tensor) -> Tensor:
        """Global average of the last feature map: ``[B, 3, H, W] -> [B, C]``."""
        return self._feature_map(images).mean(dim=(2, 3))

    def forward_intermediates(
        self, images: Tensor, keep_mask: Tensor | None = None, indices: list[int] | None = None
    ) -> list[Tensor]:
        """Token maps of the requested stages (the signature of :meth:`Encoder.forward_intermediates`).

        Args:
            images: ``[B, 3, H, W]``.
            keep_mask: must be ``None``; a ResNet cannot drop tokens.
            indices: stage indices into the present stages ``[layer1, layer2, layer3(, layer4)]``,
                Python-style: ``-1`` is the last present stage, ``0`` is ``layer1``; default: all.

        Returns:
            One ``[B, h_i·w_i, C_i]`` tensor per index, in the order of ``indices``.

        Raises:
            ValueError: a keep mask, or an index out of range.
        """
        if keep_mask is not None:
            raise ValueError("ResNets cannot take a token mask")
        wanted = resolve_indices(indices, len(self._stages()), "stage")
        outputs: dict[int, Tensor] = {}
        x = self.stem(images)
        for position, stage in enumerate(self._stages()[: max(wanted) + 1]):
            x = stage(x)
            if position in wanted:
                outputs[position] = _to_tokens(x)
        return [outputs[position] for position in wanted]

    # ------------------------------------------------------------------ S3L: add conv5 back, warm it up

    def add_last_stage(self) -> None:
        """Add a freshly, randomly initialised ``layer4`` (torchvision's construction and init).

        Updates ``config`` (``drop_last_stage=False``) and ``embed_dim``. The new stage is trainable and
        follows the training mode, device and dtype of the backbone.

        Raises:
            ValueError: the backbone already has a ``layer4``.
        """
        if self.layer4 is not None:
            raise ValueError("the backbone already has its last stage (layer4)")
        layer4 = _torchvision_resnet(self.config.arch).layer4
        reference = next(self.layer3.parameters())
        layer4.to(device=reference.device, dtype=reference.dtype)
        layer4.train(self.training)
        self.layer4 = layer4
        self.config = self.config.model_copy(update={"drop_last_stage": False})
        self.embed_dim = self._stage_channels()[-1]

    def freeze_all_but_last_stage(self) -> None:
        """Freeze ``stem`` and ``layer1``-``layer3`` (S3L's conv5 warm-up).

        Their parameters stop requiring gradients and their BatchNorm layers stay in eval mode (running
        statistics untouched), also across later :meth:`train` calls, until :meth:`unfreeze`. Their
        ``.grad`` is cleared, so optimizers (which skip parameters without a gradient) leave them alone
        even with weight decay or momentum buffers from earlier steps.

        Raises:
            ValueError: there is no ``layer4`` to train (call :meth:`add_last_stage` first).
        """
        if self.layer4 is None:
            raise ValueError("no last stage to train: call add_last_stage() first")
        for module in self._frozen_modules():
            module.requires_grad_(False)
            module.eval()
            for parameter in module.parameters():
                parameter.grad = None  # so that optimizers skip them (no weight decay or momentum step)
        self.frozen_stages = True

    def unfreeze(self) -> None:
        """Undo :meth:`freeze_all_but_last_stage`: everything trainable, frozen parts back to ``self.training``."""
        for module in self._frozen_modules():
            module.requires_grad_(True)
            module.train(self.training)
        self.frozen_stages = False

    def train(self, mode: bool = True) -> ResNetBackbone:
        """``nn.Module.train``, but frozen stages stay in eval mode while :attr:`frozen_stages`."""
        super().train(mode)
        if self.frozen_stages:
            for module in self._frozen_modules():
                module.eval()
        return self


def resnet_flops_per_image(config: ResNetConfig, img_size: int | None = None) -> int:
    """FLOPs (2 per multiply-accumulate, as ``torch.utils.flop_counter.FlopCounterMode`` counts) of
    one forward of one ``[1, 3, img_size, img_size]`` image; ``img_size`` defaults to ``config.img_size``.

    Only convolutions (and matmuls) count; BatchNorm, ReLU and pooling are free, as usual for MACs.
    """
    side = config.img_size if img_size is None else img_size
    backbone = ResNetBackbone(config).eval()
    image = torch.zeros(1, 3, side, side)

    def step() -> None:
        with torch.no_grad():
            backbone(image)

    return count_flops(step)
