"""Attention maps of a transformer encoder (``Encoder.attention_maps``), per head, on the token grid.

``attention_received``: for each key token, the attention it receives averaged over all query
tokens (registers excluded as keys and as queries, then renormalised): each head's map sums to 1
over the grid. ``attention_from``: the attention one query token pays to every grid token; each
head's map also sums to 1 (registers excluded, renormalised).
"""

from __future__ import annotations

import torch
from torch import Tensor

from scarce.models.encoder import Encoder


def _grid_attention(encoder: Encoder, images: Tensor, block: int) -> Tensor:
    """``[B, heads, N, N]`` softmax attention among grid tokens (registers dropped, rows renormalised)."""
    attention = encoder.attention_maps(images, block=block).float()  # [B, heads, R + N, R + N]
    registers = encoder.config.num_registers
    grid = attention[:, :, registers:, registers:]
    return grid / grid.sum(dim=-1, keepdim=True).clamp_min(1e-12)


@torch.no_grad()
def attention_received(encoder: Encoder, images: Tensor, block: int = -1) -> Tensor:
    """``images [B, 3, H, W]`` (normalised) -> ``[B, heads, H', W']``, each map summing to 1."""
    attention = _grid_attention(encoder, images, block)
    received = attention.mean(dim=2)  # average over queries: [B, heads, N]
    return received.view(*received.shape[:2], *encoder.config.grid_size)


@torch.no_grad()
def attention_from(encoder: Encoder, images: Tensor, token: int, block: int = -1) -> Tensor:
    """The attention grid token ``token`` (row-major index) pays: ``[B, heads, H', W']``, sums to 1."""
    attention = _grid_attention(encoder, images, block)
    num_tokens = attention.shape[-1]
    if not 0 <= token < num_tokens:
        raise ValueError(f"token must be in [0, {num_tokens}), got {token}")
    row = attention[:, :, token]  # [B, heads, N]
    return row.view(*row.shape[:2], *encoder.config.grid_size)
