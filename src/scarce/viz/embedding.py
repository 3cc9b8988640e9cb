"""A 2-D map of embeddings: scikit-learn's t-SNE, or UMAP when ``umap-learn`` is installed."""

from __future__ import annotations

import importlib.util

import numpy as np
from sklearn.manifold import TSNE
from torch import Tensor


def embedding_map(features: Tensor, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """``features [M, D]`` -> ``(points [M, 2], method used)``; ``method`` auto | tsne | umap."""
    data = features.float().cpu().numpy()
    use_umap = method == "umap" or (method == "auto" and importlib.util.find_spec("umap") is not None)
    if use_umap:
        import umap  # type: ignore[import-not-found]

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(data), "umap"
    perplexity = float(min(30, max(2, (len(data) - 1) // 3)))
    points = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(data)
    return points, "tsne"
