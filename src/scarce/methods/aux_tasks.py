"""Auxiliary self-supervised tasks for supervised training and fine-tuning (``aux`` section).

- ``drloc``: dense relative localisation (Liu et al., NeurIPS 2021, "Efficient Training of
  Visual Transformers with Small Datasets"). For ``pairs`` random pairs of output tokens (or
  feature-map cells) per image, a small MLP on their concatenated embeddings predicts their
  normalised grid offset ``((col_i - col_j) / W', (row_i - row_j) / H')``; L1 loss.
- ``rotation``: predict which of 0 / 90 / 180 / 270 degrees a rotated copy of each image was turned
  by (Gidaris et al. 2018), from its mean-pooled tokens; cross-entropy. It costs one more forward.

Both draw from torch's global RNG (restored on resume, so a resumed run draws the same pairs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AuxKind = Literal["none", "drloc", "rotation"]


def token_grid(num_tokens: int, grid_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The ``(H', W')`` grid of ``num_tokens`` row-major tokens (square unless given)."""
    if grid_size is not None:
        return grid_size
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ValueError(f"{num_tokens} tokens do not form a square grid; give grid_size")
    return side, side


def drloc_targets(first: Tensor, second: Tensor, grid_size: tuple[int, int]) -> Tensor:
    """Normalised offsets of token pairs: ``first, second`` int ``[...]`` row-major indices ->
    ``[..., 2]`` = ``((col_1 - col_2) / W', (row_1 - row_2) / H')``, each in ``(-1, 1)``."""
    height, width = grid_size
    rows_1, cols_1 = first // width, first % width
    rows_2, cols_2 = second // width, second % width
    return torch.stack([(cols_1 - cols_2).float() / width, (rows_1 - rows_2).float() / height], dim=-1)


class DenseRelativeLocalization(nn.Module):
    """``forward(tokens [B, N, D], grid_size) -> L1 loss``: ``pairs`` token pairs per image.

    The MLP is Liu et al.'s: ``Linear(2D, hidden) -> ReLU -> Linear(hidden, 2)``.
    """

    def __init__(self, dim: int, pairs: int = 64, hidden: int = 512) -> None:
        super().__init__()
        self.pairs = pairs
        self.mlp = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, tokens: Tensor, grid_size: tuple[int, int] | None = None) -> Tensor:
        batch, num_tokens, _ = tokens.shape
        grid = token_grid(num_tokens, grid_size)
        first = torch.randint(0, num_tokens, (batch, self.pairs), device=tokens.device)
        second = torch.randint(0, num_tokens, (batch, self.pairs), device=tokens.device)
        gather = lambda index: tokens.gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))  # noqa: E731
        prediction = self.mlp(torch.cat([gather(first), gather(second)], dim=-1))  # [B, pairs, 2]
        return F.l1_loss(prediction.float(), drloc_targets(first, second, grid))


def rotate_batch(images: Tensor) -> tuple[Tensor, Tensor]:
    """Each image ``[B, C, S, S]`` turned by ``k_b · 90`` degrees (``torch.rot90`` over H, W), with
    ``k_b`` uniform in 0..3: ``(rotated [B, C, S, S], k [B])``."""
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotation needs square images, got {tuple(images.shape[-2:])}")
    turns = torch.randint(0, 4, (images.shape[0],), device=images.device)
    rotated = torch.stack([torch.rot90(image, int(k), dims=(-2, -1)) for image, k in zip(images, turns, strict=True)])
    return rotated, turns


class RotationPrediction(nn.Module):
    """``forward(tokens_of, images [B, 3, S, S]) -> CE loss``: a linear head on the mean-pooled tokens
    of the rotated images predicts the number of quarter turns. ``tokens_of(images) -> [B, N, D]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(dim, 4)

    def forward(self, tokens_of: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
        rotated, turns = rotate_batch(images)
        logits = self.head(tokens_of(rotated).mean(dim=1))
        return F.cross_entropy(logits.float(), turns)


def build_aux_task(kind: AuxKind, dim: int, pairs: int = 64, hidden: int = 512) -> nn.Module | None:
    """The auxiliary task ``kind`` for tokens of width ``dim`` (None for ``none``)."""
    if kind == "none":
        return None
    if kind == "drloc":
        return DenseRelativeLocalization(dim, pairs, hidden)
    if kind == "rotation":
        return RotationPrediction(dim)
    raise ValueError(f"unknown aux kind {kind!r}; expected none, drloc or rotation")
