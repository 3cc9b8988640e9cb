"""``attentive``: the paper's attentive probes trained side by side on augmented views (spec sec. 5);
the family's selection is the (probe, epoch) with the best validation top-1. Without a validation
split: the first of ``attentive_kinds`` alone, its last epoch."""

from __future__ import annotations

from scarce.data.transforms import PhotometricConfig, SingleViewTransform
from scarce.eval.attentive import ProbeRecipe, probe_logits, restore_probe, train_attentive_probes
from scarce.eval.families.base import PROBE_FAMILIES, FamilyResult, ProbeContext, result_row
from scarce.eval.metrics import classification_report


def training_view(size: int, augment: bool) -> SingleViewTransform:
    """The SSL crop/flip/colour view, or the plain resized image when ``augment`` is off."""
    return SingleViewTransform(
        size,
        photometric=PhotometricConfig() if augment else PhotometricConfig(p=0.0),
        flip_p=0.5 if augment else 0.0,
        scale=(0.2, 1.0) if augment else (1.0, 1.0),
    )


@PROBE_FAMILIES.register("attentive")
def attentive_family(context: ProbeContext) -> FamilyResult:
    settings = context.settings
    val_tokens = context.tokens("val") if context.has_val else None
    val_labels = context.labels("val") if context.has_val else None
    kinds = settings.attentive_kinds if context.has_val else settings.attentive_kinds[:1]
    recipe = ProbeRecipe(
        epochs=settings.epochs, batch_size=settings.batch_size, warmup_epochs=settings.warmup_epochs, seed=settings.seed
    )
    selections = train_attentive_probes(
        context.frozen,
        context.splits["train"],
        val_tokens,
        val_labels,
        training_view(context.views["test"].shape[-1], settings.augment),
        kinds,
        recipe,
        num_workers=settings.num_workers,
        log=context.log,
        show_progress=context.show_progress,
    )
    best_kind = max(selections.values(), key=lambda selection: selection.best_val_top1).kind
    test_tokens = context.tokens("test")
    embed_dim, num_classes, device = int(context.frozen.encoder.embed_dim), context.num_classes, context.device
    result = FamilyResult()
    for kind, selection in selections.items():
        probe = restore_probe(selection, embed_dim, num_classes, device)
        val = None
        if val_tokens is not None and val_labels is not None:
            val = classification_report(probe_logits(probe, val_tokens, device), val_labels, num_classes)
        test = None
        if kind == best_kind:  # the family's selection: the only attentive probe scored on test
            test = classification_report(probe_logits(probe, test_tokens, device), context.labels("test"), num_classes)
        result.rows.append(result_row("attentive", kind, {"epoch": selection.best_epoch}, val, test))
    return result
