"""Datasets in memory: ``load_data(spec)`` -> train / val / test :class:`ImageSet` splits.

See :mod:`scarce.data.datasets` for the dataset specs and split rules, and
:mod:`scarce.data.splits` for the seeded stratified splits and small-data subsets.
"""

from scarce.data.datasets import (
    IMAGE_EXTENSIONS,
    SPEC_FORMS,
    DataSplits,
    ImageSet,
    concat,
    fingerprint,
    imagenet100_wnids,
    load_data,
    parse_spec,
)
from scarce.data.splits import stratified_split, take_subset

__all__ = [
    "IMAGE_EXTENSIONS",
    "SPEC_FORMS",
    "DataSplits",
    "ImageSet",
    "concat",
    "fingerprint",
    "imagenet100_wnids",
    "load_data",
    "parse_spec",
    "stratified_split",
    "take_subset",
]
