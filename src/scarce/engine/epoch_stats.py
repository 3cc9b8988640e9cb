"""What an epoch record says about the epoch: means over its micro-batches, not the last one."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from scarce.engine.diagnostics import effective_rank

MAX_RANK_FEATURES = 2048
"""Pooled features kept per epoch for the effective rank (RankMe)."""


@dataclass
class EpochStats:
    """Running sums of one epoch: loss, images, the method's scalars and the collapse diagnostics.

    ``add_tokens`` takes the method's probe tokens ``[B, N, D]``: their std across the batch is
    averaged over the epoch (``target_token_std``), and up to :data:`MAX_RANK_FEATURES` mean-pooled
    rows are kept for the effective rank.
    """

    losses: list[float] = field(default_factory=list)
    images: int = 0
    metric_sums: dict[str, float] = field(default_factory=dict)
    metric_counts: dict[str, int] = field(default_factory=dict)
    token_std_sum: float = 0.0
    token_batches: int = 0
    pooled: list[Tensor] = field(default_factory=list)

    def add_step(self, loss: float, images: int, metrics: dict[str, float]) -> None:
        self.losses.append(loss)
        self.images += images
        for key, value in metrics.items():
            self.metric_sums[key] = self.metric_sums.get(key, 0.0) + value
            self.metric_counts[key] = self.metric_counts.get(key, 0) + 1

    @torch.no_grad()
    def add_tokens(self, tokens: Tensor) -> None:
        tokens = tokens.float()
        self.token_std_sum += float(tokens.std(dim=0).mean())
        self.token_batches += 1
        if sum(len(chunk) for chunk in self.pooled) < MAX_RANK_FEATURES:
            self.pooled.append(tokens.mean(dim=1).cpu())

    def summary(self) -> dict[str, float]:
        """Means over the epoch: ``loss``, each method scalar, ``target_token_std`` and
        ``effective_rank`` (when the method gave tokens)."""
        record: dict[str, float] = {"loss": sum(self.losses) / max(len(self.losses), 1)}
        record.update({key: total / self.metric_counts[key] for key, total in self.metric_sums.items()})
        if self.token_batches:
            record["target_token_std"] = self.token_std_sum / self.token_batches
            record["effective_rank"] = effective_rank(torch.cat(self.pooled)[:MAX_RANK_FEATURES])
        return record
