"""S3L ResNet backbones: widths, token grids, parameter / MAC claims, conv5 add-back and frozen warm-up."""

from __future__ import annotations

import pytest
import torch
import torchvision
from pydantic import ValidationError
from torch import nn

from scarce.models.resnet import ResNetBackbone, ResNetConfig, resnet_flops_per_image

# Well-known architecture facts: widths of the last stage (BasicBlock / Bottleneck), strides.
FULL_WIDTH = {"resnet18": 512, "resnet50": 2048}
STEM_STRIDE = {False: 4, True: 1}  # 7x7/2 conv + 3x3/2 max-pool, or the CIFAR 3x3/1 conv
STAGE_STRIDES = (1, 2, 2, 2)  # layer1..layer4


def _total_stride(cifar_stem: bool, num_stages: int) -> int:
    stride = STEM_STRIDE[cifar_stem]
    for s in STAGE_STRIDES[:num_stages]:
        stride *= s
    return stride


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(**kwargs: object) -> ResNetBackbone:
    return ResNetBackbone(ResNetConfig(**kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("drop_last_stage", [False, True])
@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_embed_dim_and_token_width(arch: str, drop_last_stage: bool) -> None:
    backbone = _build(arch=arch, drop_last_stage=drop_last_stage).eval()
    expected = FULL_WIDTH[arch] // 2 if drop_last_stage else FULL_WIDTH[arch]
    assert backbone.embed_dim == expected
    assert (backbone.layer4 is None) == drop_last_stage
    with torch.no_grad():
        tokens = backbone(torch.randn(1, 3, 64, 64))
    assert tokens.shape[0] == 1
    assert tokens.shape[-1] == expected


@pytest.mark.parametrize(
    ("cifar_stem", "img_size"),
    [(False, 64), (True, 32)],
)
@pytest.mark.parametrize("drop_last_stage", [False, True])
def test_token_count_follows_strides(cifar_stem: bool, img_size: int, drop_last_stage: bool) -> None:
    backbone = _build(cifar_stem=cifar_stem, drop_last_stage=drop_last_stage, img_size=img_size).eval()
    side = img_size // _total_stride(cifar_stem, 3 if drop_last_stage else 4)
    with torch.no_grad():
        tokens = backbone(torch.randn(2, 3, img_size, img_size))
    assert tokens.shape == (2, side * side, backbone.embed_dim)


def test_cifar_stem_structure() -> None:
    backbone = _build(cifar_stem=True)
    conv1 = backbone.stem.conv1
    assert conv1.kernel_size == (3, 3)
    assert conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in backbone.stem.modules())
    assert any(isinstance(m, nn.MaxPool2d) for m in _build().stem.modules())


def test_tokens_are_row_major_channels_last() -> None:
    backbone = _build(cifar_stem=True, drop_last_stage=True).eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        feature_map = backbone.layer3(backbone.layer2(backbone.layer1(backbone.stem(images))))
        tokens = backbone(images)
    b, c, h, w = feature_map.shape
    assert torch.equal(tokens.reshape(b, h, w, c), feature_map.permute(0, 2, 3, 1))


def test_resnet18_parameter_counts() -> None:
    reference = torchvision.models.resnet18(weights=None)
    full = _build(arch="resnet18")
    small = _build(arch="resnet18", drop_last_stage=True)
    assert _count(full) == _count(reference) - _count(reference.fc)
    assert _count(full) - _count(small) == _count(reference.layer4)


def test_resnet50_s3l_parameter_and_mac_reduction() -> None:
    """S3L: removing conv5 from ResNet-50 saves ~64% of the parameters and ~20% of the MACs at 224 px."""
    full_config = ResNetConfig(arch="resnet50")
    small_config = ResNetConfig(arch="resnet50", drop_last_stage=True)
    reference = torchvision.models.resnet50(weights=None)
    full_params = _count(ResNetBackbone(full_config))
    small_params = _count(ResNetBackbone(small_config))
    assert full_params == _count(reference) - _count(reference.fc)
    assert full_params - small_params == _count(reference.layer4)
    param_reduction = 1 - small_params / full_params
    assert param_reduction == pytest.approx(0.64, abs=0.02)

    full_flops = resnet_flops_per_image(full_config, 224)
    small_flops = resnet_flops_per_image(small_config, 224)
    assert 0 < small_flops < full_flops
    assert 0.15 <= 1 - small_flops / full_flops <= 0.25


def test_flops_scale_with_resolution_and_default_to_config() -> None:
    config = ResNetConfig(cifar_stem=True, drop_last_stage=True, img_size=16)
    small = resnet_flops_per_image(config)
    assert small == resnet_flops_per_image(config, 16)
    # Convolutions only: FLOPs scale exactly with the number of pixels.
    assert resnet_flops_per_image(config, 32) == 4 * small


def test_pooled_is_token_mean() -> None:
    backbone = _build(cifar_stem=True).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pooled = backbone.pooled(images)
        tokens = backbone(images)
    assert pooled.shape == (2, backbone.embed_dim)
    torch.testing.assert_close(pooled, tokens.mean(1))


def test_keep_mask_is_rejected() -> None:
    backbone = _build(cifar_stem=True).eval()
    images = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="token mask"):
        backbone(images, keep_mask=torch.ones(1, 16, dtype=torch.bool))


