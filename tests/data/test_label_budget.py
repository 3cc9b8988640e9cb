"""Label budgets (:mod:`scarce.data.budget`): seeded, stratified, nested draws; the rest unlabelled;
no validation split beyond the budget; the test split untouched; one-line errors naming the class."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from scarce.config import load_config
from scarce.data.budget import LabelBudget, load_budgeted, split_by_budget
from scarce.data.datasets import ImageSet, load_data
from scarce.errors import ConfigError
from scarce.pretrain import pretrain
from tests.data.test_datasets import data_error, write_npz


def _pool(class_sizes: list[int]) -> ImageSet:
    labels = torch.cat([torch.full((size,), label, dtype=torch.int64) for label, size in enumerate(class_sizes)])
    images = torch.zeros(len(labels), 3, 2, 2, dtype=torch.uint8)
    return ImageSet(
        images, labels, [f"img{index}" for index in range(len(labels))], [f"c{c}" for c in range(len(class_sizes))]
    )


def _ids(image_set: ImageSet | None) -> set[str]:
    return set() if image_set is None else set(image_set.ids)


def test_a_budget_is_stratified_seeded_nested_and_partitions_the_pool() -> None:
    pool = _pool([40, 25, 60])
    small = split_by_budget(pool, LabelBudget(labels_per_class=5, label_seed=3))
    large = split_by_budget(pool, LabelBudget(labels_per_class=20, label_seed=3))
    again = split_by_budget(pool, LabelBudget(labels_per_class=5, label_seed=3))
    other = split_by_budget(pool, LabelBudget(labels_per_class=5, label_seed=4))
    assert Counter(pool.labels[small.labelled].tolist()) == {0: 5, 1: 5, 2: 5}
    assert torch.equal(small.labelled, again.labelled) and not torch.equal(small.labelled, other.labelled)
    assert set(small.labelled.tolist()) <= set(large.labelled.tolist())  # 5 per class is the head of 20
    everything = torch.cat([large.labelled, large.val, large.unlabelled])
    assert sorted(everything.tolist()) == list(range(len(pool)))  # a partition: nothing lost, nothing twice
    assert torch.equal(large.labelled, torch.sort(large.labelled).values)


def test_validation_is_drawn_from_the_budget_and_a_fraction_keeps_every_class() -> None:
    pool = _pool([40, 25, 60])
    with_val = split_by_budget(pool, LabelBudget(labels_per_class=10, val_per_class=3))
    without = split_by_budget(pool, LabelBudget(labels_per_class=10))
    assert Counter(pool.labels[with_val.labelled].tolist()) == {0: 7, 1: 7, 2: 7}
    assert Counter(pool.labels[with_val.val].tolist()) == {0: 3, 1: 3, 2: 3}
    assert set(torch.cat([with_val.labelled, with_val.val]).tolist()) == set(without.labelled.tolist())
    assert without.val.numel() == 0
    fraction = split_by_budget(pool, LabelBudget(label_fraction=0.01))
    assert Counter(pool.labels[fraction.labelled].tolist()) == {0: 1, 1: 1, 2: 1}  # at least one per class
    tenth = split_by_budget(pool, LabelBudget(label_fraction=0.1))
    assert Counter(pool.labels[tenth.labelled].tolist()) == {0: 4, 1: 3, 2: 6}  # round(0.1 * 25) = 3 (halves up)


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (dict(labels_per_class=5, label_fraction=0.1), "not both"),
        (dict(val_per_class=2), "val_per_class is drawn from a label budget"),
        (dict(labels_per_class=3, val_per_class=3), "val_per_class=3 leaves no training labels"),
        (dict(label_fraction=1.5), "label_fraction must be in (0, 1]"),
        (dict(labels_per_class=0), "labels_per_class must be >= 1"),
    ],
)
def test_bad_budgets_are_one_line_errors(budget: dict, message: str) -> None:
    with data_error(message):
        LabelBudget(**budget)


def test_a_budget_larger_than_a_class_names_the_class() -> None:
    with data_error("labels_per_class=30 but class 'c1' has only 25 training images"):
        split_by_budget(_pool([40, 25, 60]), LabelBudget(labels_per_class=30))
    with data_error("val_per_class=1 leaves no training labels in class 'c0'"):
        split_by_budget(_pool([3, 25]), LabelBudget(label_fraction=0.1, val_per_class=1))


def test_load_budgeted_keeps_the_carved_val_in_the_pool_and_the_test_split_unchanged(tmp_path: Path) -> None:
    write_npz(tmp_path / "d.npz", [30, 30, 30])
    spec = f"npz:{tmp_path / 'd.npz'}"
    plain = load_data(spec, val_fraction=0.1, test_fraction=0.2, seed=0)
    budgeted = load_budgeted(spec, LabelBudget(labels_per_class=4, label_seed=1), val_fraction=0.1, test_fraction=0.2)
    assert plain.test is not None and budgeted.test is not None
    assert budgeted.test.ids == plain.test.ids and budgeted.val is None
    assert _ids(budgeted.train) | _ids(budgeted.unlabelled) == _ids(plain.train) | _ids(plain.val)
    assert len(budgeted.train) == 12 and budgeted.unlabelled is not None and not budgeted.unlabelled.is_labelled
    assert plain.val is not None and plain.train.labels is not None and plain.val.labels is not None
    pool_labels = torch.cat([plain.train.labels, plain.val.labels]).tolist()
    truth = dict(zip(plain.train.ids + plain.val.ids, pool_labels, strict=True))
    assert budgeted.hidden_labels is not None
    assert budgeted.hidden_labels.tolist() == [truth[name] for name in budgeted.unlabelled.ids]
    record = budgeted.info["label_budget"]
    assert record["labelled_train"] == 12 and record["labelled_val"] == 0 and record["unlabelled"] == 60
    assert budgeted.info["sizes"] == {"train": 12, "val": None, "test": 18}
    json.dumps(budgeted.info)  # JSON-serialisable, as splits.json and results.json need


def test_an_official_val_split_is_left_unused_with_a_note(tmp_path: Path) -> None:
    for split, sizes in (("train", [20, 20]), ("val", [5, 5]), ("test", [5, 5])):
        write_npz(tmp_path / f"d_{split}.npz", sizes)
    budgeted = load_budgeted(f"npz:{tmp_path}", LabelBudget(labels_per_class=3, val_per_class=1))
    assert budgeted.val is not None and len(budgeted.val) == 2 and len(budgeted.train) == 4
    assert budgeted.unlabelled is not None and len(budgeted.unlabelled) == 34
    assert any("official val split is left unused" in note for note in budgeted.info["notes"])


def test_config_validates_the_budget_fields_together() -> None:
    with pytest.raises(ConfigError, match="val_per_class is drawn from a label budget"):
        load_config("scott-tiny", ["data.val_per_class=2"])
    config = load_config("scott-tiny", ["data.labels_per_class=10", "data.label_seed=2"])
    assert config.data.budget == LabelBudget(labels_per_class=10, label_seed=2)


def test_pretraining_under_a_budget_sees_every_image_and_records_the_labelled_ids(tmp_path: Path) -> None:
    write_npz(tmp_path / "d.npz", [12, 12, 12], size=32)
    overrides = [f"data.spec=npz:{tmp_path / 'd.npz'}", "data.num_workers=0", "run.tensorboard=false"]
    overrides += ["run.batch_size=8", "schedule.epochs=1", "data.labels_per_class=2", "data.label_seed=5"]
    run = tmp_path / "run"
    pretrain(load_config("scott-tiny", overrides), run, show_progress=False, log=lambda _: None)
    splits = json.loads((run / "splits.json").read_text())
    environment = json.loads((run / "environment.json").read_text())
    assert splits["label_budget"]["labels_per_class"] == 2 and splits["val"] == []
    assert splits["labelled"] == splits["train"] and len(splits["labelled"]) == 6
    assert not set(splits["labelled"]) & set(splits["unlabelled"])
    assert not (set(splits["labelled"]) | set(splits["unlabelled"])) & set(splits["test"])
    assert environment["labels_used"] == {"train": 6, "val": 0}
    assert environment["pretrain_images"] == len(splits["labelled"]) + len(splits["unlabelled"]) == 30
