"""Epoch records are means over the epoch's micro-batches, not the last micro-batch's values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scarce.config import load_config
from scarce.engine.epoch_stats import EpochStats
from scarce.pretrain import pretrain
from tests.helpers import TINY_OVERRIDES, needs_data


def test_epoch_stats_average_every_step() -> None:
    stats = EpochStats()
    for step, value in enumerate((0.0, 1.0, 5.0)):
        stats.add_step(loss=float(step), images=4, metrics={"train_top1": value})
        stats.add_tokens(torch.full((4, 2, 3), float(step)) + torch.arange(4.0)[:, None, None] * (step + 1))
    summary = stats.summary()
    assert summary["loss"] == pytest.approx(1.0)
    assert summary["train_top1"] == pytest.approx(2.0)
    expected_std = sum(torch.arange(4.0).std().item() * (step + 1) for step in range(3)) / 3
    assert summary["target_token_std"] == pytest.approx(expected_std)
    assert stats.images == 12 and summary["effective_rank"] >= 1.0


@needs_data
def test_epoch_record_is_the_mean_of_its_iterations(tmp_path: Path) -> None:
    config = load_config(
        "scott-tiny", [*TINY_OVERRIDES, "data.subset_total=64", "run.batch_size=16", "schedule.epochs=1"]
    )
    pretrain(config, tmp_path / "run", show_progress=False, log=lambda _: None)
    iterations = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (epoch,) = [json.loads(line) for line in (tmp_path / "run" / "epochs.jsonl").read_text().splitlines()]
    assert len(iterations) == 4
    values = [record["context_token_std"] for record in iterations]
    assert len(set(values)) > 1  # the test can tell a mean from the last value
    assert epoch["context_token_std"] == pytest.approx(sum(values) / len(values))
    assert epoch["loss"] == pytest.approx(sum(record["loss"] for record in iterations) / len(iterations))
