"""Shared test fixtures: deterministic seeds, small thread count."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


def random_keep_mask(batch: int, grid: tuple[int, int], ratio: float = 0.6, seed: int = 0) -> torch.Tensor:
    """A blockwise keep mask ``[B, N]`` (True = visible) for tests."""
    from scarce.masking import make_mask_generator

    generator = make_mask_generator("blockwise", grid, ratio)
    return generator(batch, torch.Generator().manual_seed(seed))
