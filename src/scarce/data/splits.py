"""Seeded, stratified index splits and small-data subsets.

Both functions are pure: the same inputs and ``seed`` give the same indices on every machine
(randomness comes from ``torch.Generator().manual_seed(seed)`` only), and the returned indices
are sorted ``int64`` tensors.

- :func:`stratified_split` carves a fraction off a set, class by class: each class gives
  ``round(fraction · class size)`` items (halves round up), but at least 1 and at most
  ``class size - 1`` when the class has 2 or more items, so that both sides keep every such
  class. A class of 1 item stays on the remaining side. Without labels it falls back to a plain
  random split with the same rounding.
- :func:`take_subset` draws a small-data subset: ``per_class`` items of every class, or
  ``total`` items split over the classes in proportion to their sizes (largest remainders).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scarce.errors import DataError


def fraction_count(fraction: float, size: int) -> int:
    """``round(fraction · size)`` with halves rounded up, computed on the product rounded to 9 decimals.

    ``fraction_count(0.1, 300) == 30`` (float ``0.1 * 300`` is ``30.000000000000004``);
    ``fraction_count(0.25, 2) == 1``.
    """
    return math.floor(round(fraction * size, 9) + 0.5)


def split_count(fraction: float, size: int) -> int:
    """Items a group of ``size`` gives to a split of ``fraction`` (see the module docstring)."""
    if fraction == 0.0 or size < 2:
        return 0
    return min(max(fraction_count(fraction, size), 1), size - 1)


def _check_fraction(fraction: float) -> None:
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"a split fraction must be in [0, 1), got {fraction}")


def _check_labels(labels: Tensor) -> None:
    if labels.ndim != 1 or labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")


def class_members(labels: Tensor) -> dict[int, Tensor]:
    """``{class index: sorted indices [n_c] of its items}`` for the classes present in ``labels`` [N]."""
    _check_labels(labels)
    order = torch.argsort(labels, stable=True)
    classes, counts = torch.unique_consecutive(labels[order], return_counts=True)
    groups = torch.split(order, counts.tolist())
    return {int(label): group for label, group in zip(classes.tolist(), groups, strict=True)}


def _draw(group: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` items of ``group`` [n] drawn without replacement."""
    return group[torch.randperm(group.numel(), generator=generator)[:count]]


def _complement(selected: Tensor, size: int) -> Tensor:
    keep = torch.ones(size, dtype=torch.bool)
    keep[selected] = False
    return torch.nonzero(keep).flatten()


def stratified_split(
    labels: Tensor | None, fraction: float, seed: int, *, num_items: int | None = None
) -> tuple[Tensor, Tensor]:
    """Split ``range(N)`` into ``(remaining, split_off)`` sorted index tensors.

    Args:
        labels: int ``[N]`` class indices, or None for unlabelled data (then ``num_items`` = N).
        fraction: share of each class that goes to ``split_off``, in ``[0, 1)``.
        seed: seed of the ``torch.Generator`` that draws the items.
        num_items: N when ``labels`` is None; must agree with ``labels`` when both are given.
    """
    _check_fraction(fraction)
    if labels is None:
        if num_items is None:
            raise DataError("stratified_split needs labels or num_items")
        size = num_items
    else:
        _check_labels(labels)
        size = labels.numel()
        if num_items is not None and num_items != size:
            raise DataError(f"num_items {num_items} does not match {size} labels")
    generator = torch.Generator().manual_seed(seed)
    if labels is None:
        split_off = _draw(torch.arange(size), split_count(fraction, size), generator)
    else:
        parts = [
            _draw(group, split_count(fraction, group.numel()), generator) for group in class_members(labels).values()
        ]
        split_off = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64)
    split_off = torch.sort(split_off).values
    return _complement(split_off, size), split_off


def proportional_counts(sizes: list[int], total: int) -> list[int]:
    """Split ``total`` over groups of ``sizes`` in proportion (largest remainders, ties to the first group)."""
    whole = sum(sizes)
    quotas = [total * size / whole for size in sizes]
    counts = [math.floor(quota) for quota in quotas]
    by_remainder = sorted(range(len(sizes)), key=lambda group: (counts[group] - quotas[group], group))
    for group in by_remainder[: total - sum(counts)]:
        counts[group] += 1
    return counts


def take_subset(
    labels: Tensor | None,
    *,
    per_class: int | None = None,
    total: int | None = None,
    seed: int,
    num_items: int | None = None,
) -> Tensor:
    """Sorted indices of a seeded small-data subset.

    Args:
        labels: int ``[N]`` class indices, or None for unlabelled data (``total`` only, with ``num_items``).
        per_class: take exactly this many items of every class present in ``labels``.
        total: take this many items in all, split over the classes in proportion to their sizes.
        seed: seed of the ``torch.Generator`` that draws the items.
        num_items: N when ``labels`` is None.

    Exactly one of ``per_class`` and ``total`` must be given.
    """
    if (per_class is None) == (total is None):
        raise DataError("take_subset needs exactly one of per_class and total")
    generator = torch.Generator().manual_seed(seed)
    if labels is None:
        if total is None or num_items is None:
            raise DataError("an unlabelled subset needs total and num_items (per_class needs labels)")
        if not 0 < total <= num_items:
            raise DataError(f"subset total must be in [1, {num_items}], got {total}")
        return torch.sort(_draw(torch.arange(num_items), total, generator)).values
    members = class_members(labels)
    sizes = [group.numel() for group in members.values()]
    if per_class is not None:
        if per_class < 1:
            raise DataError(f"per_class must be >= 1, got {per_class}")
        short = {label: group.numel() for label, group in members.items() if group.numel() < per_class}
        if short:
            listed = ", ".join(f"class {label}: {count}" for label, count in list(short.items())[:5])
            raise DataError(f"{len(short)} classes have fewer than per_class={per_class} items ({listed})")
        counts = [per_class] * len(sizes)
    else:
        assert total is not None
        if not 0 < total <= labels.numel():
            raise DataError(f"subset total must be in [1, {labels.numel()}], got {total}")
        counts = proportional_counts(sizes, total)
    parts = [_draw(group, count, generator) for group, count in zip(members.values(), counts, strict=True)]
    return torch.sort(torch.cat(parts)).values
