"""The supervised baseline: trains, selects its epoch on validation, tests once; fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scarce.cli import main
from scarce.config import load_config
from scarce.errors import ConfigError
from scarce.pretrain import pretrain
from scarce.supervised import SUPERVISED_RECIPE, train_supervised
from tests.helpers import IMAGENETTE, needs_data

BASE = [f"data.spec=npz:{IMAGENETTE}", "data.subset_total=128", "data.num_workers=0", "run.tensorboard=false"]


@needs_data
def test_supervised_from_scratch_selects_on_val_and_tests_once(tmp_path: Path) -> None:
    config = load_config("scott-tiny", [*SUPERVISED_RECIPE, *BASE, "schedule.epochs=3"])
    result, report = train_supervised(config, tmp_path / "sup", show_progress=False, log=lambda _: None)
    assert result.status == "finished" and report is not None
    epochs = [json.loads(line) for line in (tmp_path / "sup" / "epochs.jsonl").read_text().splitlines()]
    best_epoch = max(range(3), key=lambda index: (epochs[index]["val_top1"], -index)) + 1
    saved = json.loads((tmp_path / "sup" / "results.json").read_text())
    row = saved["results"][0]
    assert row["family"] == "supervised" and row["selected"]["epoch"] == best_epoch
    assert row["val"]["top1"] == pytest.approx(epochs[best_epoch - 1]["val_top1"])
    assert 0.0 <= row["test"]["top1"] <= 1.0 and saved["protocol"]["split_sizes"]["test"] == 500
    best = torch.load(tmp_path / "sup" / "checkpoints" / "best.pt", weights_only=False)
    assert best["state"]["best_epoch"] == best_epoch


@needs_data
def test_fine_tuning_starts_from_the_pretrained_encoder(tmp_path: Path) -> None:
    pretrain(
        load_config("scott-tiny", [*BASE, "schedule.epochs=1"]),
        tmp_path / "ssl",
        show_progress=False,
        log=lambda _: None,
    )
    args = [
        "supervised",
        "-c",
        "scott-tiny",
        "--data",
        f"npz:{IMAGENETTE}",
        "-o",
        str(tmp_path / "ft"),
        "--limit",
        "128",
    ]
    args += [
        "--epochs",
        "1",
        "--workers",
        "0",
        "--no-progress",
        "--init",
        str(tmp_path / "ssl"),
        "--set",
        "run.tensorboard=false",
    ]
    assert main(args) == 0
    saved = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert "fine-tuned from" in saved["protocol"]["pretraining"]
    mismatch = load_config(
        "scott-tiny", [*SUPERVISED_RECIPE, *BASE, "model.depth=3", f"supervised.init={tmp_path / 'ssl'}"]
    )
    with pytest.raises(ConfigError, match=r"depth: 3 -> 2|depth: 2 -> 3"):
        train_supervised(mismatch, tmp_path / "bad", show_progress=False, log=lambda _: None)
