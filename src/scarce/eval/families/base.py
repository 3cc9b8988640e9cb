"""The interface of a probe family of ``scarce evaluate``, and their registry.

A family is a function ``(context: ProbeContext) -> FamilyResult``: it trains its probes on the
training split, selects its configuration on the **validation** split, and scores the selected
configuration **once** on the test split (a row whose ``test`` is None was not selected). Without a
validation split (a label budget without ``val_per_class``) a family selects nothing: it trains one
fixed configuration, keeps its last epoch and scores it once on test (``val`` is None). A new
family is one module that registers its function with ``@PROBE_FAMILIES.register(NAME)`` and is
imported by :mod:`scarce.eval.families`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import Tensor

from scarce.data.image_set import ImageSet
from scarce.eval.features import FrozenEncoder, extract
from scarce.eval.metrics import ClassificationReport
from scarce.registry import Registry

if TYPE_CHECKING:
    import torch

    from scarce.evaluate import EvaluationConfig


@dataclass
class ProbeContext:
    """Everything a family may use: the frozen encoder, the labelled splits, their eval-transformed
    uint8 images ``views[split]`` ``[M, 3, S, S]``, the settings, and cached features.

    ``pooled(split)`` gives mean-pooled features ``[M, n·D]`` (computed once, shared by the
    families that use them); ``tokens(split)`` LayerNorm-ed tokens ``[M, N, D]`` (not cached).
    """

    frozen: FrozenEncoder
    splits: dict[str, ImageSet]
    views: dict[str, Tensor]
    settings: EvaluationConfig
    device: torch.device
    log: Callable[[str], None] = print
    show_progress: bool | None = None
    timings: dict[str, float] = field(default_factory=dict)
    _pooled: dict[str, Tensor] = field(default_factory=dict)

    @property
    def has_val(self) -> bool:
        """Whether a validation split exists to select on (not under a label budget without one)."""
        return "val" in self.splits

    @property
    def num_classes(self) -> int:
        return self.splits["train"].num_classes

    def labels(self, split: str) -> Tensor:
        labels = self.splits[split].labels
        assert labels is not None  # evaluate() checked that every split is labelled
        return labels

    def pooled(self, split: str) -> Tensor:
        if split not in self._pooled:
            tick = time.perf_counter()
            self._pooled[split] = extract(self.frozen.pooled, self.views[split])
            self.timings["pooled_features"] = self.timings.get("pooled_features", 0.0) + time.perf_counter() - tick
        return self._pooled[split]

    def tokens(self, split: str) -> Tensor:
        return extract(self.frozen.tokens, self.views[split])


@dataclass
class FamilyResult:
    """Rows of the results table (see :func:`result_row`) and, for protocols that are not a
    selection (few-shot), their own records."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    fewshot: list[dict[str, Any]] = field(default_factory=list)


ProbeFamily = Callable[[ProbeContext], FamilyResult]

PROBE_FAMILIES: Registry[ProbeFamily] = Registry("probe family")
"""Probe families by name (``scarce evaluate --probes``)."""


def result_row(
    family: str,
    probe: str,
    selected: dict[str, Any],
    val: ClassificationReport | None,
    test: ClassificationReport | None,
) -> dict[str, Any]:
    """One row of the results table: the probe, what was selected on validation, its validation
    report and (for the family's selection only) its test report."""
    return {
        "family": family,
        "probe": probe,
        "selected": selected,
        "val": None if val is None else val.to_dict(),
        "test": None if test is None else test.to_dict(),
    }
