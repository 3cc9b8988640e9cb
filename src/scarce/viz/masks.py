"""Masks and views as a method sees them: the training views of the run's transform, and for
masked-image methods what the context sees and what is predicted (the run's mask generator)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from scarce.masking import MaskGenerator
from scarce.viz.pca import upsample_map

HIDDEN_GREY = 0.5
"""Value of hidden pixels in the context picture."""
PREDICT_TINT = np.array([1.0, 0.2, 0.2])
"""Colour laid over predicted cells (half transparent) in the prediction picture."""


@dataclass(frozen=True)
class MaskPictures:
    """``context [B, H, W, 3]``: the image where the context sees it, grey elsewhere;
    ``predicted [B, H, W, 3]``: the image with the predicted cells tinted red;
    ``keep``, ``predict``: the masks ``[B, H', W']`` they were drawn from."""

    context: np.ndarray
    predicted: np.ndarray
    keep: np.ndarray
    predict: np.ndarray


def sample_masks(generator: MaskGenerator, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``count`` masks of ``generator``: ``(keep [B, N], predict [B, N])`` bool."""
    rng = random.Random(seed)
    pairs = [generator.sample_masks(rng) for _ in range(count)]
    return np.stack([keep for keep, _ in pairs]), np.stack([predict for _, predict in pairs])


def mask_pictures(images: Tensor, keep: np.ndarray, predict: np.ndarray, grid_size: tuple[int, int]) -> MaskPictures:
    """``images`` uint8 ``[B, 3, S, S]``, masks ``[B, N]`` bool on ``grid_size`` -> :class:`MaskPictures`."""
    pixels = images.permute(0, 2, 3, 1).float().numpy() / 255.0  # [B, S, S, 3]
    size = pixels.shape[1]
    keep_grid = keep.reshape(-1, *grid_size)
    predict_grid = predict.reshape(-1, *grid_size)
    context, predicted = [], []
    for image, keep_cells, predict_cells in zip(pixels, keep_grid, predict_grid, strict=True):
        seen = upsample_map(keep_cells, size)[..., None]
        context.append(np.where(seen, image, HIDDEN_GREY))
        tinted = upsample_map(predict_cells, size)[..., None]
        predicted.append(np.where(tinted, 0.5 * image + 0.5 * PREDICT_TINT, image))
    return MaskPictures(np.stack(context), np.stack(predicted), keep_grid, predict_grid)


def training_views(transform: object, images: Tensor, seed: int = 0) -> list[Tensor]:
    """The views ``transform(image, generator)`` makes of each image: a list of B uint8 ``[V, 3, S, S]``."""
    views = []
    for index, image in enumerate(images):
        out = transform(image, torch.Generator().manual_seed(seed + index))  # type: ignore[operator]
        views.append(torch.stack(out if isinstance(out, tuple) else (out,)))
    return views
