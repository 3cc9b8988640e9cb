"""PCA token maps (SCOTT, Vélez-García et al. 2025, fig. 1; after DINOv2, Oquab et al. 2023).

One PCA is fitted jointly on the tokens of all the images shown, so that a colour means the same
direction of feature space in every image; the first three components, each min-max scaled over
all tokens, are the RGB channels; the background is removed by thresholding the first component.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import PCA
from torch import Tensor


@dataclass(frozen=True)
class PCAMaps:
    """``rgb [B, H', W', 3]`` in [0, 1] (background black), ``components [B, H', W', 3]`` (the raw
    projections), ``foreground [B, H', W']`` bool, ``explained [3]`` explained-variance ratios."""

    rgb: np.ndarray
    components: np.ndarray
    foreground: np.ndarray
    explained: np.ndarray


def pca_token_maps(tokens: Tensor, grid_size: tuple[int, int], threshold: float = 0.0) -> PCAMaps:
    """PCA maps of ``tokens [B, N, D]`` on the grid ``(H', W')``, ``N = H' W'``.

    Foreground: first component ``> threshold`` (the components are centred, so 0 splits at the
    mean). A component's sign is arbitrary; it is fixed so that the foreground (``> threshold``)
    is the smaller part of the tokens, as objects usually are in these pictures.
    """
    batch, num_tokens, dim = tokens.shape
    if grid_size[0] * grid_size[1] != num_tokens:
        raise ValueError(f"grid {grid_size} does not hold {num_tokens} tokens")
    flat = tokens.detach().float().reshape(-1, dim).cpu().numpy()
    pca = PCA(n_components=3, svd_solver="full").fit(flat)
    projected = pca.transform(flat)  # [B N, 3]
    if (projected[:, 0] > threshold).mean() > 0.5:
        projected[:, 0] = -projected[:, 0]
    foreground = projected[:, 0] > threshold
    low, high = projected.min(axis=0), projected.max(axis=0)
    rgb = (projected - low) / np.maximum(high - low, 1e-12)
    rgb[~foreground] = 0.0
    shape = (batch, *grid_size)
    return PCAMaps(
        rgb=rgb.reshape(*shape, 3),
        components=projected.reshape(*shape, 3),
        foreground=foreground.reshape(shape),
        explained=pca.explained_variance_ratio_.astype(np.float64),
    )


def upsample_map(grid_map: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour upsampling ``[H', W', ...] -> [size, size, ...]`` (tokens as cells)."""
    rows = np.minimum(np.arange(size) * grid_map.shape[0] // size, grid_map.shape[0] - 1)
    cols = np.minimum(np.arange(size) * grid_map.shape[1] // size, grid_map.shape[1] - 1)
    return grid_map[rows][:, cols]
