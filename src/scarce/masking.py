"""Mask generators for masked image modelling (spec sec. 4.2).

A mask is a bool tensor ``[B, N]`` over the row-major token grid, **True = visible** (kept).
Every generator keeps exactly ``keep_count(N, mask_ratio) = ceil((1 - r) · N)`` tokens per mask,
clamped to ``[1, N - 1]`` so that there is always something to see and something to predict.

- ``blockwise`` (BEiT, Bao et al. 2022; as the SCOTT code uses it): the *visible* set grows as a
  union of random rectangles. Each round makes up to 10 tries of area ``~ U(min_area, pending)``
  and aspect ``exp(U(ln 0.3, ln 3.3))``; a rectangle strictly smaller than the grid is accepted
  if it adds between 1 and ``pending`` new visible cells. Rounds repeat until the kept count is
  reached (about 4.7 rectangles per mask at r = 0.6 on 14x14, as in the paper). After
  ``max_failed_rounds`` rounds that added nothing (tiny grids, the last few cells), the remaining
  cells are grown next to the visible set: the count is exact and the loop always ends.

  ``placement="inside"`` (default, the reference) draws the top-left corner so that the
  rectangle lies inside the grid. This makes border cells rarely visible (at 14x14, r = 0.6, a
  corner is visible in ~4% of masks, the centre in ~75%). ``placement="clipped"`` draws the
  corner so that every cell is covered by the same number of placements and clips the rectangle
  to the grid: visibility is then nearly uniform over positions (max/min ≈ 1.2 at 14x14).
- ``uniform``: a random subset of exactly the kept count (the official code crashes when
  ``(1 - r) · N`` is a whole number).
- ``multiblock`` (I-JEPA, Assran et al. 2023, sec. 3): ``target_blocks`` rectangles of scale
  ``target_scale`` and aspect ``target_aspect`` are the *predicted* set; one context rectangle of
  scale ``context_scale`` (aspect 1) minus the target blocks is the *visible* set. The two never
  overlap, and the tokens in neither are neither seen nor predicted. The kept count varies
  from mask to mask (``mask_ratio`` is not used). :meth:`MaskGenerator.sample_masks` returns both
  sets; the other generators predict every token they do not keep.

Randomness comes from an explicit ``torch.Generator`` (or a ``random.Random`` per sample, for
loader workers); there is no global state.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

MaskKind = Literal["blockwise", "uniform", "multiblock"]
Placement = Literal["inside", "clipped"]
REFERENCE_MIN_AREA = 16
"""``min_area`` of the paper at 14x14 = 196 tokens; scaled in proportion to other grids."""
REFERENCE_NUM_TOKENS = 196


def keep_count(num_tokens: int, mask_ratio: float) -> int:
    """Number of visible tokens: ``ceil((1 - r) · N)`` in exact arithmetic, clamped to ``[1, N-1]``.

    ``keep_count(196, 0.6) == 79``; ``keep_count(10, 0.7) == 3`` (float ``(1-0.7)*10`` is
    ``3.0000000000000004``: the product is rounded to 9 decimals before the ceiling).
    """
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    if num_tokens < 2:
        raise ValueError(f"a mask needs at least 2 tokens, got {num_tokens}")
    kept = math.ceil(round((1.0 - mask_ratio) * num_tokens, 9))
    return min(max(kept, 1), num_tokens - 1)


def scaled_min_area(grid_size: tuple[int, int]) -> int:
    """``min_area`` for a grid: 16 at 14x14 (paper), in proportion to the number of tokens."""
    num_tokens = grid_size[0] * grid_size[1]
    return max(1, round(REFERENCE_MIN_AREA * num_tokens / REFERENCE_NUM_TOKENS))


class MaskGenerator:
    """Base class: ``generator(batch_size, generator=None) -> BoolTensor[B, N]`` (True = visible).

    Subclasses implement :meth:`sample_one`, which draws one mask from a ``random.Random``.
    """

    def __init__(self, grid_size: tuple[int, int], mask_ratio: float | None) -> None:
        grid_h, grid_w = grid_size
        if grid_h < 1 or grid_w < 1:
            raise ValueError(f"grid_size must be positive, got {grid_size}")
        self.grid_size = (int(grid_h), int(grid_w))
        self.num_tokens = grid_h * grid_w
        self.mask_ratio = mask_ratio
        self.num_keep = -1 if mask_ratio is None else keep_count(self.num_tokens, mask_ratio)
        """Visible tokens per mask; -1 where it varies from mask to mask (``mask_ratio`` None)."""

    def sample_one(self, rng: random.Random) -> tuple[np.ndarray, int]:
        """One mask: ``(keep [N] bool array, number of rectangles it was built from)``."""
        raise NotImplementedError

    def sample_masks(self, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
        """``(keep [N], predict [N])`` bool arrays: what the context sees and what is predicted
        (here every token that is not kept)."""
        keep, _ = self.sample_one(rng)
        return keep, ~keep

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """``batch_size`` masks ``[B, N]`` (bool); reproducible from ``generator``'s state."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        rng = random.Random(seed)
        masks = np.stack([self.sample_one(rng)[0] for _ in range(batch_size)])
        return torch.from_numpy(masks)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(grid_size={self.grid_size}, mask_ratio={self.mask_ratio}, keep={self.num_keep})"


