"""Constants and helpers shared by the test modules (fixtures live in ``conftest.py``).

The dataset paths come from ``benchmarks.common``, the one place both the tests and the benchmarks
read them from (tests may import from ``benchmarks``; benchmarks never import from ``tests``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from benchmarks.common import DATASETS, IMAGENETTE, IMAGEWOOF

__all__ = [
    "DATASETS",
    "IMAGENETTE",
    "IMAGEWOOF",
    "TINY_OVERRIDES",
    "needs_data",
    "random_keep_mask",
    "require_dataset",
]

# A test marked ``@needs_data`` (or with ``pytestmark = needs_data``) uses the ``imagenette`` fixture of
# ``conftest.py``: it is skipped without the real images, and fails under ``CI=true`` (``require_dataset``).
needs_data = pytest.mark.usefixtures("imagenette")

# Pretraining on real images, as small as it goes: 256 Imagenette images, no workers, no tensorboard.
TINY_OVERRIDES = [
    f"data.spec=npz:{IMAGENETTE}",
    "data.subset_total=256",
    "data.num_workers=0",
    "run.tensorboard=false",
]


def require_dataset(path: Path) -> Path:
    """``path`` if it exists. Otherwise the calling test (or fixture) is skipped, except under ``CI=true``
    (``.ci/run`` sets it), where missing real data is a failure: CI must not pass by skipping them."""
    if path.exists():
        return path
    message = f"real data not found at {path} (see ../shared/datasets)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def random_keep_mask(batch: int, grid: tuple[int, int], ratio: float = 0.6, seed: int = 0) -> torch.Tensor:
    """A blockwise keep mask ``[B, N]`` (True = visible) for tests."""
    from scarce.masking import make_mask_generator

    generator = make_mask_generator("blockwise", grid, ratio)
    return generator(batch, torch.Generator().manual_seed(seed))
