"""``scarce evaluate`` under a label budget: the probes train on the budget only, nothing is selected
without a validation split drawn from it, every label seen is counted, and the run's budget is the default."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from scarce.cli import main
from scarce.config import load_config
from scarce.data.budget import LabelBudget
from scarce.eval.encoders import random_encoder
from scarce.eval.linear import train_linear_probe
from scarce.evaluate import EvaluationConfig, evaluate, evaluation_budget
from scarce.models import preset_config
from tests.eval.test_evaluate import FAST, _blob_npz_dir


def _evaluate(tmp_path: Path, **budget: int) -> dict:
    settings = FAST.model_copy(update={"fewshot_shots": (1, 2, 8), **budget})
    loaded = random_encoder(preset_config("scott-tiny"), seed=0)
    evaluate(
        loaded, f"npz:{_blob_npz_dir(tmp_path / 'data', test_seed=2)}", settings, tmp_path / "out", log=lambda _: None
    )
    return json.loads((tmp_path / "out" / "results.json").read_text())


def test_a_budget_without_validation_trains_one_fixed_configuration_per_family(tmp_path: Path) -> None:
    results = _evaluate(tmp_path, labels_per_class=4)
    protocol = results["protocol"]
    assert protocol["labels_used"] == {"train": 16, "val": 0}
    assert protocol["split_sizes"] == {"train": 16, "test": 32}  # the official val split is left unused
    assert protocol["selection"].startswith("none: fixed recipe, the last epoch")
    rows = {row["family"]: row for row in results["results"]}
    assert all(row["val"] is None and row["test"] is not None for row in results["results"])
    attentive = [row for row in results["results"] if row["family"] == "attentive"]
    assert [row["probe"] for row in attentive] == [FAST.attentive_kinds[0]] and attentive[0]["selected"]["epoch"] == 2
    assert rows["linear"]["selected"]["lr"] == 3e-3 and rows["linear"]["selected"]["weight_decay"] == 1e-4
    assert rows["knn"]["selected"] == {"k": 10}  # the middle of knn_ks (5, 10)
    assert sorted({record["shots"] for record in results["fewshot"]}) == [1, 2]  # 8 > 4 labels per class: skipped
    assert results["headline"]["family"] == "attentive"  # the first family, a fixed choice


def test_a_budget_with_validation_selects_on_it_and_counts_its_labels(tmp_path: Path) -> None:
    results = _evaluate(tmp_path, labels_per_class=6, val_per_class=2)
    assert results["protocol"]["labels_used"] == {"train": 16, "val": 8}
    assert all(row["val"] is not None for row in results["results"])
    assert len([row for row in results["results"] if row["family"] == "attentive"]) == len(FAST.attentive_kinds)


def test_the_evaluated_runs_budget_is_the_default_and_the_settings_win() -> None:
    run = load_config("scott-tiny", ["data.labels_per_class=10", "data.label_seed=3"])
    assert evaluation_budget(EvaluationConfig(), run) == LabelBudget(labels_per_class=10, label_seed=3)
    assert evaluation_budget(EvaluationConfig(labels_per_class=2), run) == LabelBudget(labels_per_class=2)
    assert not evaluation_budget(EvaluationConfig(), None).active


def test_the_linear_probe_without_validation_keeps_the_last_epoch() -> None:
    import torch

    features, labels = torch.randn(40, 8), torch.arange(40) % 4
    selection = train_linear_probe(features, labels, None, None, 4, epochs=7)
    assert (selection.lr, selection.weight_decay, selection.epoch) == (3e-3, 1e-4, 7)
    assert math.isnan(selection.val_top1)


def test_cli_budget_flags_reach_the_probes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _blob_npz_dir(tmp_path / "data", test_seed=2)
    command = ["evaluate", "--random-init", "-c", "scott-tiny", "--data", f"npz:{data}", "--probes", "knn"]
    assert main([*command, "--labels-per-class", "5", "--label-seed", "1", "--out", str(tmp_path / "out")]) == 0
    protocol = json.loads((tmp_path / "out" / "results.json").read_text())["protocol"]
    assert protocol["labels_used"] == {"train": 20, "val": 0} and protocol["label_budget"]["label_seed"] == 1
    assert main([*command, "--labels-per-class", "30", "--out", str(tmp_path / "too-many")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "labels_per_class=30 but class 'r' has only 24 training images" in error[0]
