"""SimCLR (Chen et al. 2020, arXiv 2002.05709): both views through one encoder and projector,
NT-Xent with in-batch negatives. Under DDP the negatives are gathered from every rank, so the loss
does not depend on the number of processes (the S3L code's per-GPU negatives do). S3L settings:
T = 0.1, batch 512, LR 0.5 with a 10-epoch warm-up and cosine."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from scarce.methods.base import Batch, BuildContext, StepOutput, register_method
from scarce.methods.losses import nt_xent
from scarce.methods.siamese import SiameseMethod, pooled
from scarce.models.heads import simclr_projector

if TYPE_CHECKING:
    from scarce.config import ScarceConfig


@register_method("simclr")
class SimCLR(SiameseMethod):
    """``SimCLR(backbone, temperature=0.1, projection_hidden=2048, projection_dim=128)``."""

    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> SimCLR:
        del context
        options = config.contrastive
        return cls(cls.backbone_of(config), options.temperature, options.projection_hidden, options.projection_dim)

    def __init__(
        self, backbone: nn.Module, temperature: float = 0.1, projection_hidden: int = 2048, projection_dim: int = 128
    ) -> None:
        super().__init__()
        self.temperature = temperature
        self.encoder = backbone
        self.projector = simclr_projector(int(backbone.embed_dim), projection_hidden, projection_dim)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "projector": self.projector}

    def export_encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def training_step(self, batch: Batch) -> StepOutput:
        first, second = self.two_views(batch)
        tokens = self.encoder(torch.cat([first, second]))  # BatchNorm sees both views, as in SimCLR
        first_z, second_z = self.projector(pooled(tokens)).float().chunk(2)
        loss = nt_xent(first_z, second_z, self.temperature)
        probe = self.probe_tokens(tokens[: first.shape[0]])
        return StepOutput(loss=loss, metrics={"loss": loss.detach()}, probe_tokens=probe)
