"""Transformer layers of the SCOTT encoder and the MIM-JEPA predictor (spec sec. 3).

Blocks use the CCT ordering (Hassani et al., 2021): ``x = x + DropPath(Attn(LN(x)))``, then the
residual stream itself is normalised ``x = LN(x)``, then ``x = x + DropPath(FFN(x))``. Every
LayerNorm is non-affine. :class:`MaskedTransformer` adds the mask token, the fixed 2-D sin-cos
position embedding and optional registers in front of a stack of blocks; the encoder and the
predictor are both built on it.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import StochasticDepth

FFNKind = Literal["swiglu", "mlp"]
LAYER_NORM_EPS = 1e-5


def sincos_pos_embed_2d(embed_dim: int, grid_size: tuple[int, int]) -> Tensor:
    """Fixed 2-D sin-cos position embedding ``[H'·W', D]`` for a row-major token grid.

    The first ``D/2`` channels encode the row, the last ``D/2`` the column; each half is
    ``[sin(p·ω_i), cos(p·ω_i)]`` with ``ω_i = 1 / 10000^(i / (D/4))``, ``i = 0..D/4-1``
    (MAE, He et al. 2022; as in the SCOTT code).
    """
    if embed_dim % 4 != 0:
        raise ValueError(f"sin-cos position embedding needs embed_dim divisible by 4, got {embed_dim}")
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows = torch.arange(grid_size[0], dtype=torch.float64)
    cols = torch.arange(grid_size[1], dtype=torch.float64)
    row_angles = rows[:, None] * omega[None, :]  # [H', D/4]
    col_angles = cols[:, None] * omega[None, :]  # [W', D/4]
    row_embed = torch.cat([row_angles.sin(), row_angles.cos()], dim=1)  # [H', D/2]
    col_embed = torch.cat([col_angles.sin(), col_angles.cos()], dim=1)  # [W', D/2]
    grid_h, grid_w = grid_size
    embed = torch.cat(
        [
            row_embed[:, None, :].expand(grid_h, grid_w, embed_dim // 2),
            col_embed[None, :, :].expand(grid_h, grid_w, embed_dim // 2),
        ],
        dim=2,
    )
    return embed.reshape(grid_h * grid_w, embed_dim).float()


def swiglu_hidden_dim(embed_dim: int) -> int:
    """Hidden width of the SwiGLU FFN: ``128 · round(8D/3 / 128)`` (512 for D=192, 1024 for 384)."""
    return 128 * round(8 * embed_dim / 3 / 128)


class Attention(nn.Module):
    """Multi-head self-attention, no qkv bias, fused through ``scaled_dot_product_attention``.

    ``[B, N, D] -> [B, N, D]``. ``forward(x, return_attention=True)`` also returns the softmax
    attention ``[B, heads, N, N]`` (computed explicitly, without dropout; for visualisation).
    """

    def __init__(self, dim: int, num_heads: int, attention_dropout: float = 0.0, proj_dropout: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.attention_dropout = attention_dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.proj_drop = nn.Dropout(proj_dropout)

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)  # each [B, h, N, hd]
        attention: Tensor | None = None
        if return_attention:
            attention = torch.softmax((query * self.scale) @ key.transpose(-2, -1), dim=-1)
            out = attention @ value
        else:
            dropout = self.attention_dropout if self.training else 0.0
            out = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, scale=self.scale)
        out = self.proj_drop(self.proj(out.transpose(1, 2).reshape(batch, tokens, dim)))
        return (out, attention) if attention is not None else out


class SwiGLUFFN(nn.Module):
    """SwiGLU feed-forward (Shazeer, 2020): ``Linear(D, 2H) → silu(a)·b → Linear(H, D)``, no bias,
    no dropout. ``[B, N, D] -> [B, N, D]``."""

    def __init__(self, dim: int, hidden_dim: int | None = None) -> None:
        super().__init__()
        hidden_dim = hidden_dim or swiglu_hidden_dim(dim)
        self.fc_in = nn.Linear(dim, 2 * hidden_dim, bias=False)
        self.fc_out = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.fc_in(x).chunk(2, dim=-1)
        return self.fc_out(F.silu(gate) * value)


class MlpFFN(nn.Module):
    """GELU MLP: ``Linear(D, rD) → GELU → Dropout → Linear(rD, D) → Dropout``, no bias."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        hidden_dim = int(dim * mlp_ratio)
        self.fc_in = nn.Linear(dim, hidden_dim, bias=False)
        self.fc_out = nn.Linear(hidden_dim, dim, bias=False)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc_out(self.drop(F.gelu(self.fc_in(x)))))


