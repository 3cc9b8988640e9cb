"""Image tokenizers: the SCOTT sparse convolutional stem and the ViT patch embedding.

Both map images ``[B, 3, H, W]`` to a token grid ``[B, D, H', W']`` with ``H' = H / stride``.
Both take an optional ``keep_mask`` (bool, ``[B, H', W']``, True = visible); the masking
semantics are the ones of SCOTT (Vélez-García et al., arXiv 2502.18056, sec. 3.1), after SparK
(Tian et al., ICLR 2023): masked cells cannot leak into visible tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.registry import Registry

TOKENIZERS: Registry[type[nn.Module]] = Registry("tokenizer")
"""Tokenizers by name (``model.tokenizer``). A tokenizer class takes ``(embed_dim, stride=,
in_chans=)``, maps ``(images [B, C, H, W], keep_mask [B, H', W'] | None)`` to ``[B, D, H', W']``,
and has a classmethod ``check_stride(stride)`` that raises ValueError for a stride it cannot make."""

SCOTT_STRIDES: dict[int, tuple[int, int]] = {16: (2, 2), 8: (1, 2), 4: (1, 1)}
"""Total stride -> (stride of conv 1, stride of conv 2). Both MaxBlurPools keep stride 2.

The paper stem has stride 16 (conv 2, pool 2, conv 2, pool 2). For small images the stride is
taken away from the convolutions, first one first; the pools keep their anti-aliased stride-2
downsampling because a stride-1 MaxBlurPool (max-pool kernel 2, padding 0) would shrink the map
by one pixel and break the alignment of the mask grid.
"""


def upsample_keep_mask(keep_mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest-upsample a token keep mask ``[B, H', W']`` to ``[B, 1, H, W]`` (H = k·H').

    Returns a float-compatible bool map; ``H`` and ``W`` must be whole multiples of the grid.
    """
    batch, grid_h, grid_w = keep_mask.shape
    factor_h, factor_w = size[0] // grid_h, size[1] // grid_w
    if factor_h * grid_h != size[0] or factor_w * grid_w != size[1]:
        raise ValueError(f"feature map {size} is not a whole multiple of the mask grid {(grid_h, grid_w)}")
    expanded = keep_mask[:, None, :, None, :, None].expand(batch, 1, grid_h, factor_h, grid_w, factor_w)
    return expanded.reshape(batch, 1, size[0], size[1])


def max_pool_2x2_stride1(x: Tensor) -> Tensor:
    """``F.max_pool2d(x, kernel_size=2, stride=1)`` as two separable elementwise maxima.

    ``[B, C, H, W] -> [B, C, H-1, W-1]``, equal values. Several times faster on CPU than ATen's
    pooling kernel (which also builds an index tensor), but its backward is slow: used when no
    gradient is needed (target encoder, evaluation).
    """
    rows = torch.maximum(x[..., :-1, :], x[..., 1:, :])
    return torch.maximum(rows[..., :-1], rows[..., 1:])


