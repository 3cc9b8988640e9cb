"""``fewshot``: n labelled training images per class, several seeded draws, kNN and logistic
regression, mean ± std on the test split (a protocol, not a selection: no table row). Shots larger
than the smallest class of the (budgeted) training split are skipped, with a log line."""

from __future__ import annotations

from scarce.eval.families.base import PROBE_FAMILIES, FamilyResult, ProbeContext
from scarce.eval.fewshot import few_shot_eval


@PROBE_FAMILIES.register("fewshot")
def fewshot_family(context: ProbeContext) -> FamilyResult:
    settings = context.settings
    smallest = int(context.labels("train").bincount(minlength=context.num_classes).min())
    shots = tuple(shot for shot in settings.fewshot_shots if shot <= smallest)
    skipped = [shot for shot in settings.fewshot_shots if shot > smallest]
    if skipped:
        context.log(f"few-shot: skipping {skipped} shots (the smallest class has {smallest} labelled images)")
    if not shots:
        return FamilyResult()
    results = few_shot_eval(
        context.pooled("train"),
        context.labels("train"),
        context.pooled("test"),
        context.labels("test"),
        context.num_classes,
        shots=shots,
        draws=settings.fewshot_draws,
        seed=settings.seed,
    )
    records = [
        {"shots": r.shots, "method": r.method, "mean": r.mean, "std": r.std, "accuracies": r.accuracies}
        for r in results
    ]
    return FamilyResult(fewshot=records)
