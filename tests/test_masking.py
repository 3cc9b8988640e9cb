"""Mask generators: exact counts, reproducibility, position statistics, block structure."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from scarce.masking import (
    BlockwiseMaskGenerator,
    keep_count,
    make_mask_generator,
    mask_statistics,
    scaled_min_area,
)

RATIOS = [0.05, 0.1, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.9, 0.95]


def test_keep_count_paper_case() -> None:
    assert keep_count(196, 0.6) == 79
    assert 196 - keep_count(196, 0.6) == 117


@pytest.mark.parametrize(
    ("num_tokens", "ratio", "expected"), [(10, 0.7, 3), (16, 0.75, 4), (196, 0.5, 98), (4, 0.01, 3)]
)
def test_keep_count_exact_arithmetic(num_tokens: int, ratio: float, expected: int) -> None:
    assert keep_count(num_tokens, ratio) == expected


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_keep_count_rejects_bad_ratio(ratio: float) -> None:
    with pytest.raises(ValueError, match=r"mask_ratio must be in \(0, 1\)"):
        keep_count(196, ratio)


GRIDS = [(side, side) for side in range(2, 33)] + [(2, 5), (3, 7), (6, 14), (32, 8), (14, 28)]


@pytest.mark.parametrize("kind", ["blockwise", "uniform"])
def test_exact_kept_count_sweep(kind: str) -> None:
    rng = random.Random(0)
    for grid in GRIDS:
        for ratio in RATIOS:
            generator = make_mask_generator(kind, grid, ratio)
            expected = keep_count(grid[0] * grid[1], ratio)
            for _ in range(3):
                keep, _ = generator.sample_one(rng)
                assert keep.dtype == bool
                assert int(keep.sum()) == expected, (kind, grid, ratio)


@pytest.mark.parametrize("kind", ["blockwise", "uniform"])
def test_batch_masks_dtype_shape_and_reproducible(kind: str) -> None:
    generator = make_mask_generator(kind, grid_size=(14, 14), mask_ratio=0.6)
    first = generator(32, torch.Generator().manual_seed(7))
    again = generator(32, torch.Generator().manual_seed(7))
    other = generator(32, torch.Generator().manual_seed(8))
    assert first.dtype == torch.bool and first.shape == (32, 196)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert (first.sum(dim=1) == 79).all()
    assert len({tuple(row.tolist()) for row in first}) == 32  # masks differ per sample


def test_generator_state_advances() -> None:
    generator = make_mask_generator("blockwise", (8, 8), 0.6)
    rng = torch.Generator().manual_seed(0)
    assert not torch.equal(generator(4, rng), generator(4, rng))


def test_uniform_whole_number_keep_counts_do_not_crash() -> None:
    for ratio in (0.5, 0.75):
        masks = make_mask_generator("uniform", (14, 14), ratio)(8)
        assert (masks.sum(1) == keep_count(196, ratio)).all()


def test_min_area_scales_with_grid() -> None:
    assert scaled_min_area((14, 14)) == 16
    assert scaled_min_area((6, 6)) == 3
    assert scaled_min_area((8, 8)) == 5
    assert scaled_min_area((2, 2)) == 1
    assert BlockwiseMaskGenerator((14, 14), 0.6).min_area == 16


def test_rectangles_per_mask_match_paper() -> None:
    """At r = 0.6 on 14x14 the paper's generator places about 4.7 rectangles per mask."""
    stats = mask_statistics(make_mask_generator("blockwise", (14, 14), 0.6), num_masks=2000)
    assert 4.4 < stats.rectangles_mean < 5.0
    assert stats.kept_min == stats.kept_max == 79


@pytest.mark.parametrize("grid", [(6, 6), (8, 8), (14, 14), (32, 32)])
def test_every_position_sometimes_visible_sometimes_masked(grid: tuple[int, int]) -> None:
    stats = mask_statistics(make_mask_generator("blockwise", grid, 0.6), num_masks=3000)
    assert stats.visibility_frequency.shape == grid
    assert stats.visibility_frequency.min() > 0.0
    assert stats.visibility_frequency.max() < 1.0


