"""``fewshot``: n labelled training images per class, several seeded draws, kNN and logistic
regression, mean ± std on the test split (a protocol, not a selection: no table row)."""

from __future__ import annotations

from scarce.eval.families.base import PROBE_FAMILIES, FamilyResult, ProbeContext
from scarce.eval.fewshot import few_shot_eval


@PROBE_FAMILIES.register("fewshot")
def fewshot_family(context: ProbeContext) -> FamilyResult:
    settings = context.settings
    results = few_shot_eval(
        context.pooled("train"),
        context.labels("train"),
        context.pooled("test"),
        context.labels("test"),
        context.num_classes,
        shots=settings.fewshot_shots,
        draws=settings.fewshot_draws,
        seed=settings.seed,
    )
    records = [
        {"shots": r.shots, "method": r.method, "mean": r.mean, "std": r.std, "accuracies": r.accuracies}
        for r in results
    ]
    return FamilyResult(fewshot=records)
