"""BYOL (Grill et al. 2020, arXiv 2006.07733): an online encoder + projector + predictor regresses
the projection of an EMA target network, symmetric 2 - 2·cos loss over the two view orders. S3L
settings: target momentum 0.99, projector D -> 4096 (BN, ReLU) -> 128, predictor 128 -> 4096 -> 128,
SGD LR 0.125 with cosine."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from scarce.methods.base import Batch, BuildContext, StepOutput, register_method
from scarce.methods.losses import byol_loss
from scarce.methods.siamese import SiameseMethod, momentum_copy, pooled
from scarce.models.heads import byol_predictor, byol_projector

if TYPE_CHECKING:
    from scarce.config import ScarceConfig


@register_method("byol")
class BYOL(SiameseMethod):
    """``BYOL(backbone, projection_hidden=4096, projection_dim=128, prediction_hidden=4096)``."""

    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> BYOL:
        del context
        options = config.contrastive
        return cls(
            cls.backbone_of(config), options.projection_hidden, options.projection_dim, options.prediction_hidden
        )

    def __init__(
        self,
        backbone: nn.Module,
        projection_hidden: int = 4096,
        projection_dim: int = 128,
        prediction_hidden: int = 4096,
    ) -> None:
        super().__init__()
        self.encoder = backbone
        self.projector = byol_projector(int(backbone.embed_dim), projection_hidden, projection_dim)
        self.predictor = byol_predictor(projection_dim, prediction_hidden)
        self.target_encoder = momentum_copy(backbone)
        self.target_projector = momentum_copy(self.projector)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "projector": self.projector, "predictor": self.predictor}

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def export_encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "target_encoder": self.target_encoder}

    def training_step(self, batch: Batch) -> StepOutput:
        first, second = self.two_views(batch)
        both = torch.cat([first, second])
        tokens = self.encoder(both)
        first_p, second_p = self.predictor(self.projector(pooled(tokens))).float().chunk(2)
        with torch.no_grad():
            first_t, second_t = self.target_projector(pooled(self.target_encoder(both))).float().chunk(2)
        loss = byol_loss(first_p, second_t) + byol_loss(second_p, first_t)
        probe = self.probe_tokens(tokens[: first.shape[0]])
        return StepOutput(loss=loss, metrics={"loss": loss.detach()}, probe_tokens=probe)
