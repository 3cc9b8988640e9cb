"""EMA arithmetic."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scarce.engine.ema import ema_update_


def test_ema_update_matches_formula() -> None:
    torch.manual_seed(0)
    online, target = nn.Linear(4, 3), nn.Linear(4, 3)
    before = [p.detach().clone() for p in target.parameters()]
    ema_update_(target, online, momentum=0.9)
    for old, new, current in zip(before, target.parameters(), online.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * current)


def test_ema_momentum_one_keeps_target_and_zero_copies() -> None:
    online, target = nn.Linear(4, 3), nn.Linear(4, 3)
    before = [p.detach().clone() for p in target.parameters()]
    ema_update_(target, online, momentum=1.0)
    for old, new in zip(before, target.parameters(), strict=True):
        assert torch.equal(old, new)
    ema_update_(target, online, momentum=0.0)
    for new, current in zip(target.parameters(), online.parameters(), strict=True):
        assert torch.equal(new, current)


def test_ema_rejects_bad_momentum_and_mismatch() -> None:
    with pytest.raises(ValueError, match="momentum"):
        ema_update_(nn.Linear(2, 2), nn.Linear(2, 2), 1.5)
    with pytest.raises(ValueError, match="different parameter lists"):
        ema_update_(nn.Linear(2, 2), nn.Linear(2, 2, bias=False), 0.5)
