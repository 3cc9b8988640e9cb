"""Schedule end-points against spec sec. 4.8 (Flowers-102: 127 it/epoch, 300 epochs, 40 warm-up)."""

from __future__ import annotations

import itertools

import pytest

from scarce.config import load_config
from scarce.engine.optim import Schedules
from scarce.engine.schedules import Cosine, Linear, WarmupFlatCosine

STEPS_PER_EPOCH = 127


@pytest.fixture
def paper() -> Schedules:
    return Schedules.from_config(load_config("scott-paper"), STEPS_PER_EPOCH)


def test_paper_totals(paper: Schedules) -> None:
    assert paper.lr.total_steps == 38_100
    assert paper.lr.warmup_steps == 40 * 127 == 5080
    assert paper.lr.flat_end == 5080 + round(0.72 * (38_100 - 5080))


def test_lr_end_points(paper: Schedules) -> None:
    lr = paper.lr
    assert lr(0) == pytest.approx(1e-6)
    assert lr(lr.warmup_steps // 2) == pytest.approx((1e-6 + 5e-4) / 2)
    assert lr(lr.warmup_steps) == pytest.approx(5e-4)
    assert lr(lr.flat_end - 1) == pytest.approx(5e-4)
    assert lr(lr.flat_end) == pytest.approx(5e-4)
    assert lr(38_100) == pytest.approx(1e-5)
    middle = (lr.flat_end + 38_100) // 2
    assert lr(middle) == pytest.approx((5e-4 + 1e-5) / 2, rel=1e-3)
    values = [lr(step) for step in range(lr.flat_end, 38_101, 97)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_weight_decay_and_momentum_end_points(paper: Schedules) -> None:
    assert paper.weight_decay(0) == pytest.approx(0.04)
    assert paper.weight_decay(38_100) == pytest.approx(0.4)
    assert paper.weight_decay(19_050) == pytest.approx(0.22)
    assert paper.momentum(0) == pytest.approx(0.996)
    assert paper.momentum(38_100) == pytest.approx(1.0)
    assert paper.momentum(19_050) == pytest.approx(0.998)


def test_cosine_momentum_option() -> None:
    config = load_config("scott-paper", ["schedule.ema_schedule=cosine"])
    momentum = Schedules.from_config(config, STEPS_PER_EPOCH).momentum
    assert isinstance(momentum, Cosine)
    assert momentum(0) == pytest.approx(0.996)
    assert momentum(38_100) == pytest.approx(1.0)
    assert momentum(19_050) == pytest.approx(0.998)
    assert momentum(9_525) < Linear(0.996, 1.0, 38_100)(9_525)


def test_schedules_clamp_outside_range() -> None:
    schedule = WarmupFlatCosine(0.0, 1.0, 0.1, total_steps=100, warmup_steps=10)
    assert schedule(10_000) == pytest.approx(0.1)
    assert Linear(1.0, 2.0, 0)(5) == 2.0


def test_linear_lr_scaling_rule_is_explicit() -> None:
    plain = Schedules.from_config(load_config("scott-paper", ["run.batch_size=128"]), STEPS_PER_EPOCH)
    scaled = Schedules.from_config(
        load_config("scott-paper", ["run.batch_size=128", "optim.lr_scaling=linear"]), STEPS_PER_EPOCH
    )
    assert plain.lr(plain.lr.warmup_steps) == pytest.approx(5e-4)  # the paper: no scaling
    assert scaled.lr(scaled.lr.warmup_steps) == pytest.approx(1e-3)  # 5e-4 x 128 / 64
