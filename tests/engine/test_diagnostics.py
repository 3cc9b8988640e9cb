"""Collapse diagnostics and the collapse warning."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from scarce.engine.diagnostics import effective_rank, token_std_across_batch
from scarce.engine.loop import Trainer, TrainState


def test_effective_rank_bounds() -> None:
    assert effective_rank(torch.eye(16)) == pytest.approx(16.0, rel=1e-4)
    rank_one = torch.randn(64, 1) @ torch.randn(1, 16)
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=0.01)
    assert 1.0 < effective_rank(torch.randn(256, 16)) <= 16.0


def test_token_std_is_zero_for_identical_images() -> None:
    same = torch.randn(1, 8, 4).expand(5, 8, 4)
    assert token_std_across_batch(same) == 0.0
    assert token_std_across_batch(torch.randn(5, 8, 4)) > 0.5


def test_collapse_warning_fires_below_a_quarter_of_epoch_one() -> None:
    messages: list[str] = []
    fake = SimpleNamespace(state=TrainState(), log=messages.append)
    for rank in (32.0, 20.0, 9.0):
        Trainer._warn_on_collapse(fake, rank)  # type: ignore[arg-type]
    assert messages == []
    Trainer._warn_on_collapse(fake, 7.9)  # type: ignore[arg-type]
    assert len(messages) == 1 and "collapse suspected" in messages[0]
