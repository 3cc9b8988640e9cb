"""Collapse diagnostics of representations (logged once per epoch)."""

from __future__ import annotations

import torch
from torch import Tensor


def token_std_across_batch(tokens: Tensor) -> float:
    """Standard deviation of tokens ``[B, N, D]`` across the batch, averaged over N and D.

    Near 0 means every image gets the same target: collapse.
    """
    return tokens.float().std(dim=0).mean().item()


def effective_rank(features: Tensor, eps: float = 1e-12) -> float:
    """RankMe effective rank (Garrido et al., 2023) of pooled features ``[M, D]``:
    ``exp(entropy(σ / Σσ))`` of the singular values; between 1 (collapse) and ``min(M, D)``."""
    singular = torch.linalg.svdvals(features.float())
    weights = singular / (singular.sum() + eps) + eps
    return float(torch.exp(-(weights * weights.log()).sum()))
