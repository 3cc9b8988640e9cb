"""``knn``: weighted kNN on pooled features (cosine, T = 0.07), k selected on validation; without a
validation split, the middle of ``knn_ks`` (by default k = 20)."""

from __future__ import annotations

from scarce.eval.families.base import PROBE_FAMILIES, FamilyResult, ProbeContext, result_row
from scarce.eval.knn import knn_sweep
from scarce.eval.metrics import classification_report


@PROBE_FAMILIES.register("knn")
def knn_family(context: ProbeContext) -> FamilyResult:
    ks, num_classes = context.settings.knn_ks, context.num_classes
    train, train_labels = context.pooled("train"), context.labels("train")
    if not context.has_val:
        k = sorted(ks)[len(ks) // 2]
        test_scores = knn_sweep(train, train_labels, context.pooled("test"), num_classes, ks=(k,))[k]
        test = classification_report(test_scores, context.labels("test"), num_classes)
        return FamilyResult(rows=[result_row("knn", f"knn-{k}", {"k": k}, None, test)])
    val_labels = context.labels("val")
    val_scores = knn_sweep(train, train_labels, context.pooled("val"), num_classes, ks=ks)
    val_top1 = {k: (scores.argmax(-1) == val_labels).float().mean().item() for k, scores in val_scores.items()}
    best_k = max(ks, key=lambda k: (val_top1[k], -k))
    test_scores = knn_sweep(train, train_labels, context.pooled("test"), num_classes, ks=(best_k,))[best_k]
    val = classification_report(val_scores[best_k], val_labels, num_classes)
    test = classification_report(test_scores, context.labels("test"), num_classes)
    return FamilyResult(rows=[result_row("knn", f"knn-{best_k}", {"k": best_k, "val_top1_by_k": val_top1}, val, test)])
