"""The SCOTT / ViT encoder: tokenizer + :class:`MaskedTransformer` (spec sec. 2-3).

``Encoder.forward(images [B, 3, H, W], keep_mask [B, N] | None) -> tokens [B, N, D]``, with
``keep_mask`` a bool tensor, True = visible. No CLS token, no final norm: downstream code applies
the non-affine LayerNorm it needs (targets, probes).
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor, nn

from scarce.models.layers import resolve_indices
from scarce.models.tokenizers import TOKENIZERS
from scarce.models.transformer import FFNKind, MaskedTransformer

TokenizerKind = str
"""A name in :data:`scarce.models.tokenizers.TOKENIZERS` (built in: ``scott``, ``vit``)."""


class EncoderConfig(BaseModel):
    """Architecture of an encoder. Defaults are the paper's (spec sec. 3) except the size."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokenizer: TokenizerKind = "scott"
    img_size: int = Field(224, gt=0, description="square input side in pixels")
    embed_dim: int = Field(384, gt=0)
    depth: int = Field(12, ge=0)
    num_heads: int = Field(4, gt=0)
    stride: int = Field(16, gt=0, description="total stride: pixels per token side")
    ffn: FFNKind = "swiglu"
    mlp_ratio: float = Field(4.0, gt=0)
    dropout_rate: float = Field(0.2, ge=0, lt=1)
    attention_dropout: float = Field(0.1, ge=0, lt=1)
    stochastic_depth_rate: float = Field(0.1, ge=0, lt=1)
    num_registers: int = Field(0, ge=0)
    in_chans: int = Field(3, gt=0)

    @field_validator("tokenizer")
    @classmethod
    def _known_tokenizer(cls, name: str) -> str:
        return TOKENIZERS.validate(name)

    @model_validator(mode="after")
    def _check_shapes(self) -> EncoderConfig:
        if self.embed_dim % self.num_heads != 0:
            raise ValueError(f"embed_dim {self.embed_dim} must be divisible by num_heads {self.num_heads}")
        if self.embed_dim % 4 != 0:
            raise ValueError(f"embed_dim {self.embed_dim} must be divisible by 4 (2-D sin-cos position embedding)")
        TOKENIZERS.get(self.tokenizer).check_stride(self.stride)  # type: ignore[attr-defined]
        if self.img_size % self.stride != 0:
            raise ValueError(f"img_size {self.img_size} must be a multiple of the stride {self.stride}")
        return self

    @property
    def grid_size(self) -> tuple[int, int]:
        side = self.img_size // self.stride
        return (side, side)