class Block(nn.Module):
    """CCT-ordered transformer block with non-affine LayerNorms. ``[B, N, D] -> [B, N, D]``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn: FFNKind = "swiglu",
        mlp_ratio: float = 4.0,
        dropout_rate: float = 0.0,
        attention_dropout: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.pre_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS, elementwise_affine=False)
        self.attn = Attention(dim, num_heads, attention_dropout=attention_dropout, proj_dropout=dropout_rate)
        self.norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS, elementwise_affine=False)
        if ffn == "swiglu":
            self.ffn: nn.Module = SwiGLUFFN(dim)
        elif ffn == "mlp":
            self.ffn = MlpFFN(dim, mlp_ratio, dropout_rate)
        else:
            raise ValueError(f"unknown ffn {ffn!r}: expected 'swiglu' or 'mlp'")
        self.drop_path: nn.Module = StochasticDepth(drop_path, mode="row") if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.pre_norm(x)))
        x = self.norm(x)
        return x + self.drop_path(self.ffn(x))

    def attention_map(self, x: Tensor) -> Tensor:
        """Softmax attention ``[B, heads, N, N]`` of this block for input ``x [B, N, D]``."""
        _, attention = self.attn(self.pre_norm(x), return_attention=True)
        return attention

    def rescale_(self, layer_id: int) -> None:
        """Divide the attention projection and FFN output weights by ``sqrt(2 · layer_id)``."""
        factor = math.sqrt(2.0 * layer_id)
        with torch.no_grad():
            self.attn.proj.weight.div_(factor)
            self.ffn.fc_out.weight.div_(factor)


def init_linear_(module: nn.Module) -> None:
    """Linear weights truncated normal std 0.02, biases 0 (apply with ``module.apply``)."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def gather_visible(tokens: Tensor, keep_mask: Tensor) -> Tensor:
    """The visible tokens of each sample in raster order: ``[B, N, D], [B, N] -> [B, K, D]``.

    Every sample must keep the same number ``K`` of tokens (see
    :func:`scarce.masking.equalize_keep_counts`); otherwise a ValueError names the counts.
    """
    counts = keep_mask.sum(dim=1)
    if bool((counts != counts[0]).any()):
        raise ValueError(f"every sample must keep the same number of tokens, got {sorted(set(counts.tolist()))}")
    return tokens[keep_mask].view(tokens.shape[0], int(counts[0]), tokens.shape[-1])


def scatter_visible(visible: Tensor, keep_mask: Tensor) -> Tensor:
    """Inverse of :func:`gather_visible`: ``[B, K, D], [B, N] -> [B, N, D]``, zeros where masked."""
    full = visible.new_zeros(*keep_mask.shape, visible.shape[-1])
    full[keep_mask] = visible.reshape(-1, visible.shape[-1])
    return full


class MaskedTransformer(nn.Module):
    """Mask token + fixed sin-cos position embedding + registers + CCT blocks; no final norm.

    ``forward(tokens [B, N, D], keep_mask [B, N] | None) -> [B, N, D]``: masked positions are
    replaced by the learned mask token (SimMIM-style: they stay in the sequence), the position
    embedding is added, dropout, registers are prepended (zero position embedding) and dropped at
    the output.

    Args:
        first_layer_id: block ``l`` of this stack is rescaled as layer ``first_layer_id + l``
            (the predictor continues the encoder's numbering).
    """

    def __init__(
        self,
        embed_dim: int,
        grid_size: tuple[int, int],
        depth: int,
        num_heads: int,
        ffn: FFNKind = "swiglu",
        mlp_ratio: float = 4.0,
        dropout_rate: float = 0.0,
        attention_dropout: float = 0.0,
        stochastic_depth_rate: float = 0.0,
        num_registers: int = 0,
        first_layer_id: int = 1,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.grid_size = grid_size
        self.num_registers = num_registers
        self.mask_token = nn.Parameter(torch.empty(1, 1, embed_dim))
        self.registers = nn.Parameter(torch.empty(1, num_registers, embed_dim)) if num_registers > 0 else None
        self.register_buffer("pos_embed", sincos_pos_embed_2d(embed_dim, grid_size)[None], persistent=False)
        self.pos_drop = nn.Dropout(dropout_rate)
        drop_paths = torch.linspace(0, stochastic_depth_rate, depth).tolist() if depth > 0 else []
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, ffn, mlp_ratio, dropout_rate, attention_dropout, drop_path)
            for drop_path in drop_paths
        )
        self.first_layer_id = first_layer_id
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.trunc_normal_(self.mask_token, std=1e-6)
        if self.registers is not None:
            nn.init.trunc_normal_(self.registers, std=1e-6)
        self.blocks.apply(init_linear_)
        for offset, block in enumerate(self.blocks):
            block.rescale_(self.first_layer_id + offset)

    def position_embedding(self, grid_size: tuple[int, int]) -> Tensor:
        """``[1, N, D]`` position embedding for ``grid_size`` (computed anew for another grid)."""
        if tuple(grid_size) == tuple(self.grid_size):
            return self.pos_embed
        return sincos_pos_embed_2d(self.embed_dim, grid_size)[None].to(self.pos_embed.device)

    def embed(
        self, tokens: Tensor, keep_mask: Tensor | None, grid_size: tuple[int, int], drop_masked: bool = False
    ) -> Tensor:
        """Mask token, position embedding, dropout, registers: ``[B, N, D] -> [B, R + N, D]``.

        ``drop_masked=True`` (I-JEPA / MAE) drops the masked positions after the position
        embedding instead of replacing them by the mask token: ``[B, N, D] -> [B, R + K, D]``
        with ``K`` visible tokens per sample (the same for every sample), in raster order.
        """
        if drop_masked:
            if keep_mask is None:
                raise ValueError("drop_masked needs a keep_mask")
            tokens = self.pos_drop(tokens + self.position_embedding(grid_size).to(tokens.dtype))
            tokens = gather_visible(tokens, keep_mask)
        else:
            if keep_mask is not None:
                tokens = torch.where(keep_mask[..., None], tokens, self.mask_token.to(tokens.dtype))
            tokens = self.pos_drop(tokens + self.position_embedding(grid_size).to(tokens.dtype))
        if self.registers is not None:
            tokens = torch.cat([self.registers.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        return tokens

    def forward(
        self,
        tokens: Tensor,
        keep_mask: Tensor | None = None,
        grid_size: tuple[int, int] | None = None,
        drop_masked: bool = False,
    ) -> Tensor:
        x = self.embed(tokens, keep_mask, grid_size or self.grid_size, drop_masked)
        for block in self.blocks:
            x = block(x)
        return x[:, self.num_registers :]
