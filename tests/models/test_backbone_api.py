"""The timm-style model API is the same for the transformer encoders and the ResNets."""

from __future__ import annotations

import inspect

import pytest
import torch

from scarce.models.encoder import Encoder
from scarce.models.registry import create_encoder
from scarce.models.resnet import ResNetBackbone, ResNetConfig


def test_forward_intermediates_has_one_signature() -> None:
    encoder = inspect.signature(Encoder.forward_intermediates)
    resnet = inspect.signature(ResNetBackbone.forward_intermediates)
    assert list(encoder.parameters) == list(resnet.parameters) == ["self", "images", "keep_mask", "indices"]
    assert encoder.parameters["indices"].default is None and resnet.parameters["indices"].default is None


@pytest.mark.parametrize(
    "backbone",
    [create_encoder("scott-tiny"), ResNetBackbone(ResNetConfig(arch="resnet18", cifar_stem=True, img_size=32))],
    ids=["encoder", "resnet18"],
)
def test_forward_intermediates_follow_the_order_of_indices(backbone: torch.nn.Module) -> None:
    backbone.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        everything = backbone.forward_intermediates(images)
        reordered = backbone.forward_intermediates(images, indices=[-1, 0, -1])
        last = backbone(images)
    assert len(everything) >= 2
    torch.testing.assert_close(everything[-1], last)
    torch.testing.assert_close(reordered[0], last)
    torch.testing.assert_close(reordered[1], everything[0])
    torch.testing.assert_close(reordered[2], last)
    with pytest.raises(ValueError, match="out of range"):
        backbone.forward_intermediates(images, indices=[len(everything)])
