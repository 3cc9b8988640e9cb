"""Label budgets: keep the labels of N images per class (or a share of them), the rest unlabelled.

The few-label protocol (``docs/few-labels.md``): a user has many images and labels for a few of
them. :class:`LabelBudget` says how many labels a run may see; :func:`split_by_budget` draws them
from the training split, stratified and seeded; :func:`load_budgeted` is :func:`load_data` under a
budget. Under an active budget:

- the labelled training images are ``labels_per_class`` of each class (or ``label_fraction`` of
  each class, at least 1), drawn with ``torch.Generator().manual_seed(label_seed)``: the same seed
  gives the same ids in every command, and a smaller budget's ids are a subset of a larger one's
  (each class is permuted once and its budget is the head of the permutation);
- ``val_per_class`` of each class's budget form the validation split (the rest train); without it
  there is **no** validation split: every label the pipeline sees counts, so a budgeted run does
  not select on a large labelled validation split it would not have;
- the split rules carve no validation split (``val_fraction`` is 0), so the images they would have
  carved stay in the training pool; an official validation split is left unused (a note says so);
- the rest of the training split is :attr:`DataSplits.unlabelled` (labels hidden), for
  pretraining, pseudo-labels and distillation; their true labels are kept apart in
  :attr:`DataSplits.hidden_labels` for diagnostics only;
- the test split is the same as without a budget (same split seed), scored once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scarce.data.datasets import DataSplits, ImageSet, fingerprint, load_data
from scarce.data.splits import class_members, fraction_count
from scarce.errors import DataError


@dataclass(frozen=True)
class LabelBudget:
    """How many training labels a run may see; inactive when neither amount is set.

    Attributes:
        labels_per_class: N labelled training images per class (validation included).
        label_fraction: this share of each class keeps its label (at least 1 image per class).
        val_per_class: of each class's budget, this many form the validation split.
        label_seed: seed of the draw.
    """

    labels_per_class: int | None = None
    label_fraction: float | None = None
    val_per_class: int | None = None
    label_seed: int = 0

    def __post_init__(self) -> None:
        if self.labels_per_class is not None and self.label_fraction is not None:
            raise DataError("give labels_per_class or label_fraction, not both")
        if self.labels_per_class is not None and self.labels_per_class < 1:
            raise DataError(f"labels_per_class must be >= 1, got {self.labels_per_class}")
        if self.label_fraction is not None and not 0.0 < self.label_fraction <= 1.0:
            raise DataError(f"label_fraction must be in (0, 1], got {self.label_fraction}")
        if self.val_per_class is not None:
            if not self.active:
                raise DataError("val_per_class is drawn from a label budget: set labels_per_class or label_fraction")
            if self.val_per_class < 1:
                raise DataError(f"val_per_class must be >= 1, got {self.val_per_class}")
            if self.labels_per_class is not None and self.val_per_class >= self.labels_per_class:
                raise DataError(
                    f"val_per_class={self.val_per_class} leaves no training labels of "
                    f"labels_per_class={self.labels_per_class}"
                )
        if self.label_seed < 0:
            raise DataError(f"label_seed must be >= 0, got {self.label_seed}")

    @property
    def active(self) -> bool:
        """Whether a budget is set."""
        return self.labels_per_class is not None or self.label_fraction is not None

    def per_class(self, class_size: int) -> int:
        """Labels a class of ``class_size`` training images keeps (validation included)."""
        if self.labels_per_class is not None:
            return self.labels_per_class
        assert self.label_fraction is not None
        return max(fraction_count(self.label_fraction, class_size), 1)

    def record(self) -> dict[str, object]:
        """The settings, JSON-serialisable."""
        return {
            "labels_per_class": self.labels_per_class,
            "label_fraction": self.label_fraction,
            "val_per_class": self.val_per_class,
            "label_seed": self.label_seed,
        }


@dataclass
class BudgetIndices:
    """Sorted int64 index tensors into the training split: labelled (train), val and unlabelled."""

    labelled: Tensor
    val: Tensor
    unlabelled: Tensor


def split_by_budget(train: ImageSet, budget: LabelBudget) -> BudgetIndices:
    """Draw the labelled, validation and unlabelled images of ``train`` [N] under ``budget``.

    Each class's members are permuted once by the budget's seed (classes in index order); its
    budget is the head of that permutation, whose first ``val_per_class`` items validate. A class
    with fewer images than its budget (plus one, when validation must leave training labels) is a
    one-line DataError naming the class.
    """
    if not budget.active:
        raise DataError("split_by_budget needs an active label budget")
    if train.labels is None:
        raise DataError("a label budget needs labelled training images; the training split is unlabelled")
    if bool((train.labels < 0).any()):
        raise DataError("a label budget needs every training image labelled")
    generator = torch.Generator().manual_seed(budget.label_seed)
    labelled, val, unlabelled = [], [], []
    for label, members in class_members(train.labels).items():
        count = budget.per_class(members.numel())
        name = train.classes[label]
        if count > members.numel():
            raise DataError(f"labels_per_class={count} but class {name!r} has only {members.numel()} training images")
        val_count = budget.val_per_class or 0
        if val_count >= count:
            raise DataError(f"val_per_class={val_count} leaves no training labels in class {name!r} ({count} labelled)")
        order = members[torch.randperm(members.numel(), generator=generator)]
        val.append(order[:val_count])
        labelled.append(order[val_count:count])
        unlabelled.append(order[count:])

    def sorted_cat(parts: list[Tensor]) -> Tensor:
        return torch.sort(torch.cat(parts)).values if parts else torch.zeros(0, dtype=torch.int64)

    return BudgetIndices(sorted_cat(labelled), sorted_cat(val), sorted_cat(unlabelled))


def load_budgeted(
    spec: str,
    budget: LabelBudget,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    cache_short_side: int | None = None,
    download: bool = False,
) -> DataSplits:
    """:func:`load_data` under ``budget`` (the module docstring); without a budget, exactly ``load_data``.

    Under a budget ``train`` is the labelled images, ``val`` the budget's validation split or None,
    ``unlabelled`` the rest of the training split (no labels) and ``hidden_labels`` int64 ``[U]``
    their true labels. ``info["label_budget"]`` records the settings, the counts and the labelled ids'
    fingerprint.
    """
    splits = load_data(
        spec,
        val_fraction=val_fraction if not budget.active else 0.0,  # a budget carves no large val split
        test_fraction=test_fraction,
        seed=seed,
        cache_short_side=cache_short_side,
        download=download,
    )
    if not budget.active:
        return splits
    # under a budget nothing is carved for validation: drop the split rules' word that it is
    notes = [note.replace("; val is carved from train", "") for note in splits.info.get("notes", [])]  # type: ignore[attr-defined]
    if splits.val is not None:
        notes.append("label budget: the official val split is left unused (its labels are beyond the budget)")
    pool = splits.train
    indices = split_by_budget(pool, budget)
    rest = pool.subset(indices.unlabelled)
    train = pool.subset(indices.labelled)
    val = pool.subset(indices.val) if indices.val.numel() else None
    unlabelled = ImageSet(images=rest.images, labels=None, ids=rest.ids, classes=[])
    budgeted = DataSplits(
        train=train, val=val, test=splits.test, info=dict(splits.info), unlabelled=unlabelled, hidden_labels=rest.labels
    )
    origin = dict(splits.info["origin"])  # type: ignore[call-overload]
    origin["train"] = f"label budget of {origin['train']}"
    origin["val"] = None if val is None else "label budget (val_per_class)"
    named = budgeted.named()
    budgeted.info.update(
        origin=origin,
        notes=notes,
        val_fraction=0.0,
        sizes={"train": len(train), "val": None if val is None else len(val), "test": splits.info["sizes"]["test"]},  # type: ignore[index]
        fingerprints={name: fingerprint(split) for name, split in named.items()},
        label_budget={
            **budget.record(),
            "labelled_train": len(train),
            "labelled_val": 0 if val is None else len(val),
            "unlabelled": len(unlabelled),
            "unlabelled_fingerprint": fingerprint(unlabelled),
        },
    )
    return budgeted
