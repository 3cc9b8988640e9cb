"""What every training method declares, so one generic loop runs them all (after solo-learn)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from scarce.engine.ema import ema_update_


@dataclass
class Batch:
    """One training batch as the loader yields it (uint8 views; normalised by the method).

    Attributes:
        views: ``V`` tensors uint8 ``[B, 3, H, W]``.
        keep_mask: bool ``[B, N]`` (True = visible) for masked-image methods, else None.
        labels: int64 ``[B]`` (-1 = unlabelled) or None.
        indices: int64 ``[B]`` dataset indices.
    """

    views: list[Tensor]
    keep_mask: Tensor | None = None
    labels: Tensor | None = None
    indices: Tensor | None = None

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)`` for fast host-to-GPU copies."""
        return Batch(
            views=[view.pin_memory() for view in self.views],
            keep_mask=None if self.keep_mask is None else self.keep_mask.pin_memory(),
            labels=None if self.labels is None else self.labels.pin_memory(),
            indices=None if self.indices is None else self.indices.pin_memory(),
        )

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        def move(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.to(device, non_blocking=non_blocking)

        return Batch(
            views=[view.to(device, non_blocking=non_blocking) for view in self.views],
            keep_mask=move(self.keep_mask),
            labels=move(self.labels),
            indices=move(self.indices),
        )


@dataclass
class StepOutput:
    """What a training step returns: the loss to minimise, scalars to log, and optionally
    detached tokens ``[B, N, D]`` for the online probe and the collapse diagnostics."""

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
    probe_tokens: Tensor | None = None


class Method(nn.Module):
    """A self-supervised (or supervised) method: modules, EMA pairs and one step.

    Subclasses set ``name`` and implement :meth:`training_step`, :meth:`trainable_modules`
    and (if they have a momentum network) :meth:`ema_pairs`.
    """

    name: str = "method"

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Modules optimised by the optimiser, by name."""
        raise NotImplementedError

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(online, target)`` pairs updated by EMA after each optimiser step."""
        return []

    def training_step(self, batch: Batch) -> StepOutput:
        raise NotImplementedError

    def forward(self, batch: Batch) -> StepOutput:
        """The training step (so that ``DistributedDataParallel(method)(batch)`` syncs gradients)."""
        return self.training_step(batch)

    def export_encoders(self) -> dict[str, nn.Module]:
        """Encoders worth saving at the end of a run, by file stem."""
        raise NotImplementedError

    def monitor_encoder(self) -> nn.Module:
        """The encoder whose validation tokens the online probe scores: the target (EMA) encoder if
        the method has one, else the encoder (its ``probe_tokens`` must come from the same one)."""
        encoders = self.export_encoders()
        return encoders.get("target_encoder", encoders["encoder"])

    def begin_epoch(self, epoch: int) -> None:
        """Called by the loop before each epoch (0-based), e.g. to freeze parts during a warm-up."""
        del epoch

    def parameter_groups(self) -> list[dict[str, object]]:
        """AdamW groups: weight decay on every weight with ``ndim > 1`` that is not a bias; none on
        biases and 1-D parameters (spec sec. 4.7). ``wd_scale`` tells the loop which group the
        weight-decay schedule drives."""
        decay, no_decay = [], []
        for module in self.trainable_modules().values():
            for name, param in module.named_parameters():
                if not param.requires_grad:
                    continue
                (decay if param.ndim > 1 and not name.endswith(".bias") else no_decay).append(param)
        return [{"params": decay, "wd_scale": 1.0}, {"params": no_decay, "wd_scale": 0.0, "weight_decay": 0.0}]

    def classify(self, images: Tensor) -> Tensor | None:
        """Class logits ``[B, C]`` for uint8 images, for methods that classify (else None). The loop
        then scores the validation split every epoch and keeps the best epoch's weights."""
        del images
        return None

    def update_ema(self, momentum: float) -> None:
        for online, target in self.ema_pairs():
            ema_update_(target, online, momentum)
