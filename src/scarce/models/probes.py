"""Attentive probes over frozen tokens (spec sec. 5): ``[B, N, D] -> logits [B, C]``.

The three probes the SCOTT paper trains side by side: ``simple`` (one score per token),
``multihead`` (4 score heads over projected values) and ``cross`` (one learned query with
cross-attention, as CAE's attentive pooling). Tokens arrive already normalised (non-affine
LayerNorm) from the frozen encoder.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.models.transformer import SwiGLUFFN, init_linear_
from scarce.registry import Registry

HEADS: Registry[type[nn.Module]] = Registry("probe head")
"""Classifier heads on tokens ``[B, N, D] -> [B, C]`` by name, built as ``cls(embed_dim, num_classes)``;
a class with ``attentive = True`` is one of the attentive probes ``scarce evaluate`` trains."""

ProbeKind = str
"""An attentive head in :data:`HEADS` (``simple``, ``multihead``, ``cross``)."""
HeadKind = str
"""Any head in :data:`HEADS` (the attentive ones and ``linear``)."""


@HEADS.register("simple")
class SimpleAttentiveProbe(nn.Module):
    """``Dropout → Linear(D, 1)`` scores, softmax over tokens, dropout on the weights (training),
    weighted sum of tokens, ``Linear(D, C)``. 39,655 parameters at D=384, C=102."""

    attentive: ClassVar[bool] = True

    def __init__(self, embed_dim: int, num_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.score_drop = nn.Dropout(dropout)
        self.score = nn.Linear(embed_dim, 1)
        self.weight_drop = nn.Dropout(dropout)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, tokens: Tensor) -> Tensor:
        weights = torch.softmax(self.score(self.score_drop(tokens)).squeeze(-1), dim=-1)  # [B, N]
        pooled = torch.einsum("bn,bnd->bd", self.weight_drop(weights), tokens)
        return self.head(pooled)


@HEADS.register("multihead")
class MultiHeadAttentiveProbe(nn.Module):
    """Values ``Dropout → Linear(D, D) → LayerNorm`` split in ``heads``; scores
    ``Dropout → Linear(D, heads)``, softmax over tokens per head, dropout (training); per-head
    pooling, concatenated, ``SiLU → Linear(D, D) → LayerNorm → SiLU → Linear(D, C)``.
    338,026 parameters at D=384, C=102, 4 heads."""

    attentive: ClassVar[bool] = True

    def __init__(self, embed_dim: int, num_classes: int, num_heads: int = 4, dropout: float = 0.2) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.values = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, embed_dim), nn.LayerNorm(embed_dim))
        self.scores = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, num_heads))
        self.weight_drop = nn.Dropout(dropout)
        self.head = nn.Sequential(
            nn.SiLU(),
            nn.Linear(embed_dim, embed_dim),
            nn.LayerNorm(embed_dim),
            nn.SiLU(),
            nn.Linear(embed_dim, num_classes),
        )

    def forward(self, tokens: Tensor) -> Tensor:
        batch, num_tokens, dim = tokens.shape
        values = self.values(tokens).view(batch, num_tokens, self.num_heads, dim // self.num_heads)
        weights = self.weight_drop(torch.softmax(self.scores(tokens), dim=1))  # [B, N, heads]
        pooled = torch.einsum("bnh,bnhc->bhc", weights, values).reshape(batch, dim)
        return self.head(pooled)


@HEADS.register("cross")
class CrossAttentiveProbe(nn.Module):
    """One learned query attends to ``LayerNorm(tokens)`` (heads, no qkv bias, attention and
    projection dropout); residual into the query, LayerNorm, ``query + SwiGLU(query)``, then
    ``LayerNorm → Linear(D, C)``. 1,811,430 parameters at D=384, C=102, 4 heads."""

    attentive: ClassVar[bool] = True

    def __init__(self, embed_dim: int, num_classes: int, num_heads: int = 4, dropout: float = 0.2) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.query = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.token_norm = nn.LayerNorm(embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.proj_drop = nn.Dropout(dropout)
        self.query_norm = nn.LayerNorm(embed_dim)
        self.ffn = SwiGLUFFN(embed_dim)
        self.head_norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)
        self.apply(init_linear_)
        nn.init.trunc_normal_(self.query, std=0.02)

    def forward(self, tokens: Tensor) -> Tensor:
        batch, num_tokens, dim = tokens.shape
        head_dim = dim // self.num_heads
        normed = self.token_norm(tokens)
        query = self.query.expand(batch, -1, -1)
        q = self.q_proj(query).view(batch, 1, self.num_heads, head_dim).transpose(1, 2)
        k = self.k_proj(normed).view(batch, num_tokens, self.num_heads, head_dim).transpose(1, 2)
        v = self.v_proj(normed).view(batch, num_tokens, self.num_heads, head_dim).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        query = query + self.proj_drop(self.proj(attended.transpose(1, 2).reshape(batch, 1, dim)))
        query = self.query_norm(query)
        query = query + self.ffn(query)
        return self.head(self.head_norm(query[:, 0]))


@HEADS.register("linear")
class MeanPoolLinearHead(nn.Module):
    """Mean over tokens, then ``Linear(D, C)`` initialised N(0, 0.01) with zero bias (the S3L
    fine-tuning / linear-evaluation classifier; for a ResNet, global average pooling + fc)."""

    def __init__(self, embed_dim: int, num_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(embed_dim, num_classes)
        nn.init.normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, tokens: Tensor) -> Tensor:
        """``[B, N, D] -> [B, C]``."""
        return self.head(tokens.mean(dim=1))


def attentive_heads() -> tuple[str, ...]:
    """The registered attentive probes, in the paper's order where it has one."""
    names = [name for name, head in HEADS.items() if getattr(head, "attentive", False)]
    paper = ("simple", "multihead", "cross")
    return tuple(sorted(names, key=lambda name: (paper.index(name) if name in paper else len(paper), name)))


def build_probe(kind: HeadKind, embed_dim: int, num_classes: int, **kwargs: float) -> nn.Module:
    """A head by name (see :data:`HEADS`): the attentive ``simple``, ``multihead`` or ``cross``, or ``linear``."""
    return HEADS.get(kind)(embed_dim, num_classes, **kwargs)
