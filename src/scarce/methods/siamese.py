"""What MoCo v2, SimCLR and BYOL share: two independently augmented views, a backbone whose
tokens are mean-pooled into one feature vector, and a momentum copy of online modules."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from torch import Tensor, nn

from scarce.data.transforms import normalize_batch
from scarce.data.views import ViewTransform, two_crops
from scarce.methods.base import Batch, Method
from scarce.models.backbone import build_backbone
from scarce.models.layers import token_layer_norm

if TYPE_CHECKING:
    from scarce.config import ScarceConfig


def pooled(tokens: Tensor) -> Tensor:
    """Mean over the tokens: ``[B, N, D] -> [B, D]`` (for a ResNet, global average pooling)."""
    return tokens.mean(dim=1)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of ``module`` for the EMA target / key network (BatchNorm keeps training mode,
    as in MoCo and BYOL: the copy's batch statistics come from its own forward pass)."""
    target = copy.deepcopy(module)
    target.requires_grad_(False)
    return target


class SiameseMethod(Method):
    """Base of the two-view contrastive methods: ``self.encoder`` is the online backbone."""

    encoder: nn.Module

    @classmethod
    def train_transform(cls, config: ScarceConfig, crop_size: int) -> ViewTransform:
        return two_crops(config, crop_size)

    @staticmethod
    def backbone_of(config: ScarceConfig) -> nn.Module:
        """A freshly initialised backbone of the run's ``backbone`` section."""
        return build_backbone(config.network_config())

    def two_views(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The two normalised views ``[B, 3, S, S]`` of a batch."""
        if len(batch.views) != 2:
            raise ValueError(f"{self.name} needs two views per image, got {len(batch.views)}")
        first, second = (normalize_batch(view) for view in batch.views)
        return first, second

    def monitor_encoder(self) -> nn.Module:
        return self.encoder

    @staticmethod
    def probe_tokens(tokens: Tensor) -> Tensor:
        """Detached, LayerNorm-ed tokens ``[B, N, D]`` for the online probe (as its validation sees them)."""
        return token_layer_norm(tokens.detach().float())

    def parameter_groups(self) -> list[dict[str, object]]:
        """One group, weight decay on every parameter (the S3L / MoCo code's SGD)."""
        params = [p for module in self.trainable_modules().values() for p in module.parameters() if p.requires_grad]
        return [{"params": params, "wd_scale": 1.0}]
