"""Classification report: hand-computed numbers, absent classes, AUROC extremes, agreement with scikit-learn."""

from __future__ import annotations

import json
import math

import pytest
import torch
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    top_k_accuracy_score,
)

from scarce.eval.metrics import classification_report


def scores_for(predictions: list[int], num_classes: int) -> torch.Tensor:
    """Logits [M, C] whose argmax is ``predictions`` and whose other entries are distinct."""
    logits = torch.arange(num_classes, dtype=torch.float32).repeat(len(predictions), 1) / num_classes
    logits[torch.arange(len(predictions)), predictions] = 5.0
    return logits


def test_hand_computed_report() -> None:
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    predictions = [0, 0, 1, 1, 2, 2]
    report = classification_report(scores_for(predictions, 3), targets, num_classes=3)
    # rows = true class, columns = predicted class
    assert report.confusion == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report.num_samples == 6
    assert report.top1 == pytest.approx(4 / 6)
    assert report.top5 == 1.0  # k = min(5, 3) = 3 covers every class
    recalls = [2 / 3, 1 / 2, 1 / 1]  # diagonal / row sums
    precisions = [2 / 2, 1 / 2, 1 / 2]  # diagonal / column sums
    f1s = [2 * 2 / (2 * 2 + 0 + 1), 2 * 1 / (2 * 1 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 0)]  # 2tp / (2tp + fp + fn)
    assert report.per_class_accuracy == pytest.approx(recalls)
    assert report.mean_per_class == pytest.approx(sum(recalls) / 3)
    assert report.recall_macro == pytest.approx(sum(recalls) / 3)
    assert report.precision_macro == pytest.approx(sum(precisions) / 3)
    assert report.f1_macro == pytest.approx(sum(f1s) / 3)


def test_top5_counts_the_true_class_within_five_of_six() -> None:
    logits = torch.tensor([[6.0, 5, 4, 3, 2, 1], [6.0, 5, 4, 3, 2, 1], [6.0, 5, 4, 3, 2, 1]])
    targets = torch.tensor([4, 5, 0])  # ranks 5 (hit), 6 (miss), 1 (hit)
    report = classification_report(logits, targets, num_classes=6)
    assert report.top1 == pytest.approx(1 / 3)
    assert report.top5 == pytest.approx(2 / 3)


def test_absent_class_is_left_out_of_every_macro_average() -> None:
    targets = torch.tensor([0, 0, 1, 1, 2, 2])  # class 3 never occurs
    predictions = [0, 3, 1, 1, 2, 0]  # ... but is predicted once
    report = classification_report(scores_for(predictions, 4), targets, num_classes=4)
    assert report.confusion == [[1, 0, 0, 1], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert report.per_class_accuracy[:3] == pytest.approx([1 / 2, 2 / 2, 1 / 2])
    assert math.isnan(report.per_class_accuracy[3])
    assert report.mean_per_class == pytest.approx((1 / 2 + 1 + 1 / 2) / 3)
    assert report.recall_macro == report.mean_per_class
    assert report.precision_macro == pytest.approx((1 / 2 + 2 / 2 + 1 / 1) / 3)  # class 3's precision 0 is not counted
    assert report.f1_macro == pytest.approx((2 / (2 + 1 + 1) + 4 / (4 + 0 + 0) + 2 / (2 + 0 + 1)) / 3)
    assert report.top1 == pytest.approx(4 / 6)
    assert report.top5 == 1.0
    # the same convention as scikit-learn restricted to the present classes
    precision, recall, f1, _ = precision_recall_fscore_support(
        targets.numpy(), predictions, labels=[0, 1, 2], average="macro", zero_division=0
    )
    assert (report.precision_macro, report.recall_macro, report.f1_macro) == pytest.approx((precision, recall, f1))
    as_dict = report.to_dict()
    assert as_dict["per_class_accuracy"][3] is None
    assert json.loads(json.dumps(as_dict, allow_nan=False)) == as_dict


def test_auroc_extremes_and_undefined() -> None:
    targets = torch.tensor([0, 1, 2, 0, 1, 2, 2])
    one_hot = torch.nn.functional.one_hot(targets, 3).float()
    assert classification_report(5 * one_hot, targets, 3).auroc_macro == pytest.approx(1.0)
    # every class scores its own members lowest: each one-vs-rest ranking is exactly reversed
    assert classification_report(-5 * one_hot, targets, 3).auroc_macro == pytest.approx(0.0)
    single = classification_report(torch.randn(4, 3), torch.zeros(4, dtype=torch.long), 3)
    assert single.auroc_macro is None
    assert single.per_class_accuracy[0] == single.mean_per_class
    assert math.isnan(single.per_class_accuracy[1]) and math.isnan(single.per_class_accuracy[2])


def test_agrees_with_scikit_learn_on_random_scores() -> None:
    num_classes, num_samples = 8, 400
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(num_samples, num_classes, generator=generator, dtype=torch.float64)
    targets = torch.arange(num_samples)[torch.randperm(num_samples, generator=generator)] % num_classes
    logits[torch.arange(num_samples), targets] += 0.8  # better than chance, not perfect
    report = classification_report(logits, targets, num_classes)
    y_true, y_pred = targets.numpy(), logits.argmax(dim=1).numpy()
    probabilities = logits.softmax(dim=1).numpy()
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="macro", zero_division=0)
    assert report.precision_macro == pytest.approx(precision, rel=1e-6)
    assert report.recall_macro == pytest.approx(recall, rel=1e-6)
    assert report.f1_macro == pytest.approx(f1, rel=1e-6)
    assert report.mean_per_class == pytest.approx(balanced_accuracy_score(y_true, y_pred), rel=1e-6)
    assert report.top1 == pytest.approx(accuracy_score(y_true, y_pred), rel=1e-6)
    assert report.top5 == pytest.approx(top_k_accuracy_score(y_true, probabilities, k=5), rel=1e-6)
    assert report.auroc_macro == pytest.approx(roc_auc_score(y_true, probabilities, multi_class="ovr"), rel=1e-6)
    assert report.confusion == confusion_matrix(y_true, y_pred).tolist()
    assert 0.2 < report.top1 < 0.9


@pytest.mark.parametrize(
    ("scores", "targets", "num_classes", "message"),
    [
        (torch.zeros(4), torch.zeros(4, dtype=torch.long), 3, "floating"),
        (torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, dtype=torch.long), 3, "floating"),
        (torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), 3, "columns"),
        (torch.zeros(4, 3), torch.zeros(4), 3, "integer"),
        (torch.zeros(4, 3), torch.zeros(5, dtype=torch.long), 3, "5 targets"),
        (torch.zeros(4, 3), torch.tensor([0, 1, 2, 3]), 3, r"\[0, 3\)"),
        (torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 3, "empty"),
        (torch.full((4, 3), math.nan), torch.zeros(4, dtype=torch.long), 3, "NaN"),
        (torch.zeros(4, 1), torch.zeros(4, dtype=torch.long), 1, "num_classes"),
    ],
)
def test_rejects_bad_inputs(scores: torch.Tensor, targets: torch.Tensor, num_classes: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classification_report(scores, targets, num_classes)
