"""Shared test fixtures: deterministic seeds, the real datasets. Shared constants and helpers are in
``tests/helpers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.helpers import IMAGENETTE, require_dataset


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def imagenette() -> Path:
    """The real Imagenette directory (``../shared/datasets/imagenette``); skips without it, fails under
    ``CI=true``. Tests that only need it present use ``@needs_data`` (``tests.helpers``)."""
    return require_dataset(IMAGENETTE)
