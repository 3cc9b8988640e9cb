"""Online attentive probe: monitors representation quality during pretraining (spec sec. 4.9).

A simple attentive probe with its own AdamW, trained on the detached target tokens of each
training batch with **training-split labels only** (the official code also trains it on test
labels), and scored on the validation split once per epoch. Monitoring only: it never touches
the encoder's gradients and is not used for any selection.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.engine.checkpoint import load_optimizer_state, load_state_dict_strict
from scarce.errors import CheckpointError
from scarce.eval.features import extract
from scarce.models.probes import SimpleAttentiveProbe


class OnlineProbe:
    """``train_step(tokens [B, N, D], labels [B])``; ``evaluate(features_fn, images, labels)``."""

    def __init__(self, embed_dim: int, num_classes: int, lr: float, weight_decay: float, device: torch.device):
        self.probe = SimpleAttentiveProbe(embed_dim, num_classes).to(device)
        self.optimizer = torch.optim.AdamW(self.probe.parameters(), lr=lr, weight_decay=weight_decay)

    def train_step(self, tokens: Tensor, labels: Tensor) -> float | None:
        """One update on the labelled rows (label >= 0); returns the loss or None if none."""
        labelled = labels >= 0
        if not bool(labelled.any()):
            return None
        self.probe.train()
        logits = self.probe(tokens[labelled].float())
        loss = F.cross_entropy(logits, labels[labelled])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.item()

    @torch.no_grad()
    def evaluate(
        self,
        features: Callable[[Tensor], Tensor],
        images: Tensor,
        labels: Tensor,
        batch_size: int,
        autocast: Callable[[], AbstractContextManager[object]],
    ) -> float:
        """Top-1 accuracy on ``images`` (uint8 ``[M, 3, S, S]``) with ``features(batch) -> tokens``."""
        self.probe.eval()
        device = next(self.probe.parameters()).device

        def predictions(batch: Tensor) -> Tensor:
            with autocast():
                tokens = features(batch.to(device))
            return self.probe(tokens.float()).argmax(dim=-1)

        return (extract(predictions, images, batch_size) == labels).float().mean().item()

    def state_dict(self) -> dict[str, object]:
        return {"probe": self.probe.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, object], what: str = "online probe") -> None:
        """Restore weights and optimiser; a state that does not fit is a one-line CheckpointError."""
        probe_state, optimizer_state = state.get("probe"), state.get("optimizer")
        if not isinstance(probe_state, dict) or not isinstance(optimizer_state, dict):
            raise CheckpointError(f"{what}: expected 'probe' and 'optimizer' state dicts")
        load_state_dict_strict(self.probe, probe_state, what)
        load_optimizer_state(self.optimizer, optimizer_state, f"{what} optimizer")

    def modules(self) -> list[nn.Module]:
        return [self.probe]
