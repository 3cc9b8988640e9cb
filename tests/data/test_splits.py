"""Seeded stratified splits and small-data subsets: disjoint, complete, stratified, reproducible."""

from __future__ import annotations

import pytest
import torch

from scarce.data.splits import fraction_count, proportional_counts, split_count, stratified_split, take_subset
from scarce.errors import DataError

CLASS_SIZES = [10, 7, 3, 2, 1, 30]


def make_labels(sizes: list[int], seed: int = 0) -> torch.Tensor:
    """Shuffled int64 labels [sum(sizes)] with ``sizes[c]`` items of class c."""
    labels = torch.cat([torch.full((size,), label) for label, size in enumerate(sizes)])
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def per_class(labels: torch.Tensor, indices: torch.Tensor, num_classes: int) -> list[int]:
    return torch.bincount(labels[indices], minlength=num_classes).tolist()


@pytest.mark.parametrize(
    ("fraction", "size", "expected"), [(0.1, 300, 30), (0.25, 2, 1), (0.15, 10, 2), (0.2, 7, 1), (0.5, 3, 2)]
)
def test_fraction_count_rounds_halves_up(fraction: float, size: int, expected: int) -> None:
    assert fraction_count(fraction, size) == expected


def test_split_count_keeps_both_sides() -> None:
    assert split_count(0.01, 10) == 1  # at least 1
    assert split_count(0.9, 2) == 1  # at most size - 1
    assert split_count(0.5, 1) == 0  # a single item stays
    assert split_count(0.0, 100) == 0


@pytest.mark.parametrize("fraction", [0.1, 0.2, 0.5])
def test_stratified_split_is_a_stratified_partition(fraction: float) -> None:
    labels = make_labels(CLASS_SIZES)
    remaining, split_off = stratified_split(labels, fraction, seed=3)
    assert remaining.dtype == split_off.dtype == torch.int64
    assert torch.equal(remaining, torch.sort(remaining).values)
    assert torch.equal(split_off, torch.sort(split_off).values)
    assert set(remaining.tolist()).isdisjoint(split_off.tolist())
    assert sorted(remaining.tolist() + split_off.tolist()) == list(range(len(labels)))
    assert per_class(labels, split_off, len(CLASS_SIZES)) == [split_count(fraction, size) for size in CLASS_SIZES]
    assert all(count >= 1 for count in per_class(labels, remaining, len(CLASS_SIZES)))


def test_stratified_split_reproducible_and_seed_dependent() -> None:
    labels = make_labels(CLASS_SIZES)
    first = stratified_split(labels, 0.2, seed=0)
    again = stratified_split(labels, 0.2, seed=0)
    other = stratified_split(labels, 0.2, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])
    assert len(first[1]) == len(other[1])


def test_stratified_split_unlabelled_falls_back_to_random() -> None:
    remaining, split_off = stratified_split(None, 0.25, seed=0, num_items=40)
    assert len(split_off) == 10 and len(remaining) == 30
    assert sorted(remaining.tolist() + split_off.tolist()) == list(range(40))
    assert not torch.equal(split_off, stratified_split(None, 0.25, seed=1, num_items=40)[1])


def test_stratified_split_zero_fraction_is_empty() -> None:
    remaining, split_off = stratified_split(make_labels([4, 4]), 0.0, seed=0)
    assert len(split_off) == 0 and len(remaining) == 8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": None, "fraction": 0.1}, "labels or num_items"),
        ({"labels": torch.zeros(5, dtype=torch.int64), "fraction": 1.0}, r"\[0, 1\)"),
        ({"labels": torch.zeros(5, dtype=torch.int64), "fraction": -0.1}, r"\[0, 1\)"),
        ({"labels": torch.zeros(5), "fraction": 0.1}, "integer"),
        ({"labels": torch.zeros(5, dtype=torch.int64), "fraction": 0.1, "num_items": 4}, "does not match"),
    ],
)
def test_stratified_split_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        stratified_split(seed=0, **kwargs)


def test_take_subset_per_class() -> None:
    labels = make_labels([8, 5, 12])
    subset = take_subset(labels, per_class=5, seed=0)
    assert per_class(labels, subset, 3) == [5, 5, 5]
    assert torch.equal(subset, torch.sort(subset).values)
    assert len(set(subset.tolist())) == 15
    assert torch.equal(subset, take_subset(labels, per_class=5, seed=0))
    assert not torch.equal(subset, take_subset(labels, per_class=5, seed=1))


def test_take_subset_per_class_too_large_names_the_class() -> None:
    with pytest.raises(DataError, match=r"1 classes have fewer than per_class=6 items \(class 1: 5\)"):
        take_subset(make_labels([8, 5, 12]), per_class=6, seed=0)


def test_take_subset_total_is_proportional() -> None:
    labels = make_labels([60, 30, 10])
    subset = take_subset(labels, total=20, seed=0)
    assert per_class(labels, subset, 3) == [12, 6, 2]
    assert torch.equal(subset, take_subset(labels, total=20, seed=0))


def test_take_subset_unlabelled_total() -> None:
    subset = take_subset(None, total=7, seed=0, num_items=50)
    assert len(set(subset.tolist())) == 7 and int(subset.max()) < 50


def test_proportional_counts_sum_to_total() -> None:
    assert proportional_counts([1, 1, 1], 2) == [1, 1, 0]
    assert proportional_counts([5, 3, 2], 7) == [4, 2, 1]
    for total in range(1, 38):
        assert sum(proportional_counts(CLASS_SIZES, total)) == total


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"per_class": 2, "total": 4}, "exactly one"),
        ({}, "exactly one"),
        ({"total": 0}, r"\[1, 10\]"),
        ({"total": 11}, r"\[1, 10\]"),
        ({"per_class": 0}, ">= 1"),
    ],
)
def test_take_subset_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        take_subset(make_labels([5, 5]), seed=0, **kwargs)


def test_take_subset_unlabelled_needs_total() -> None:
    with pytest.raises(DataError, match="per_class needs labels"):
        take_subset(None, per_class=2, seed=0, num_items=10)
