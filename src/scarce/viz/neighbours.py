"""Nearest neighbours in feature space: for each query, the ``k`` most cosine-similar gallery items."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def nearest_neighbours(queries: Tensor, gallery: Tensor, k: int, exclude_self: bool = False) -> tuple[Tensor, Tensor]:
    """``queries [Q, D]``, ``gallery [M, D]`` -> ``(similarities [Q, k], indices [Q, k])``, best first.

    ``exclude_self``: the queries are the first ``Q`` gallery items; each skips itself.
    """
    similarity = F.normalize(queries.float(), dim=-1) @ F.normalize(gallery.float(), dim=-1).T  # [Q, M]
    if exclude_self:
        similarity[torch.arange(len(queries)), torch.arange(len(queries))] = -float("inf")
    k = min(k, similarity.shape[1] - int(exclude_self))
    return similarity.topk(k, dim=1)