@pytest.mark.parametrize("kind_kwargs", [("uniform", {}), ("blockwise", {"placement": "clipped"})])
@pytest.mark.parametrize("grid", [(6, 6), (14, 14)])
def test_position_uniform_generators(kind_kwargs: tuple[str, dict], grid: tuple[int, int]) -> None:
    kind, kwargs = kind_kwargs
    stats = mask_statistics(make_mask_generator(kind, grid, 0.6, **kwargs), num_masks=3000)
    frequency = stats.visibility_frequency
    assert frequency.max() / frequency.min() < 1.5
    assert abs(frequency.mean() - keep_count(grid[0] * grid[1], 0.6) / (grid[0] * grid[1])) < 1e-9


def test_reference_placement_is_biased_towards_the_centre() -> None:
    """Documented behaviour of the paper's generator: borders are rarely visible."""
    frequency = mask_statistics(make_mask_generator("blockwise", (14, 14), 0.6), num_masks=2000).visibility_frequency
    assert frequency[0, 0] < 0.2 < 0.5 < frequency[7, 7]


def largest_visible_rectangle(keep: np.ndarray) -> int:
    """Area of the largest all-visible axis-aligned rectangle (histogram-stack algorithm)."""
    heights = np.zeros(keep.shape[1], dtype=int)
    best = 0
    for row in keep:
        heights = np.where(row, heights + 1, 0)
        stack: list[int] = []
        for col in range(len(heights) + 1):
            height = heights[col] if col < len(heights) else 0
            while stack and heights[stack[-1]] >= height:
                top = heights[stack.pop()]
                left = stack[-1] + 1 if stack else 0
                best = max(best, int(top) * (col - left))
            stack.append(col)
    return best


def _largest_rectangles(generator: object, grid: tuple[int, int], num_masks: int = 300) -> list[int]:
    rng = random.Random(0)
    return [largest_visible_rectangle(generator.sample_one(rng)[0].reshape(grid)) for _ in range(num_masks)]


@pytest.mark.parametrize("grid", [(6, 6), (8, 8), (14, 14), (20, 20)])
def test_blockwise_masks_contain_min_area_rectangles(grid: tuple[int, int]) -> None:
    """Every blockwise mask holds a visible rectangle of about ``min_area`` or more (0.75x is the
    worst case of rounding the drawn area to whole sides)."""
    bound = int(0.75 * scaled_min_area(grid))
    assert min(_largest_rectangles(BlockwiseMaskGenerator(grid, 0.6), grid)) >= bound


def test_min_area_check_fails_for_uniform_masks() -> None:
    """The same check on uniform masks fails for almost every mask: the test above can fail."""
    bound = int(0.75 * scaled_min_area((14, 14)))
    areas = np.array(_largest_rectangles(make_mask_generator("uniform", (14, 14), 0.6), (14, 14)))
    assert np.mean(areas >= bound) < 0.05


def test_largest_visible_rectangle_helper() -> None:
    keep = np.zeros((5, 6), dtype=bool)
    keep[1:4, 2:6] = True
    keep[0, 0] = True
    assert largest_visible_rectangle(keep) == 12


def test_tiny_grid_terminates_with_exact_count() -> None:
    generator = BlockwiseMaskGenerator((2, 2), 0.3)  # no rectangle strictly smaller than 2x2 fits 3 cells
    rng = random.Random(1)
    for _ in range(50):
        keep, _ = generator.sample_one(rng)
        assert keep.sum() == 3


def test_unknown_kind_and_placement() -> None:
    with pytest.raises(ValueError, match="unknown mask kind"):
        make_mask_generator("random", (14, 14), 0.6)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="placement"):
        BlockwiseMaskGenerator((14, 14), 0.6, placement="outside")  # type: ignore[arg-type]
