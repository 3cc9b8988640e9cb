"""The supervised method: heads, mixup, the last-stage warm-up switch."""

from __future__ import annotations

import pytest
import torch

from scarce.methods.base import Batch
from scarce.methods.supervised import Supervised, batch_mixer
from scarce.models.backbone import build_backbone
from scarce.models.encoder import EncoderConfig
from scarce.models.probes import MeanPoolLinearHead
from scarce.models.resnet import ResNetConfig


def test_mixup_blends_images_and_targets_with_one_lambda() -> None:
    torch.manual_seed(0)
    images = torch.randn(4, 3, 8, 8)
    labels = torch.tensor([0, 1, 2, 1])
    mixer = batch_mixer(3, mixup_alpha=1.0, cutmix_alpha=0.0)
    assert mixer is not None
    mixed, targets = mixer(images, labels)
    assert targets.shape == (4, 3)
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    lam = float(targets[1, 1])  # torchvision's MixUp blends image i with image i - 1: 1 (class 1) with 0 (class 0)
    assert 0.0 <= lam <= 1.0
    torch.testing.assert_close(mixed[1], lam * images[1] + (1 - lam) * images[0])
    torch.testing.assert_close(targets[1, 0], torch.tensor(1 - lam))


def test_cutmix_pastes_a_box_and_weights_targets_by_its_area() -> None:
    torch.manual_seed(1)
    images = torch.stack([torch.zeros(3, 16, 16), torch.ones(3, 16, 16)])
    mixer = batch_mixer(2, mixup_alpha=0.0, cutmix_alpha=1.0)
    assert mixer is not None and batch_mixer(2, 0.0, 0.0) is None
    mixed, targets = mixer(images, torch.tensor([0, 1]))
    pasted = float(mixed[0].mean())  # image 0 (zeros) gets a box of image 1 (ones)
    torch.testing.assert_close(targets[0], torch.tensor([1 - pasted, pasted]))


def test_linear_head_init_and_resnet_logits() -> None:
    head = MeanPoolLinearHead(16, 5)
    assert torch.count_nonzero(head.head.bias) == 0
    assert 0.005 < float(head.head.weight.detach().std()) < 0.02
    method = Supervised(build_backbone(ResNetConfig(img_size=32)), 5, "linear", mixup_alpha=1.0)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    assert method.logits(images).shape == (4, 5)
    output = method(Batch(views=[images], labels=torch.tensor([0, 1, 2, 3])))
    assert torch.isfinite(output.loss)
    output.loss.backward()


def test_warm_up_switches_at_the_given_epoch() -> None:
    backbone = build_backbone(ResNetConfig(img_size=32))
    method = Supervised(backbone, 3, "linear", warmup_epochs=2)
    method.begin_epoch(0)
    assert backbone.frozen_stages and not any(p.requires_grad for p in backbone.layer1.parameters())
    assert all(p.requires_grad for p in backbone.layer4.parameters())  # type: ignore[union-attr]
    method.begin_epoch(1)
    assert backbone.frozen_stages
    method.begin_epoch(2)
    assert not backbone.frozen_stages and all(p.requires_grad for p in backbone.parameters())


def test_warm_up_needs_a_resnet() -> None:
    encoder = build_backbone(EncoderConfig(img_size=32, stride=8, embed_dim=32, depth=1, num_heads=2))
    with pytest.raises(ValueError, match="ResNet"):
        Supervised(encoder, 3, warmup_epochs=1)
