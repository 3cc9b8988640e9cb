"""MIM-JEPA (spec sec. 4): a context encoder sees the masked view, a predictor predicts in latent
space the tokens an EMA target encoder computes from the full second view; Smooth-L1 on masked
tokens only (Vélez-García et al., arXiv 2502.18056; after I-JEPA, Assran et al. 2023)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.data.transforms import normalize_batch
from scarce.data.views import ViewTransform, aligned_pair
from scarce.masking import MaskGenerator, make_mask_generator
from scarce.methods.base import Batch, BuildContext, Method, StepOutput, register_method
from scarce.models.backbone import BACKBONES
from scarce.models.encoder import Encoder
from scarce.models.layers import token_layer_norm
from scarce.models.predictor import Predictor, build_predictor

if TYPE_CHECKING:
    from scarce.config import ScarceConfig


def masked_smooth_l1(prediction: Tensor, target: Tensor, keep_mask: Tensor, beta: float = 1.0) -> Tensor:
    """Smooth-L1 averaged over D, then over the masked tokens of each sample, then the batch.

    ``prediction, target [B, N, D]``; ``keep_mask [B, N]`` bool, True = visible. Visible tokens
    contribute exactly 0 (they are excluded, not down-weighted).
    """
    per_token = F.smooth_l1_loss(prediction, target, reduction="none", beta=beta).mean(dim=-1)  # [B, N]
    masked = (~keep_mask).to(per_token.dtype)
    masked_count = masked.sum(dim=1)
    if bool((masked_count == 0).any()):
        raise ValueError("every sample needs at least one masked token")
    return ((per_token * masked).sum(dim=1) / masked_count).mean()


TargetCentering = Literal["none", "batch"]


def center_targets(targets: Tensor) -> Tensor:
    """Subtract the per-channel mean over the batch and the tokens (all ranks under DDP).

    ``[B, N, D] -> [B, N, D]``. Not in the paper. At small scale a large part of the LayerNorm-ed
    targets is the same for every image and position (the low-frequency cosine channels of the
    position embedding are ~1 everywhere, and the SCOTT stem's features are non-negative); the
    context encoder fits that shared part first, which collapses the representation. Centring
    removes it.
    """
    mean = targets.mean(dim=(0, 1), keepdim=True)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(mean, op=dist.ReduceOp.SUM)
        mean = mean / dist.get_world_size()
    return targets - mean


@register_method("mimjepa")
class MIMJEPA(Method):
    """``MIMJEPA(encoder, predictor)``; ``training_step`` expects two aligned views and a mask.

    >>> from scarce.models import create_encoder, build_predictor
    >>> encoder = create_encoder("scott-tiny")
    >>> method = MIMJEPA(encoder, build_predictor(encoder.config))
    """

    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> MIMJEPA:
        del context
        encoder = Encoder(config.model.encoder_config())
        predictor = build_predictor(
            encoder.config,
            depth=config.model.predictor_depth,
            init=config.model.predictor_init,
            masked_input=config.model.predictor_masked_input,
        )
        return cls(encoder, predictor, target_centering=config.mimjepa.target_centering)

    @classmethod
    def check_config(cls, config: ScarceConfig) -> None:
        if BACKBONES.get(config.backbone.kind).family != "transformer":
            raise ValueError("method mimjepa needs backbone.kind encoder (a token mask needs tokens)")

    @classmethod
    def train_transform(cls, config: ScarceConfig, crop_size: int) -> ViewTransform:
        return aligned_pair(config, crop_size)

    def mask_generator(self, config: ScarceConfig) -> MaskGenerator:
        """The ``masking`` section's generator on the context encoder's token grid."""
        masking = config.masking
        options: dict[str, Any] = {}
        if masking.kind == "blockwise":
            options = {"placement": masking.placement, "min_area": masking.min_area}
        return make_mask_generator(masking.kind, self.context_encoder.grid_size, masking.ratio, **options)

    def __init__(self, encoder: Encoder, predictor: Predictor, target_centering: TargetCentering = "none") -> None:
        super().__init__()
        if target_centering not in ("none", "batch"):
            raise ValueError(f"target_centering must be 'none' or 'batch', got {target_centering!r}")
        self.target_centering = target_centering
        self.context_encoder = encoder
        self.predictor = predictor
        self.target_encoder = copy.deepcopy(encoder)
        self.target_encoder.requires_grad_(False)
        self.target_encoder.eval()

    def train(self, mode: bool = True) -> MIMJEPA:
        super().train(mode)
        self.target_encoder.eval()  # the target is always in eval mode (no dropout, no drop path)
        return self

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"context_encoder": self.context_encoder, "predictor": self.predictor}

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.context_encoder, self.target_encoder)]

    def export_encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.context_encoder, "target_encoder": self.target_encoder}

    def training_step(self, batch: Batch) -> StepOutput:
        if batch.keep_mask is None or len(batch.views) != 2:
            raise ValueError("MIM-JEPA needs two aligned views and a keep mask per batch")
        context_view, target_view = (normalize_batch(view) for view in batch.views)
        with torch.no_grad():
            target_tokens = token_layer_norm(self.target_encoder(target_view))
            targets = center_targets(target_tokens) if self.target_centering == "batch" else target_tokens
        context = self.context_encoder(context_view, batch.keep_mask)
        predictions = self.predictor(context, batch.keep_mask)
        loss = masked_smooth_l1(predictions.float(), targets.float(), batch.keep_mask)
        metrics = {"loss": loss.detach(), "context_token_std": context.detach().float().std(dim=0).mean()}
        # the online probe and the collapse diagnostics see the target encoder's tokens as its validation
        # does (LayerNorm-ed, never batch-centred: a probe trained on centred tokens would be scored on
        # tokens shifted by the batch mean)
        return StepOutput(loss=loss, metrics=metrics, probe_tokens=target_tokens.detach())
