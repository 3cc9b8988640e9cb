"""The optimiser over a method's parameter groups and the per-iteration schedules that drive it."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from scarce.config import ScarceConfig
from scarce.engine.schedules import Cosine, Linear, WarmupFlatCosine
from scarce.methods.base import Method


@dataclass
class Schedules:
    """Learning rate, weight decay and EMA momentum as functions of the optimiser step."""

    lr: WarmupFlatCosine
    weight_decay: Linear
    momentum: Linear | Cosine

    @classmethod
    def from_config(cls, config: ScarceConfig, steps_per_epoch: int) -> Schedules:
        total = config.schedule.epochs * steps_per_epoch
        optim, schedule = config.optim, config.schedule
        momentum_cls = Linear if schedule.ema_schedule == "linear" else Cosine
        return cls(
            lr=WarmupFlatCosine(
                start=optim.scaled(optim.start_lr, config.run.batch_size),
                peak=optim.scaled(optim.lr, config.run.batch_size),
                final=optim.scaled(optim.final_lr, config.run.batch_size),
                total_steps=total,
                warmup_steps=round(schedule.warmup_epochs * steps_per_epoch),
                flat_fraction=schedule.flat_fraction,
            ),
            weight_decay=Linear(optim.weight_decay, optim.final_weight_decay, total),
            momentum=momentum_cls(schedule.ema_start, schedule.ema_end, total),
        )

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> tuple[float, float, float]:
        """Set every group's LR (scaled by its ``lr_scale``: layer-wise LR decay) and weight decay
        (scaled by its ``wd_scale``) for ``step``; return ``(lr, weight decay, EMA momentum)``."""
        lr, weight_decay = self.lr(step), self.weight_decay(step)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
            group["weight_decay"] = weight_decay * group.get("wd_scale", 1.0)
        return lr, weight_decay, self.momentum(step)


def build_optimizer(method: Method, config: ScarceConfig) -> torch.optim.Optimizer:
    """AdamW (MIM-JEPA, spec sec. 4.7) or SGD with momentum (S3L) over the method's parameter
    groups; the loop sets each group's LR and weight decay every step from the schedules."""
    optim = config.optim
    groups = method.parameter_groups()
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)  # type: ignore[arg-type]
    return torch.optim.AdamW(
        groups,  # type: ignore[arg-type]
        lr=optim.lr,
        betas=optim.betas,
        eps=optim.eps,
        weight_decay=optim.weight_decay,
    )
