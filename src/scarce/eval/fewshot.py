"""Few-shot evaluation of frozen features: ``shots`` labelled images per class, several seeded draws.

For every number of shots and every draw ``d`` (seed ``seed + d``), a support set of exactly
``shots`` training images per class is drawn (:func:`sample_few_shot`); every method is fitted on
that same support set and scored by top-1 accuracy on all the test features.

- ``"knn"``: the weighted kNN of :mod:`scarce.eval.knn` (T = 0.07) with ``k = min(20, shots · C)``.
- ``"logreg"``: scikit-learn ``LogisticRegression`` (lbfgs, ``C=1.0``, ``max_iter=1000``) on
  L2-normalised float64 features.

A :class:`FewShotResult` holds the accuracy of each draw, their mean and their **population**
standard deviation (``ddof=0``: the spread of these draws, not an estimate of a larger sample's).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import Tensor

from scarce.data.splits import take_subset
from scarce.errors import DataError
from scarce.eval.knn import knn_classify

KNN_MAX_K = 20
Method = Callable[[Tensor, Tensor, Tensor, int], Tensor]
"""``(support_features [S, D], support_labels [S], test_features [M, D], num_classes) -> predictions [M]``."""


@dataclass(frozen=True)
class FewShotResult:
    """Top-1 test accuracy of one method with ``shots`` images per class, over several draws."""

    shots: int
    method: str
    accuracies: list[float]
    """One accuracy per draw, in draw order."""
    mean: float
    std: float
    """Population standard deviation (ddof=0) of ``accuracies``."""


def sample_few_shot(labels: Tensor, shots: int, seed: int) -> Tensor:
    """Sorted int64 indices of exactly ``shots`` items of every class present in ``labels`` ``[N]``.

    Drawn with ``torch.Generator().manual_seed(seed)``; raises :class:`DataError` if a class has fewer
    than ``shots`` items.
    """
    return take_subset(labels, per_class=shots, seed=seed)


def _knn_predict(support: Tensor, support_labels: Tensor, test: Tensor, num_classes: int) -> Tensor:
    k = min(KNN_MAX_K, support.shape[0])
    return knn_classify(support, support_labels, test, num_classes, k=k).argmax(dim=1).cpu()


def _normalised_numpy(features: Tensor) -> np.ndarray:
    return F.normalize(features.detach().cpu().double(), dim=1).numpy()


def _logreg_predict(support: Tensor, support_labels: Tensor, test: Tensor, num_classes: int) -> Tensor:
    classifier = LogisticRegression(C=1.0, solver="lbfgs", max_iter=1000)
    classifier.fit(_normalised_numpy(support), support_labels.cpu().numpy())
    return torch.from_numpy(classifier.predict(_normalised_numpy(test)))


METHODS: dict[str, Method] = {"knn": _knn_predict, "logreg": _logreg_predict}


def _check_support(train_labels: Tensor, num_classes: int, max_shots: int) -> None:
    """Every class in ``[0, num_classes)`` must have at least ``max_shots`` training items."""
    counts = torch.bincount(train_labels.cpu().long(), minlength=num_classes)
    if counts.numel() > num_classes:
        raise DataError(f"train_labels must lie in [0, {num_classes})")
    short = torch.nonzero(counts < max_shots).flatten().tolist()
    if short:
        listed = ", ".join(f"class {label}: {int(counts[label])}" for label in short[:5])
        raise DataError(f"{len(short)} classes have fewer than {max_shots} training items ({listed})")


def few_shot_eval(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    shots: Sequence[int] = (1, 5, 10),
    draws: int = 5,
    seed: int = 0,
    methods: Sequence[str] = ("knn", "logreg"),
) -> list[FewShotResult]:
    """Few-shot top-1 accuracy of each method, one :class:`FewShotResult` per ``(shots, method)``.

    Args:
        train_features: ``[N, D]`` features the support sets are drawn from.
        train_labels: integer ``[N]`` classes in ``[0, C)``.
        test_features: ``[M, D]`` features scored after every draw.
        test_labels: integer ``[M]`` classes of the test features.
        num_classes: C; every class must have at least ``max(shots)`` training items.
        shots: images per class of the support sets.
        draws: support sets per number of shots; draw ``d`` uses seed ``seed + d``.
        methods: names among ``"knn"`` and ``"logreg"``.

    Results are ordered by ``shots``, then by ``methods``.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown few-shot methods {unknown}; expected some of {sorted(METHODS)}")
    if not shots or min(shots) < 1:
        raise ValueError(f"shots must be a non-empty sequence of integers >= 1, got {tuple(shots)}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if test_labels.shape != (test_features.shape[0],):
        raise ValueError(f"{test_features.shape[0]} test features but test_labels of shape {tuple(test_labels.shape)}")
    _check_support(train_labels, num_classes, max(shots))
    test_labels = test_labels.cpu()
    results = []
    for shot in shots:
        accuracies: dict[str, list[float]] = {name: [] for name in methods}
        for draw in range(draws):
            support = sample_few_shot(train_labels, shot, seed + draw)
            support_features, support_labels = train_features[support], train_labels[support]
            for name in methods:
                predictions = METHODS[name](support_features, support_labels, test_features, num_classes)
                accuracies[name].append(float((predictions == test_labels).double().mean()))
        results += [
            FewShotResult(shot, name, values, statistics.fmean(values), statistics.pstdev(values))
            for name, values in accuracies.items()
        ]
    return results