class MaxBlurPool2d(nn.Module):
    """Anti-aliased max pooling (Zhang, ICML 2019) exactly as kornia's
    ``MaxBlurPool2D(kernel_size=3, stride=2, max_pool_size=2, ceil_mode=False)``:
    max-pool kernel 2 stride 1 padding 0, then a depthwise blur with the normalised binomial
    kernel ``[1,2,1]ᵀ[1,2,1] / 16``, stride 2, zero padding 1.

    ``[B, C, H, W] -> [B, C, H/2, W/2]`` for even ``H`` and ``W``. Parity with kornia is tested.
    """

    def __init__(self, channels: int, stride: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.stride = stride
        binomial = torch.tensor([1.0, 2.0, 1.0])
        kernel = torch.outer(binomial, binomial) / 16.0
        self.register_buffer("blur_kernel", kernel.expand(channels, 1, 3, 3).contiguous(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            # ATen's pooling backward (index scatter) is fast in channels_last; its forward is not
            x = F.max_pool2d(x, kernel_size=2, stride=1, padding=0)
        else:
            x = max_pool_2x2_stride1(x)
        kernel = self.blur_kernel.to(dtype=x.dtype)
        return F.conv2d(x, kernel, stride=self.stride, padding=1, groups=self.channels)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, stride={self.stride}"


@TOKENIZERS.register("scott")
class SCOTTTokenizer(nn.Module):
    """SCOTT: Sparse Convolutional Tokenizer for Transformers (paper sec. 3.1, spec sec. 2).

    ``Conv7x7(3→64) → ReLU → MaxBlurPool → Conv7x7(64→D) → ReLU → MaxBlurPool``; no norm layers,
    no biases, Kaiming-normal (fan-in, ReLU gain) init.

    Sparse semantics with a keep mask ``[B, H', W']``: the pixels of masked cells (stride×stride
    squares) are zeroed before the stem, and the output of every conv and every pool is
    multiplied by the keep mask upsampled to its resolution. So no visible token depends on the
    pixels of a masked cell and masked tokens come out exactly 0. Without a mask the stem is the
    plain dense stem (no multiplications).

    Args:
        embed_dim: token width ``D``.
        stride: total stride, one of 16 (paper), 8 or 4.
        in_chans: input channels.
        stem_width: width of the first conv (64 in the paper).
    """

    def __init__(self, embed_dim: int, stride: int = 16, in_chans: int = 3, stem_width: int = 64) -> None:
        super().__init__()
        self.check_stride(stride)
        conv1_stride, conv2_stride = SCOTT_STRIDES[stride]
        self.stride = stride
        self.embed_dim = embed_dim
        self.conv1 = nn.Conv2d(in_chans, stem_width, kernel_size=7, stride=conv1_stride, padding=3, bias=False)
        self.pool1 = MaxBlurPool2d(stem_width)
        self.conv2 = nn.Conv2d(stem_width, embed_dim, kernel_size=7, stride=conv2_stride, padding=3, bias=False)
        self.pool2 = MaxBlurPool2d(embed_dim)
        self.reset_parameters()

    @classmethod
    def check_stride(cls, stride: int) -> None:
        if stride not in SCOTT_STRIDES:
            raise ValueError(f"SCOTT stride must be one of {sorted(SCOTT_STRIDES)}, got {stride}")

    def reset_parameters(self) -> None:
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, images: Tensor, keep_mask: Tensor | None = None) -> Tensor:
        """``images [B, C, H, W]``, ``keep_mask [B, H', W']`` bool or None -> ``[B, D, H', W']``."""
        # channels_last: oneDNN convolutions, the depthwise blur and the pooling backward are
        # several times faster in NHWC on CPU; the token view [B, N, D] of the output is free.
        images = images.contiguous(memory_format=torch.channels_last)
        if keep_mask is None:
            x = F.relu(self.conv1(images))
            x = self.pool1(x)
            x = F.relu(self.conv2(x))
            return self.pool2(x)

        def masked(x: Tensor) -> Tensor:
            return x * upsample_keep_mask(keep_mask, (x.shape[-2], x.shape[-1])).to(x.dtype)

        x = masked(images)
        x = F.relu(masked(self.conv1(x)))  # ReLU keeps zeros at zero: mask before or after is equal
        x = masked(self.pool1(x))
        x = F.relu(masked(self.conv2(x)))
        return masked(self.pool2(x))


@TOKENIZERS.register("vit")
class PatchEmbedTokenizer(nn.Module):
    """ViT patch embedding (Dosovitskiy et al., 2021): ``Conv2d(k = s = patch, bias)``.

    The paper's tokenizer ablation. Patches do not overlap, so masking needs no sparse ops; the
    masked tokens are replaced by the encoder's mask token. ``[B, C, H, W] -> [B, D, H/p, W/p]``.
    Weights: truncated normal std 0.02 like every other linear projection; bias 0.
    """

    def __init__(self, embed_dim: int, stride: int = 16, in_chans: int = 3) -> None:
        super().__init__()
        self.check_stride(stride)
        self.stride = stride
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=stride, stride=stride, bias=True)
        self.reset_parameters()

    @classmethod
    def check_stride(cls, stride: int) -> None:
        if stride < 1:
            raise ValueError(f"patch size must be >= 1, got {stride}")

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)

    def forward(self, images: Tensor, keep_mask: Tensor | None = None) -> Tensor:
        """``images [B, C, H, W]`` -> ``[B, D, H/p, W/p]``; ``keep_mask`` is not needed here."""
        del keep_mask  # non-overlapping patches: a masked patch cannot reach a visible token
        return self.proj(images)