class UniformMaskGenerator(MaskGenerator):
    """A uniformly random subset of exactly ``num_keep`` visible tokens."""

    def sample_one(self, rng: random.Random) -> tuple[np.ndarray, int]:
        keep = np.zeros(self.num_tokens, dtype=bool)
        keep[rng.sample(range(self.num_tokens), self.num_keep)] = True
        return keep, 0


class BlockwiseMaskGenerator(MaskGenerator):
    """BEiT-style blockwise growth of the visible set (see the module docstring).

    Args:
        grid_size: token grid ``(H', W')``.
        mask_ratio: fraction of masked tokens ``r``.
        min_area: smallest rectangle area tried; default :func:`scaled_min_area`.
        aspect_range: range of the rectangle aspect ratio (log-uniform).
        max_tries: tries per round.
        max_failed_rounds: rounds that add nothing before the remaining cells are grown one by one.
        placement: ``"inside"`` (reference) or ``"clipped"`` (position-uniform), see module doc.
    """

    def __init__(
        self,
        grid_size: tuple[int, int],
        mask_ratio: float,
        min_area: int | None = None,
        aspect_range: tuple[float, float] = (0.3, 1 / 0.3),
        max_tries: int = 10,
        max_failed_rounds: int = 100,
        placement: Placement = "inside",
    ) -> None:
        super().__init__(grid_size, mask_ratio)
        self.min_area = scaled_min_area(self.grid_size) if min_area is None else int(min_area)
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1, got {min_area}")
        self.log_aspect = (math.log(aspect_range[0]), math.log(aspect_range[1]))
        if placement not in ("inside", "clipped"):
            raise ValueError(f"placement must be 'inside' or 'clipped', got {placement!r}")
        self.max_tries = max_tries
        self.max_failed_rounds = max_failed_rounds
        self.placement = placement

    def _add_rectangle(self, visible: np.ndarray, pending: int, rng: random.Random) -> int:
        """Try to make one rectangle visible; return the number of cells it added (0 = failed)."""
        grid_h, grid_w = self.grid_size
        for _ in range(self.max_tries):
            area = rng.uniform(self.min_area, pending)
            aspect = math.exp(rng.uniform(*self.log_aspect))
            height = round(math.sqrt(area * aspect))
            width = round(math.sqrt(area / aspect))
            if not (1 <= height < grid_h and 1 <= width < grid_w):
                continue
            if self.placement == "inside":
                top = rng.randint(0, grid_h - height)
                left = rng.randint(0, grid_w - width)
            else:
                top = rng.randint(1 - height, grid_h - 1)
                left = rng.randint(1 - width, grid_w - 1)
            # numpy slicing clips at the far edge; max(., 0) clips at the near edge
            window = visible[max(top, 0) : top + height, max(left, 0) : left + width]
            added = window.size - int(window.sum())
            if 0 < added <= pending:
                window[...] = True
                return added
        return 0

    def _grow_cells(self, visible: np.ndarray, pending: int, rng: random.Random) -> None:
        """Make ``pending`` more cells visible, each next to the visible set when possible."""
        for _ in range(pending):
            hidden = ~visible
            border = np.zeros_like(visible)
            border[1:, :] |= visible[:-1, :]
            border[:-1, :] |= visible[1:, :]
            border[:, 1:] |= visible[:, :-1]
            border[:, :-1] |= visible[:, 1:]
            candidates = np.flatnonzero(border & hidden)
            if candidates.size == 0:
                candidates = np.flatnonzero(hidden)
            visible.flat[candidates[rng.randrange(candidates.size)]] = True

    def sample_one(self, rng: random.Random) -> tuple[np.ndarray, int]:
        visible = np.zeros(self.grid_size, dtype=bool)
        count, rectangles, failed_rounds = 0, 0, 0
        while count < self.num_keep:
            pending = self.num_keep - count
            added = self._add_rectangle(visible, pending, rng)
            if added > 0:
                count += added
                rectangles += 1
                continue
            failed_rounds += 1
            if failed_rounds >= self.max_failed_rounds:
                self._grow_cells(visible, pending, rng)
                break
        return visible.reshape(-1), rectangles


