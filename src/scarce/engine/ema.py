"""Exponential moving average of parameters (the JEPA / BYOL / MoCo target network)."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def ema_update_(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``θ̄ ← m·θ̄ + (1 − m)·θ`` for every parameter pair, fused with ``torch._foreach_*``.

    ``target`` and ``online`` must have the same parameter names, shapes and order.
    """
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"EMA momentum must be in [0, 1], got {momentum}")
    target_params = list(target.parameters())
    online_params = list(online.parameters())
    if len(target_params) != len(online_params):
        raise ValueError("EMA target and online modules have different parameter lists")
    if momentum == 1.0:
        return
    torch._foreach_mul_(target_params, momentum)
    torch._foreach_add_(target_params, [p.detach() for p in online_params], alpha=1.0 - momentum)
