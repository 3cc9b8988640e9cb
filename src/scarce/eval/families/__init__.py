"""Probe families of ``scarce evaluate`` (one module each); importing this package registers them."""

from scarce.eval.families import attentive, fewshot, knn, linear
from scarce.eval.families.base import PROBE_FAMILIES, FamilyResult, ProbeContext, ProbeFamily, result_row

__all__ = [
    "PROBE_FAMILIES",
    "FamilyResult",
    "ProbeContext",
    "ProbeFamily",
    "attentive",
    "fewshot",
    "knn",
    "linear",
    "result_row",
]
