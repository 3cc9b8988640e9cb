"""``linear``: a linear probe on mean-pooled tokens (optionally the last n blocks concatenated);
(lr, weight decay, epoch) selected on validation; without a validation split, the grid's middle and
the last epoch (:func:`scarce.eval.linear.train_linear_probe`)."""

from __future__ import annotations

from scarce.eval.families.base import PROBE_FAMILIES, FamilyResult, ProbeContext, result_row
from scarce.eval.linear import train_linear_probe
from scarce.eval.metrics import classification_report


@PROBE_FAMILIES.register("linear")
def linear_family(context: ProbeContext) -> FamilyResult:
    num_classes = context.num_classes
    linear = train_linear_probe(
        context.pooled("train"),
        context.labels("train"),
        context.pooled("val") if context.has_val else None,
        context.labels("val") if context.has_val else None,
        num_classes,
        seed=context.settings.seed,
    )
    selected = {
        "lr": linear.lr,
        "weight_decay": linear.weight_decay,
        "epoch": linear.epoch,
        "last_blocks": context.settings.linear_last_blocks,
    }
    val = None
    if context.has_val:
        val = classification_report(linear.logits(context.pooled("val")), context.labels("val"), num_classes)
    test = classification_report(linear.logits(context.pooled("test")), context.labels("test"), num_classes)
    return FamilyResult(rows=[result_row("linear", "linear", selected, val, test)])
