"""I-JEPA's multi-block masks: block scales and aspects as stated, context and targets disjoint,
reproducible through the loader, and validated in the configuration."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from scarce.config import load_config
from scarce.data.image_set import ImageSet
from scarce.data.loader import AugmentedViews, collate_batch
from scarce.errors import ConfigError
from scarce.masking import MultiBlockMaskGenerator, make_mask_generator


@pytest.mark.parametrize("grid", [(14, 14), (6, 6), (12, 12)])
def test_context_and_targets_never_overlap_and_are_never_empty(grid: tuple[int, int]) -> None:
    generator = make_mask_generator("multiblock", grid, 0.6)
    rng = random.Random(0)
    for _ in range(500):
        keep, predict = generator.sample_masks(rng)
        assert keep.shape == predict.shape == (grid[0] * grid[1],)
        assert not (keep & predict).any()
        assert keep.any() and predict.any()


def _blocks(generator: MultiBlockMaskGenerator, scale: tuple[float, float], aspect: tuple[float, float], n: int):
    rng = random.Random(1)
    return [generator._rectangle(rng, scale, aspect) for _ in range(n)]


def _side_lengths(block: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(block)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


def test_target_blocks_have_the_stated_scale_and_aspect() -> None:
    grid = (28, 28)  # fine enough that rounding a side moves the area by a few per cent only
    generator = MultiBlockMaskGenerator(grid, target_scale=(0.15, 0.2), target_aspect=(0.75, 1.5))
    for block in _blocks(generator, generator.target_scale, generator.target_aspect, 300):
        height, width = _side_lengths(block)
        assert block.sum() == height * width  # one solid rectangle
        share = height * width / generator.num_tokens
        assert 0.15 * 0.85 <= share <= 0.2 * 1.15
        assert 0.75 * 0.85 <= height / width <= 1.5 * 1.15


def test_context_block_scale_and_target_union_share() -> None:
    generator = MultiBlockMaskGenerator((14, 14))
    for block in _blocks(generator, generator.context_scale, (1.0, 1.0), 300):
        height, width = _side_lengths(block)
        assert height == width and 0.85 * 0.9 <= block.sum() / 196 <= 1.0
    rng = random.Random(2)
    shares = [generator.sample_masks(rng)[1].mean() for _ in range(500)]
    # four blocks of 15-20 % each overlap: the predicted share lies between one block and four
    assert min(shares) >= 0.12 and max(shares) <= 0.8 and 0.3 <= float(np.mean(shares)) <= 0.6


def test_tiny_grid_gives_a_target_cell_back_to_the_context() -> None:
    generator = MultiBlockMaskGenerator((2, 2), target_blocks=4, target_scale=(1.0, 1.0), target_aspect=(1.0, 1.0))
    keep, predict = generator.sample_masks(random.Random(0))
    assert keep.sum() == 1 and predict.sum() == 3


def test_multiblock_masks_reach_the_batch_reproducibly() -> None:
    images = ImageSet(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), None, [f"image{i}" for i in range(4)])
    generator = make_mask_generator("multiblock", (8, 8), 0.6)
    dataset = AugmentedViews(images, lambda image, _: image, generator, seed=3)
    batch = collate_batch([dataset[(0, index)] for index in range(4)])
    again = collate_batch([dataset[(0, index)] for index in range(4)])
    assert batch.keep_mask is not None and batch.predict_mask is not None
    assert not (batch.keep_mask & batch.predict_mask).any()
    assert torch.equal(batch.predict_mask, again.predict_mask)  # type: ignore[arg-type]


def test_multiblock_configuration_is_validated() -> None:
    config = load_config("scott-tiny", ["masking.kind=multiblock", "masking.target_blocks=2"])
    assert config.masking.target_blocks == 2
    with pytest.raises(ConfigError, match="target_scale"):
        load_config("scott-tiny", ["masking.kind=multiblock", "masking.target_scale=[0.3,0.2]"])
    with pytest.raises(ConfigError, match="target_aspect"):
        load_config("scott-tiny", ["masking.target_aspect=[0,1]"])
