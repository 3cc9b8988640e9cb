"""Few-shot evaluation: exact seeded support sets; separable blobs are learned, shuffled labels are not."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scarce.errors import DataError
from scarce.eval.fewshot import FewShotResult, few_shot_eval, sample_few_shot

NUM_CLASSES = 10


def blobs(per_class: int, seed: int, centres: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` Gaussian samples (std 1) around each of ``centres`` [C, D], shuffled; labels [C · per_class]."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(len(centres)).repeat_interleave(per_class)
    features = centres[labels] + torch.randn(len(labels), centres.shape[1], generator=generator)
    order = torch.randperm(len(labels), generator=generator)
    return features[order], labels[order]


def shuffled(labels: torch.Tensor, seed: int) -> torch.Tensor:
    return labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))]


def test_sample_few_shot_takes_exactly_shots_per_class() -> None:
    labels = torch.cat([torch.full((size,), label) for label, size in enumerate([9, 3, 20, 5])])
    indices = sample_few_shot(labels, shots=3, seed=0)
    assert indices.dtype == torch.int64
    assert torch.equal(indices, torch.sort(indices).values)
    assert len(set(indices.tolist())) == 12
    assert torch.bincount(labels[indices], minlength=4).tolist() == [3, 3, 3, 3]


def test_sample_few_shot_is_reproducible_and_seeded() -> None:
    labels = torch.arange(200) % NUM_CLASSES
    first = sample_few_shot(labels, shots=5, seed=0)
    assert torch.equal(first, sample_few_shot(labels, shots=5, seed=0))
    draws = [sample_few_shot(labels, shots=5, seed=seed) for seed in range(1, 5)]
    assert all(not torch.equal(first, other) for other in draws)


def test_too_few_images_per_class_is_an_error() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    with pytest.raises(DataError, match="fewer than"):
        sample_few_shot(labels, shots=3, seed=0)
    features = torch.randn(8, 4)
    with pytest.raises(DataError, match="class 1: 2"):
        few_shot_eval(features, labels, features, labels, num_classes=3, shots=(1, 3))
    with pytest.raises(DataError, match="class 3: 0"):  # a class with no training image at all
        few_shot_eval(features, labels, features, labels, num_classes=4, shots=(1,))


def test_both_methods_learn_separable_blobs_but_not_shuffled_labels() -> None:
    centres = 3.0 * torch.randn(NUM_CLASSES, 16, generator=torch.Generator().manual_seed(0))
    train_features, train_labels = blobs(20, seed=1, centres=centres)
    test_features, test_labels = blobs(30, seed=2, centres=centres)
    kwargs = {"num_classes": NUM_CLASSES, "shots": (5,), "draws": 3, "methods": ("knn", "logreg")}
    real = few_shot_eval(train_features, train_labels, test_features, test_labels, **kwargs)
    # labels shuffled independently of the features on both sides: the expected accuracy is exactly 1 / C
    noise = few_shot_eval(train_features, shuffled(train_labels, 3), test_features, shuffled(test_labels, 4), **kwargs)
    chance = 1 / NUM_CLASSES
    for learned, guessed in zip(real, noise, strict=True):
        assert learned.method == guessed.method
        assert learned.mean > 0.9, learned
        # 300 test images: one draw's accuracy has std ~0.017 around chance; 0.06 is > 3 of them
        assert abs(guessed.mean - chance) < 0.06, guessed
        assert learned.mean - guessed.mean > 0.7


def test_results_are_ordered_and_summarised_with_population_std() -> None:
    centres = 2.0 * torch.randn(4, 8, generator=torch.Generator().manual_seed(5))
    train_features, train_labels = blobs(12, seed=6, centres=centres)
    test_features, test_labels = blobs(10, seed=7, centres=centres)
    results = few_shot_eval(
        train_features, train_labels, test_features, test_labels, num_classes=4, shots=(1, 3), draws=4, seed=11
    )
    assert [(result.shots, result.method) for result in results] == [
        (1, "knn"),
        (1, "logreg"),
        (3, "knn"),
        (3, "logreg"),
    ]
    for result in results:
        assert isinstance(result, FewShotResult)
        assert len(result.accuracies) == 4
        assert result.mean == pytest.approx(np.mean(result.accuracies))
        assert result.std == pytest.approx(np.std(result.accuracies, ddof=0))
    again = few_shot_eval(
        train_features, train_labels, test_features, test_labels, num_classes=4, shots=(1, 3), draws=4, seed=11
    )
    assert again == results


def test_rejects_bad_arguments() -> None:
    features, labels = torch.randn(8, 4), torch.arange(8) % 2
    with pytest.raises(ValueError, match="unknown few-shot methods"):
        few_shot_eval(features, labels, features, labels, num_classes=2, methods=("svm",))
    with pytest.raises(ValueError, match="draws"):
        few_shot_eval(features, labels, features, labels, num_classes=2, shots=(1,), draws=0)
    with pytest.raises(ValueError, match="test_labels"):
        few_shot_eval(features, labels, features, labels[:5], num_classes=2, shots=(1,))