@pytest.mark.parametrize("drop_last_stage", [False, True])
def test_forward_intermediates(drop_last_stage: bool) -> None:
    backbone = _build(cifar_stem=True, drop_last_stage=drop_last_stage).eval()
    num_stages = 3 if drop_last_stage else 4
    img = 32
    images = torch.randn(2, 3, img, img)
    expansion = backbone.embed_dim // (64 * 2 ** (num_stages - 1))
    indices = [-1, -2, -num_stages, 0]
    with torch.no_grad():
        outputs = backbone.forward_intermediates(images, indices=indices)
        last = backbone(images)
    assert len(outputs) == len(indices)
    for index, out in zip(indices, outputs, strict=True):
        position = index % num_stages
        side = img // _total_stride(True, position + 1)
        assert out.shape == (2, side * side, 64 * 2**position * expansion)
    torch.testing.assert_close(outputs[0], last)
    torch.testing.assert_close(outputs[2], outputs[3])
    for bad in (num_stages, -num_stages - 1):
        with pytest.raises(ValueError, match="out of range"):
            backbone.forward_intermediates(images, indices=[bad])


def test_add_last_stage() -> None:
    backbone = _build(arch="resnet18", cifar_stem=True, drop_last_stage=True)
    backbone.add_last_stage()
    assert backbone.layer4 is not None
    assert backbone.embed_dim == FULL_WIDTH["resnet18"]
    assert backbone.config.drop_last_stage is False
    assert backbone.config.cifar_stem is True
    assert all(p.requires_grad for p in backbone.layer4.parameters())
    assert _count(backbone) == _count(_build(arch="resnet18", cifar_stem=True))
    assert any(name.startswith("layer4.") for name in backbone.state_dict())
    backbone.eval()
    with torch.no_grad():
        tokens = backbone(torch.randn(2, 3, 32, 32))
    side = 32 // _total_stride(True, 4)
    assert tokens.shape == (2, side * side, FULL_WIDTH["resnet18"])
    with pytest.raises(ValueError, match="already"):
        backbone.add_last_stage()
    with pytest.raises(ValueError, match="already"):
        _build(cifar_stem=True).add_last_stage()


def _frozen_part(backbone: ResNetBackbone) -> nn.ModuleDict:
    """stem + layer1-3 in a container (the container itself is not part of the backbone: skip it)."""
    return nn.ModuleDict(
        {"stem": backbone.stem, "layer1": backbone.layer1, "layer2": backbone.layer2, "layer3": backbone.layer3}
    )


def _frozen_modules(frozen: nn.ModuleDict) -> list[nn.Module]:
    return [m for part in frozen.values() for m in part.modules()]


def test_freeze_all_but_last_stage_keeps_frozen_part_bit_identical() -> None:
    backbone = _build(arch="resnet18", cifar_stem=True, drop_last_stage=True)
    backbone.add_last_stage()
    backbone.freeze_all_but_last_stage()
    assert backbone.frozen_stages
    frozen = _frozen_part(backbone)
    assert backbone.layer4 is not None
    frozen_before = {k: v.clone() for k, v in frozen.state_dict().items()}
    layer4_before = {k: v.clone() for k, v in backbone.layer4.named_parameters()}
    assert any(k.endswith("running_mean") for k in frozen_before)
    assert any(k.endswith("num_batches_tracked") for k in frozen_before)

    head = nn.Linear(backbone.embed_dim, 3)
    model = nn.Sequential()  # the parent's .train() must reach the backbone's override
    model.add_module("backbone", backbone)
    model.add_module("head", head)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        images = torch.randn(4, 3, 16, 16, generator=generator)
        labels = torch.randint(0, 3, (4,), generator=generator)
        loss = nn.functional.cross_entropy(head(backbone.pooled(images)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.train()

    assert backbone.training
    assert backbone.layer4.training
    assert not any(m.training for m in _frozen_modules(frozen))
    assert not any(p.requires_grad for p in frozen.parameters())
    for key, value in frozen.state_dict().items():
        assert torch.equal(value, frozen_before[key]), key
    changed = [not torch.equal(p, layer4_before[k]) for k, p in backbone.layer4.named_parameters()]
    assert any(changed)
    # layer4's BatchNorm still trains.
    bn = next(m for m in backbone.layer4.modules() if isinstance(m, nn.BatchNorm2d))
    assert int(bn.num_batches_tracked) == 3

    backbone.unfreeze()
    assert not backbone.frozen_stages
    assert all(m.training for m in _frozen_modules(frozen))
    assert all(p.requires_grad for p in backbone.parameters())
    backbone.eval()
    assert not any(m.training for m in backbone.modules())
    backbone.train()
    assert all(m.training for m in backbone.modules())


def test_unfreeze_in_eval_mode_stays_eval() -> None:
    backbone = _build(cifar_stem=True)
    backbone.freeze_all_but_last_stage()
    backbone.eval()
    backbone.unfreeze()
    assert not any(m.training for m in backbone.modules())


def test_freeze_clears_stale_gradients_so_optimizers_skip_frozen_parameters() -> None:
    backbone = _build(cifar_stem=True)
    optimizer = torch.optim.SGD(backbone.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    backbone.pooled(torch.randn(2, 3, 16, 16)).square().mean().backward()
    optimizer.step()  # momentum buffers now exist for every parameter
    backbone.freeze_all_but_last_stage()
    frozen = _frozen_part(backbone)
    assert all(p.grad is None for p in frozen.parameters())
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    optimizer.step()
    for key, value in frozen.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_freeze_without_last_stage_raises() -> None:
    backbone = _build(cifar_stem=True, drop_last_stage=True)
    with pytest.raises(ValueError, match="add_last_stage"):
        backbone.freeze_all_but_last_stage()


def test_config_validation() -> None:
    config = ResNetConfig()
    assert (config.arch, config.cifar_stem, config.drop_last_stage, config.img_size) == ("resnet18", False, False, 224)
    with pytest.raises(ValidationError):
        ResNetConfig(arch="resnet34")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ResNetConfig(img_size=4)
    with pytest.raises(ValidationError):
        ResNetConfig(depth=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        config.img_size = 32  # type: ignore[misc]
