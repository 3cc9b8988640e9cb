"""Per-iteration schedules (spec sec. 4.8): pure functions of the step, so resuming is exact.

- learning rate: linear warm-up ``start -> peak``, then flat for a fraction of the remaining
  steps, then cosine ``peak -> final`` (:class:`WarmupFlatCosine`);
- weight decay: linear ``start -> end`` over all steps (:class:`Linear`);
- EMA momentum: linear (paper) or cosine ``start -> end`` over all steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Ramp:
    """A schedule from ``start`` (step 0) to ``end`` (step ``total_steps``), clamped outside."""

    start: float
    end: float
    total_steps: int

    def progress(self, step: int) -> float:
        """Fraction of the ramp done at ``step``, in [0, 1] (1 for an empty ramp)."""
        if self.total_steps <= 0:
            return 1.0
        return min(max(step / self.total_steps, 0.0), 1.0)


class Linear(Ramp):
    """``value(step)`` goes linearly from ``start`` to ``end``."""

    def __call__(self, step: int) -> float:
        return self.start + (self.end - self.start) * self.progress(step)


class Cosine(Ramp):
    """Half-cosine from ``start`` to ``end``."""

    def __call__(self, step: int) -> float:
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * self.progress(step)))


@dataclass(frozen=True)
class WarmupFlatCosine:
    """Linear warm-up ``start -> peak`` over ``warmup_steps``; flat at ``peak`` for
    ``flat_fraction`` of the remaining steps; cosine ``peak -> final`` over the rest.

    With the paper's numbers (Flowers-102: 127 it/epoch, 300 epochs, 40 warm-up epochs):
    ``WarmupFlatCosine(1e-6, 5e-4, 1e-5, total_steps=38100, warmup_steps=5080, flat_fraction=0.72)``.
    """

    start: float
    peak: float
    final: float
    total_steps: int
    warmup_steps: int
    flat_fraction: float = 0.72

    @property
    def flat_end(self) -> int:
        """First step of the cosine part."""
        remaining = max(self.total_steps - self.warmup_steps, 0)
        return self.warmup_steps + round(self.flat_fraction * remaining)

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return Linear(self.start, self.peak, self.warmup_steps)(step)
        if step < self.flat_end:
            return self.peak
        return Cosine(self.peak, self.final, self.total_steps - self.flat_end)(step - self.flat_end)
