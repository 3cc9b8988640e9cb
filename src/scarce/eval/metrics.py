"""Classification metrics of a frozen-feature probe: one report from scores ``[M, C]`` and targets ``[M]``.

The per-sample counts (top-k hits, confusion matrix, per-class precision / recall / F1, one-vs-rest
ROC curves) come from ``torchmetrics``' functional API; this module only decides how classes are
averaged, and does so the same way for every macro metric:

- **Macro averages run over the classes present in the targets.** A class that no target belongs
  to has no defined recall or ROC curve, so it is left out of ``mean_per_class``, ``recall_macro``,
  ``precision_macro``, ``f1_macro`` and ``auroc_macro`` alike (scikit-learn's
  ``precision_recall_fscore_support(..., labels=present_classes, average="macro")``). Predictions
  *of* such a class still count: they are errors of the true class and lower its recall.
- A present class that is never predicted has precision ``0 / 0``, counted as 0 (scikit-learn's
  default ``zero_division``), and so F1 0.
- ``mean_per_class`` (mean per-class accuracy) and ``recall_macro`` are the same number by
  definition; both are reported because papers use both names.
- ``per_class_accuracy`` keeps one entry per class, NaN for the absent ones (``None`` in
  :meth:`ClassificationReport.to_dict`).

Everything is computed on the CPU in float64 from the detached inputs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from torchmetrics.functional.classification import (
    binary_auroc,
    multiclass_accuracy,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)

TOP_K = 5


@dataclass(frozen=True)
class ClassificationReport:
    """Metrics of ``num_samples`` predictions over ``C`` classes (macro averages: see the module docstring)."""

    top1: float
    top5: float
    """Top-``min(5, C)`` accuracy."""
    mean_per_class: float
    """Mean over the present classes of the per-class accuracy (= ``recall_macro``)."""
    precision_macro: float
    recall_macro: float
    f1_macro: float
    """Mean of the per-class F1 scores (not the F1 of the macro precision and recall)."""
    auroc_macro: float | None
    """One-vs-rest AUROC of the softmax probabilities, macro over the present classes; None when fewer
    than 2 classes are present in the targets."""
    per_class_accuracy: list[float]
    """``[C]`` recall of each class; NaN for classes absent from the targets."""
    confusion: list[list[int]]
    """``[C, C]`` counts; rows = true class, columns = predicted (top-1) class."""
    num_samples: int

    def to_dict(self) -> dict[str, object]:
        """The fields as a JSON-serialisable dict (NaN -> None)."""
        fields = asdict(self)
        fields["per_class_accuracy"] = [_none_if_nan(value) for value in self.per_class_accuracy]
        return fields


def _none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


def _check_inputs(scores: Tensor, targets: Tensor, num_classes: int) -> None:
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if scores.ndim != 2 or not scores.is_floating_point():
        raise ValueError(f"scores must be a floating [M, C] tensor, got {scores.dtype} {tuple(scores.shape)}")
    if scores.shape[1] != num_classes:
        raise ValueError(f"scores have {scores.shape[1]} columns but num_classes is {num_classes}")
    if targets.ndim != 1 or targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be a 1-D integer tensor, got {targets.dtype} {tuple(targets.shape)}")
    if targets.numel() != scores.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows but {targets.numel()} targets")
    if targets.numel() == 0:
        raise ValueError("cannot score an empty set of predictions")
    if int(targets.min()) < 0 or int(targets.max()) >= num_classes:
        raise ValueError(f"targets must lie in [0, {num_classes}), got [{int(targets.min())}, {int(targets.max())}]")
    if not torch.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")


def _macro(per_class: Tensor, present: Tensor) -> float:
    """Mean of ``per_class`` [C] over the ``present`` [C] classes."""
    return float(per_class.double()[present].mean())


def _auroc_macro(probabilities: Tensor, targets: Tensor, present: Tensor) -> float | None:
    """One-vs-rest AUROC of each present class, averaged; None with fewer than 2 present classes."""
    classes = torch.nonzero(present).flatten().tolist()
    if len(classes) < 2:
        return None
    areas = [float(binary_auroc(probabilities[:, label], (targets == label).long())) for label in classes]
    return sum(areas) / len(areas)


def classification_report(logits_or_probs: Tensor, targets: Tensor, num_classes: int) -> ClassificationReport:
    """Top-1/top-5, mean per-class accuracy, macro precision/recall/F1/AUROC and the confusion matrix.

    Args:
        logits_or_probs: floating ``[M, C]`` class scores; logits or probabilities (AUROC softmaxes them,
            every other metric only ranks them).
        targets: integer ``[M]`` true classes in ``[0, C)``.
        num_classes: C, at least 2.

    Raises:
        ValueError: on a wrong shape or dtype, targets out of range, no samples, or non-finite scores.
    """
    _check_inputs(logits_or_probs, targets, num_classes)
    scores = logits_or_probs.detach().cpu().double()
    targets = targets.detach().cpu().long()
    present = torch.bincount(targets, minlength=num_classes) > 0
    per_class_kwargs = {"num_classes": num_classes, "average": None}
    recall = multiclass_recall(scores, targets, **per_class_kwargs).double()
    precision = multiclass_precision(scores, targets, **per_class_kwargs)
    f1 = multiclass_f1_score(scores, targets, **per_class_kwargs)
    top_k = min(TOP_K, num_classes)
    return ClassificationReport(
        top1=float(multiclass_accuracy(scores, targets, num_classes, average="micro")),
        top5=float(multiclass_accuracy(scores, targets, num_classes, average="micro", top_k=top_k)),
        mean_per_class=_macro(recall, present),
        precision_macro=_macro(precision, present),
        recall_macro=_macro(recall, present),
        f1_macro=_macro(f1, present),
        auroc_macro=_auroc_macro(scores.softmax(dim=1), targets, present),
        per_class_accuracy=torch.where(present, recall, math.nan).tolist(),
        confusion=multiclass_confusion_matrix(scores, targets, num_classes).tolist(),
        num_samples=targets.numel(),
    )
