"""Linear probe on cached pooled features, with its hyper-parameters selected on validation."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class LinearSelection:
    lr: float
    weight_decay: float
    epoch: int
    val_top1: float
    probe: nn.Linear
    mean: Tensor  # feature standardisation fitted on the training features
    std: Tensor

    @torch.no_grad()
    def logits(self, features: Tensor) -> Tensor:
        return self.probe((features - self.mean) / self.std)


def train_linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    val_features: Tensor | None,
    val_labels: Tensor | None,
    num_classes: int,
    epochs: int = 100,
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2),
    weight_decays: tuple[float, ...] = (0.0, 1e-4, 1e-2),
    batch_size: int = 256,
    eval_every: int = 5,
    seed: int = 0,
) -> LinearSelection:
    """AdamW logistic regression on standardised features ``[M, F]``; the (lr, weight decay,
    epoch) with the best validation top-1 wins. Seconds on a CPU for a few thousand images.

    Without validation features (a label budget with no validation split) nothing is selected: the
    middle of each grid (by default lr 3e-3, weight decay 1e-4) trains for ``epochs`` and the last
    epoch is kept (``val_top1`` is NaN)."""
    mean = train_features.mean(0)
    std = train_features.std(0).clamp_min(1e-6)
    train_x = (train_features - mean) / std
    val_x = None if val_features is None else (val_features - mean) / std
    grid = list(itertools.product(lrs, weight_decays))
    if val_x is None or val_labels is None:
        grid = [(lrs[len(lrs) // 2], weight_decays[len(weight_decays) // 2])]
    best: LinearSelection | None = None
    for lr, weight_decay in grid:
        generator = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        probe = nn.Linear(train_x.shape[1], num_classes)
        optimizer = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=weight_decay)
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(train_x), generator=generator)
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                loss = F.cross_entropy(probe(train_x[index]), train_labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if epoch % eval_every and epoch != epochs:
                continue
            if val_x is None or val_labels is None:
                if epoch != epochs:
                    continue
                top1 = float("nan")
            else:
                with torch.no_grad():
                    top1 = (probe(val_x).argmax(-1) == val_labels).float().mean().item()
            if best is None or val_x is None or top1 > best.val_top1:
                snapshot = nn.Linear(train_x.shape[1], num_classes)
                snapshot.load_state_dict(probe.state_dict())
                best = LinearSelection(lr, weight_decay, epoch, top1, snapshot, mean, std)
    assert best is not None
    return best
