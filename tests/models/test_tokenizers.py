"""SCOTT and ViT tokenizers: shapes, the sparse invariance, MaxBlurPool parity, init."""

from __future__ import annotations

import math

import kornia
import pytest
import torch

from scarce.models import MaxBlurPool2d, PatchEmbedTokenizer, SCOTTTokenizer
from scarce.models.tokenizers import upsample_keep_mask
from tests.helpers import random_keep_mask

STRIDES = (16, 8, 4)


@pytest.mark.parametrize("img_size", [32, 64, 96, 224])
@pytest.mark.parametrize("stride", STRIDES)
@pytest.mark.parametrize("tokenizer_cls", [SCOTTTokenizer, PatchEmbedTokenizer])
def test_tokenizer_output_shape(tokenizer_cls: type, img_size: int, stride: int) -> None:
    tokenizer = tokenizer_cls(embed_dim=8, stride=stride)
    images = torch.randn(2, 3, img_size, img_size)
    grid = img_size // stride
    assert tokenizer(images).shape == (2, 8, grid, grid)
    keep = torch.rand(2, grid, grid) > 0.5
    assert tokenizer(images, keep).shape == (2, 8, grid, grid)


def test_scott_rejects_unsupported_stride() -> None:
    with pytest.raises(ValueError, match="stride must be one of"):
        SCOTTTokenizer(embed_dim=8, stride=32)


def _replace_masked_pixels(images: torch.Tensor, keep_grid: torch.Tensor) -> torch.Tensor:
    """Images whose masked cells hold other (large, random) values; visible pixels untouched."""
    pixel_keep = upsample_keep_mask(keep_grid, (images.shape[-2], images.shape[-1]))
    noise = 10 * torch.randn_like(images)
    return torch.where(pixel_keep, images, noise)


def _max_visible_change(tokenizer: torch.nn.Module, stride: int, use_mask: bool, img_size: int = 64) -> float:
    """Largest change of a visible token when only the pixels of masked cells change."""
    grid = img_size // stride
    images = torch.randn(4, 3, img_size, img_size)
    keep = random_keep_mask(4, (grid, grid), seed=stride).view(4, grid, grid)
    altered = _replace_masked_pixels(images, keep)
    with torch.no_grad():
        before = tokenizer(images, keep if use_mask else None)
        after = tokenizer(altered, keep if use_mask else None)
    visible = keep[:, None].expand_as(before)
    return (before - after).abs()[visible].max().item()


@pytest.mark.parametrize("stride", STRIDES)
def test_scott_visible_tokens_ignore_masked_pixels(stride: int) -> None:
    tokenizer = SCOTTTokenizer(embed_dim=32, stride=stride)
    assert _max_visible_change(tokenizer, stride, use_mask=True) < 1e-5


@pytest.mark.parametrize("stride", STRIDES)
def test_scott_masked_tokens_are_exactly_zero(stride: int) -> None:
    tokenizer = SCOTTTokenizer(embed_dim=32, stride=stride)
    grid = 64 // stride
    keep = random_keep_mask(3, (grid, grid), seed=1).view(3, grid, grid)
    with torch.no_grad():
        tokens = tokenizer(torch.randn(3, 3, 64, 64), keep)
    masked = ~keep[:, None].expand_as(tokens)
    assert torch.count_nonzero(tokens[masked]) == 0
    assert torch.count_nonzero(tokens[~masked]) > 0  # visible tokens carry signal


@pytest.mark.parametrize("stride", STRIDES)
def test_dense_stem_leaks_masked_pixels(stride: int) -> None:
    """The same check on the plain dense stem (no keep mask) fails: the test can fail."""
    tokenizer = SCOTTTokenizer(embed_dim=32, stride=stride)
    assert _max_visible_change(tokenizer, stride, use_mask=False) > 1e-2


def test_dense_forward_equals_sparse_forward_with_all_visible() -> None:
    tokenizer = SCOTTTokenizer(embed_dim=16, stride=16)
    images = torch.randn(2, 3, 96, 96)
    all_visible = torch.ones(2, 6, 6, dtype=torch.bool)
    torch.testing.assert_close(tokenizer(images), tokenizer(images, all_visible))


@pytest.mark.parametrize("size", [8, 14, 56, 112])
def test_max_blur_pool_matches_kornia(size: int) -> None:
    reference = kornia.filters.MaxBlurPool2D(kernel_size=3, stride=2, max_pool_size=2)
    ours = MaxBlurPool2d(channels=5)
    x = torch.randn(2, 5, size, size)
    out = ours(x)
    assert out.shape == (2, 5, size // 2, size // 2)
    torch.testing.assert_close(out, reference(x), rtol=0, atol=1e-6)


def test_scott_stem_layers_and_parameter_count() -> None:
    tokenizer = SCOTTTokenizer(embed_dim=384, stride=16)
    assert sum(p.numel() for p in tokenizer.parameters()) == 1_213_632
    assert tokenizer.conv1.bias is None and tokenizer.conv2.bias is None
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in tokenizer.modules())


def test_scott_kaiming_init() -> None:
    tokenizer = SCOTTTokenizer(embed_dim=384, stride=16)
    for conv in (tokenizer.conv1, tokenizer.conv2):
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        expected = math.sqrt(2.0 / fan_in)
        assert abs(conv.weight.std().item() - expected) / expected < 0.05
        assert abs(conv.weight.mean().item()) < 0.05 * expected


def test_patch_embed_has_bias_and_count() -> None:
    tokenizer = PatchEmbedTokenizer(embed_dim=384, stride=16)
    assert sum(p.numel() for p in tokenizer.parameters()) == 295_296
    assert torch.count_nonzero(tokenizer.proj.bias) == 0


def test_max_blur_pool_gradient_path_matches_kornia() -> None:
    """With gradients on, values and input gradients equal kornia's."""
    reference = kornia.filters.MaxBlurPool2D(kernel_size=3, stride=2, max_pool_size=2)
    x = torch.randn(2, 4, 16, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    upstream = torch.randn(2, 4, 8, 8)
    out = MaxBlurPool2d(channels=4)(x)
    out_ref = reference(x_ref)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-6)
    out.backward(upstream)
    out_ref.backward(upstream)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=0, atol=1e-6)


def test_scott_output_token_view_is_contiguous() -> None:
    """channels_last stem: the [B, N, D] token view needs no copy."""
    tokens = SCOTTTokenizer(embed_dim=16, stride=16)(torch.randn(2, 3, 64, 64)).flatten(2).transpose(1, 2)
    assert tokens.is_contiguous()