class MultiBlockMaskGenerator(MaskGenerator):
    """I-JEPA's masks: several small target blocks, one large context block minus the targets.

    Args:
        grid_size: token grid ``(H', W')``.
        target_blocks: number of target rectangles (4 in I-JEPA).
        target_scale: range of a target rectangle's area as a share of the grid (0.15-0.2).
        target_aspect: range of a target rectangle's aspect ratio height/width (0.75-1.5).
        context_scale: range of the context rectangle's area share (0.85-1.0; aspect 1).

    Areas and aspects are drawn uniformly; a rectangle's side is rounded and clamped to
    ``[1, grid side]``, its position is uniform inside the grid. When the targets leave no
    visible cell of the context, the context is redrawn (up to 20 times), then one context cell
    is taken back from the targets, so every mask sees at least one token and predicts at least one.
    """

    def __init__(
        self,
        grid_size: tuple[int, int],
        mask_ratio: float | None = None,
        target_blocks: int = 4,
        target_scale: tuple[float, float] = (0.15, 0.2),
        target_aspect: tuple[float, float] = (0.75, 1.5),
        context_scale: tuple[float, float] = (0.85, 1.0),
    ) -> None:
        del mask_ratio  # the blocks' scales set how much is seen and predicted
        super().__init__(grid_size, None)
        for name, (low, high) in (("target_scale", target_scale), ("context_scale", context_scale)):
            if not 0.0 < low <= high <= 1.0:
                raise ValueError(f"{name} must satisfy 0 < low <= high <= 1, got {(low, high)}")
        if not 0.0 < target_aspect[0] <= target_aspect[1]:
            raise ValueError(f"target_aspect must satisfy 0 < low <= high, got {target_aspect}")
        if target_blocks < 1:
            raise ValueError(f"target_blocks must be >= 1, got {target_blocks}")
        self.target_blocks = int(target_blocks)
        self.target_scale = (float(target_scale[0]), float(target_scale[1]))
        self.target_aspect = (float(target_aspect[0]), float(target_aspect[1]))
        self.context_scale = (float(context_scale[0]), float(context_scale[1]))

    def _rectangle(self, rng: random.Random, scale: tuple[float, float], aspect: tuple[float, float]) -> np.ndarray:
        """A ``[H', W']`` bool rectangle of area share ``~U(scale)`` and aspect ``~U(aspect)``."""
        grid_h, grid_w = self.grid_size
        area = rng.uniform(*scale) * self.num_tokens
        ratio = rng.uniform(*aspect)
        height = min(max(round(math.sqrt(area * ratio)), 1), grid_h)
        width = min(max(round(math.sqrt(area / ratio)), 1), grid_w)
        top = rng.randint(0, grid_h - height)
        left = rng.randint(0, grid_w - width)
        block = np.zeros(self.grid_size, dtype=bool)
        block[top : top + height, left : left + width] = True
        return block

    def sample_masks(self, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
        predict = np.zeros(self.grid_size, dtype=bool)
        for _ in range(self.target_blocks):
            predict |= self._rectangle(rng, self.target_scale, self.target_aspect)
        for _ in range(20):
            keep = self._rectangle(rng, self.context_scale, (1.0, 1.0)) & ~predict
            if keep.any():
                break
        else:  # the targets cover every context drawn: give one target cell back to the context
            cell = np.flatnonzero(predict)[rng.randrange(int(predict.sum()))]
            keep = np.zeros_like(predict)
            keep.flat[cell] = True
            predict.flat[cell] = False
        return keep.reshape(-1), predict.reshape(-1)

    def sample_one(self, rng: random.Random) -> tuple[np.ndarray, int]:
        keep, _ = self.sample_masks(rng)
        return keep, self.target_blocks


def make_mask_generator(
    kind: MaskKind, grid_size: tuple[int, int], mask_ratio: float, **kwargs: object
) -> MaskGenerator:
    """``make_mask_generator("blockwise", grid_size=(14, 14), mask_ratio=0.6)`` -> a callable
    ``(batch_size, generator=None) -> BoolTensor[B, N]`` (True = visible)."""
    builders: dict[str, Callable[..., MaskGenerator]] = {
        "blockwise": BlockwiseMaskGenerator,
        "uniform": UniformMaskGenerator,
        "multiblock": MultiBlockMaskGenerator,
    }
    if kind not in builders:
        raise ValueError(f"unknown mask kind {kind!r}; expected one of {sorted(builders)}")
    return builders[kind](tuple(grid_size), mask_ratio, **kwargs)


def equalize_keep_counts(keep_mask: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``[B, N] -> [B, N]``: each sample keeps a uniformly random subset of ``min_b K_b`` of its
    visible tokens, so that every sample keeps the same number and the visible tokens stack into
    ``[B, K, D]``. Equal counts are returned unchanged.

    A random subset, not the first tokens in raster order: with per-sample block sizes (multiblock)
    the counts of a batch differ widely, and raster truncation would almost never show the context
    encoder the bottom rows. Draws from ``generator`` (default: torch's global RNG, which a resumed
    run restores)."""
    counts = keep_mask.sum(dim=1)
    smallest = int(counts.min())
    if bool((counts == smallest).all()):
        return keep_mask
    scores = torch.rand(keep_mask.shape, generator=generator, device="cpu").to(keep_mask.device)
    scores = scores.masked_fill(~keep_mask, 2.0)  # hidden tokens rank last
    ranks = scores.argsort(dim=1).argsort(dim=1)
    return keep_mask & (ranks < smallest)


def count_components(keep: np.ndarray) -> int:
    """4-connected components of the visible cells of one ``[H', W']`` mask."""
    grid_h, grid_w = keep.shape
    seen = np.zeros_like(keep)
    components = 0
    for start in zip(*np.nonzero(keep & ~seen), strict=True):
        if seen[start]:
            continue
        components += 1
        stack = [start]
        seen[start] = True
        while stack:
            row, col = stack.pop()
            for next_row, next_col in ((row + 1, col), (row - 1, col), (row, col + 1), (row, col - 1)):
                inside = 0 <= next_row < grid_h and 0 <= next_col < grid_w
                if inside and keep[next_row, next_col] and not seen[next_row, next_col]:
                    seen[next_row, next_col] = True
                    stack.append((next_row, next_col))
    return components


@dataclass(frozen=True)
class MaskStatistics:
    """Statistics of ``num_masks`` masks from one generator."""

    num_masks: int
    kept_min: int
    kept_max: int
    rectangles_mean: float
    """Rectangles placed per mask (blockwise; 0 for uniform)."""
    components_mean: float
    """4-connected visible regions per mask."""
    visibility_frequency: np.ndarray
    """``[H', W']``: fraction of masks in which each position is visible."""


def mask_statistics(generator: MaskGenerator, num_masks: int = 1000, seed: int = 0) -> MaskStatistics:
    """Draw ``num_masks`` masks with ``random.Random(seed)`` and summarise them."""
    rng = random.Random(seed)
    samples = [generator.sample_one(rng) for _ in range(num_masks)]
    masks = np.stack([keep for keep, _ in samples]).reshape(num_masks, *generator.grid_size)
    kept = masks.reshape(num_masks, -1).sum(axis=1)
    return MaskStatistics(
        num_masks=num_masks,
        kept_min=int(kept.min()),
        kept_max=int(kept.max()),
        rectangles_mean=float(np.mean([rectangles for _, rectangles in samples])),
        components_mean=float(np.mean([count_components(mask) for mask in masks])),
        visibility_frequency=masks.mean(axis=0),
    )