class Encoder(nn.Module):
    """Tokenizer + transformer. See :func:`scarce.models.build_encoder`.

    Attributes:
        config: the :class:`EncoderConfig` it was built from.
        grid_size: ``(H', W')`` token grid at ``config.img_size``.
        num_tokens: ``H' · W'``.
        embed_dim: token width ``D``.
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_dim = config.embed_dim
        self.grid_size = config.grid_size
        self.num_tokens = self.grid_size[0] * self.grid_size[1]
        tokenizer_cls = TOKENIZERS.get(config.tokenizer)
        self.tokenizer = tokenizer_cls(config.embed_dim, stride=config.stride, in_chans=config.in_chans)
        self.transformer = MaskedTransformer(
            config.embed_dim,
            self.grid_size,
            depth=config.depth,
            num_heads=config.num_heads,
            ffn=config.ffn,
            mlp_ratio=config.mlp_ratio,
            dropout_rate=config.dropout_rate,
            attention_dropout=config.attention_dropout,
            stochastic_depth_rate=config.stochastic_depth_rate,
            num_registers=config.num_registers,
        )

    @property
    def depth(self) -> int:
        return len(self.transformer.blocks)

    @property
    def num_layers(self) -> int:
        """Layer ids of :meth:`layer_id`: ``0`` (tokenizer) to ``depth`` (the last block)."""
        return self.config.depth + 1

    def layer_id(self, parameter_name: str) -> int:
        """The depth of a parameter for layer-wise LR decay (BEiT, MAE): 0 for the tokenizer, mask
        token and registers, ``i + 1`` for transformer block ``i``."""
        parts = parameter_name.split(".")
        return int(parts[2]) + 1 if parts[:2] == ["transformer", "blocks"] else 0

    def _grid_of(self, images: Tensor) -> tuple[int, int]:
        if images.ndim != 4 or images.shape[1] != self.config.in_chans:
            raise ValueError(f"expected images [B, {self.config.in_chans}, H, W], got shape {tuple(images.shape)}")
        height, width = images.shape[-2:]
        stride = self.config.stride
        if height % stride or width % stride:
            raise ValueError(f"image size {height}x{width} is not a multiple of the stride {stride}")
        return (height // stride, width // stride)

    @staticmethod
    def _check_keep_mask(keep_mask: Tensor, batch: int, grid: tuple[int, int]) -> None:
        expected = (batch, grid[0] * grid[1])
        if keep_mask.dtype != torch.bool:
            raise TypeError(f"keep_mask must be a bool tensor (True = visible), got {keep_mask.dtype}")
        if tuple(keep_mask.shape) != expected:
            raise ValueError(f"keep_mask must have shape [B, N] = {list(expected)}, got {list(keep_mask.shape)}")

    def tokenize(self, images: Tensor, keep_mask: Tensor | None = None) -> tuple[Tensor, tuple[int, int]]:
        """Tokenizer only: ``[B, C, H, W] -> ([B, N, D], (H', W'))``; masked tokens are 0 for SCOTT."""
        grid = self._grid_of(images)
        grid_mask = None
        if keep_mask is not None:
            self._check_keep_mask(keep_mask, images.shape[0], grid)
            grid_mask = keep_mask.view(images.shape[0], *grid)
        feature_map = self.tokenizer(images, grid_mask)  # [B, D, H', W']
        return feature_map.flatten(2).transpose(1, 2), grid

    def forward(self, images: Tensor, keep_mask: Tensor | None = None, visible_only: bool = False) -> Tensor:
        """``images [B, C, H, W]``, ``keep_mask [B, N]`` bool (True = visible) -> ``[B, N, D]``, or
        ``[B, K, D]`` with ``visible_only``.

        ``visible_only=True`` (I-JEPA / MAE) needs a ``keep_mask``: the transformer sees only the
        ``K`` visible tokens (the same count in every sample) and returns them in raster order;
        masked tokens cost no transformer work. With nothing masked it equals the default.
        """
        tokens, grid = self.tokenize(images, keep_mask)
        return self.transformer(tokens, keep_mask, grid, drop_masked=visible_only)

    def forward_intermediates(
        self, images: Tensor, keep_mask: Tensor | None = None, indices: list[int] | None = None
    ) -> list[Tensor]:
        """Outputs ``[B, N, D]`` of the blocks in ``indices``, in that order (default: all blocks;
        negatives count from the end), registers dropped. The same signature as
        :meth:`scarce.models.resnet.ResNetBackbone.forward_intermediates` (after timm)."""
        wanted = resolve_indices(indices, self.depth, "block")
        tokens, grid = self.tokenize(images, keep_mask)
        x = self.transformer.embed(tokens, keep_mask, grid)
        outputs: dict[int, Tensor] = {}
        for index, block in enumerate(self.transformer.blocks[: max(wanted) + 1]):
            x = block(x)
            if index in wanted:
                outputs[index] = x[:, self.transformer.num_registers :]
        return [outputs[index] for index in wanted]

    @torch.no_grad()
    def attention_maps(self, images: Tensor, keep_mask: Tensor | None = None, block: int = -1) -> Tensor:
        """Softmax attention ``[B, heads, R + N, R + N]`` of block ``block`` (registers first)."""
        index = block % self.depth
        tokens, grid = self.tokenize(images, keep_mask)
        x = self.transformer.embed(tokens, keep_mask, grid)
        for layer in self.transformer.blocks[:index]:
            x = layer(x)
        return self.transformer.blocks[index].attention_map(x)


def build_encoder(
    tokenizer: TokenizerKind = "scott",
    *,
    img_size: int,
    embed_dim: int,
    depth: int,
    num_heads: int,
    stride: int = 16,
    ffn: FFNKind = "swiglu",
    **kwargs: object,
) -> Encoder:
    """Build an encoder; extra keyword arguments are :class:`EncoderConfig` fields
    (``dropout_rate``, ``attention_dropout``, ``stochastic_depth_rate``, ``num_registers``, ...).

    >>> encoder = build_encoder("scott", img_size=32, embed_dim=64, depth=2, num_heads=2, stride=4)
    >>> encoder.grid_size
    (8, 8)
    """
    config = EncoderConfig(
        tokenizer=tokenizer,
        img_size=img_size,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads,
        stride=stride,
        ffn=ffn,
        **kwargs,  # type: ignore[arg-type]
    )
    return Encoder(config)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters; buffers such as the position embedding never count."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
