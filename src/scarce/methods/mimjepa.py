"""MIM-JEPA (spec sec. 4): a context encoder sees the masked view, a predictor predicts in latent
space the tokens an EMA target encoder computes from the full second view; Smooth-L1 on masked
tokens only (Vélez-García et al., arXiv 2502.18056; after I-JEPA, Assran et al. 2023).

Options beyond the paper (``mimjepa`` section; the defaults are the paper's): batch-centred
targets, data2vec 2.0's average of the top-K blocks as targets (``target_layers``), and an
I-JEPA / MAE context encoder over the visible tokens only (``context: visible``). I-JEPA's
multi-block masks are a mask generator (``masking.kind: multiblock``): they come with a
``predict_mask``, and the loss is over the predicted tokens only."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.data.transforms import normalize_batch
from scarce.data.views import ViewTransform, aligned_pair
from scarce.masking import MaskGenerator, equalize_keep_counts, make_mask_generator
from scarce.methods.base import Batch, BuildContext, Method, StepOutput, register_method
from scarce.models.backbone import BACKBONES
from scarce.models.encoder import Encoder
from scarce.models.layers import token_layer_norm
from scarce.models.predictor import Predictor, build_predictor
from scarce.models.transformer import scatter_visible

if TYPE_CHECKING:
    from scarce.config import ScarceConfig


def masked_smooth_l1(
    prediction: Tensor, target: Tensor, keep_mask: Tensor, beta: float = 1.0, predict_mask: Tensor | None = None
) -> Tensor:
    """Smooth-L1 averaged over D, then over the predicted tokens of each sample, then the batch.

    ``prediction, target [B, N, D]``; ``keep_mask [B, N]`` bool, True = visible;
    ``predict_mask [B, N]`` bool, True = predicted (default: every token not visible). Other tokens
    contribute exactly 0 (they are excluded, not down-weighted).
    """
    per_token = F.smooth_l1_loss(prediction, target, reduction="none", beta=beta).mean(dim=-1)  # [B, N]
    predicted = (~keep_mask if predict_mask is None else predict_mask & ~keep_mask).to(per_token.dtype)
    predicted_count = predicted.sum(dim=1)
    if bool((predicted_count == 0).any()):
        raise ValueError("every sample needs at least one masked token")
    return ((per_token * predicted).sum(dim=1) / predicted_count).mean()


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


def instance_norm_tokens(tokens: Tensor, eps: float = 1e-5) -> Tensor:
    """Normalise each channel of each sample over its tokens: ``[B, N, D] -> [B, N, D]``
    (``F.instance_norm`` on ``[B, D, N]``, no affine; data2vec 2.0's per-block target norm)."""
    return F.instance_norm(tokens.transpose(1, 2), eps=eps).transpose(1, 2)


def average_top_blocks(block_outputs: list[Tensor]) -> Tensor:
    """data2vec 2.0 targets (Baevski et al. 2023): the mean of the blocks' outputs, each
    instance-normalised over the tokens; ``K x [B, N, D] -> [B, N, D]`` (one block: unchanged)."""
    if len(block_outputs) == 1:
        return block_outputs[0]
    return torch.stack([instance_norm_tokens(output) for output in block_outputs]).mean(dim=0)


ContextMode = Literal["full", "visible"]


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
        options = config.mimjepa
        predictor = build_predictor(
            encoder.config,
            depth=config.model.predictor_depth,
            init=config.model.predictor_init,
            # a visible-only context has no outputs at masked positions: the predictor's mask tokens fill them
            masked_input="replace" if options.context == "visible" else config.model.predictor_masked_input,
        )
        return cls(
            encoder,
            predictor,
            target_centering=options.target_centering,
            target_layers=options.target_layers,
            context=options.context,
        )

    @classmethod
    def check_config(cls, config: ScarceConfig) -> None:
        if BACKBONES.get(config.backbone.kind).family != "transformer":
            raise ValueError("method mimjepa needs backbone.kind encoder (a token mask needs tokens)")
        if config.mimjepa.target_layers > config.model.depth:
            raise ValueError(
                f"mimjepa.target_layers {config.mimjepa.target_layers} exceeds the encoder's depth {config.model.depth}"
            )

    @classmethod
    def train_transform(cls, config: ScarceConfig, crop_size: int) -> ViewTransform:
        return aligned_pair(config, crop_size)

    def mask_generator(self, config: ScarceConfig) -> MaskGenerator:
        """The ``masking`` section's generator on the context encoder's token grid."""
        masking = config.masking
        options: dict[str, Any] = {}
        if masking.kind == "blockwise":
            options = {"placement": masking.placement, "min_area": masking.min_area}
        elif masking.kind == "multiblock":
            options = {
                "target_blocks": masking.target_blocks,
                "target_scale": masking.target_scale,
                "target_aspect": masking.target_aspect,
                "context_scale": masking.context_scale,
            }
        return make_mask_generator(masking.kind, self.context_encoder.grid_size, masking.ratio, **options)

    def __init__(
        self,
        encoder: Encoder,
        predictor: Predictor,
        target_centering: TargetCentering = "none",
        target_layers: int = 1,
        context: ContextMode = "full",
    ) -> None:
        super().__init__()
        if target_centering not in ("none", "batch"):
            raise ValueError(f"target_centering must be 'none' or 'batch', got {target_centering!r}")
        if not 1 <= target_layers <= encoder.depth:
            raise ValueError(f"target_layers must be in [1, {encoder.depth}], got {target_layers}")
        if context not in ("full", "visible"):
            raise ValueError(f"context must be 'full' or 'visible', got {context!r}")
        if context == "visible" and predictor.masked_input != "replace":
            raise ValueError("a visible-only context needs a predictor with masked_input='replace'")
        self.target_centering = target_centering
        self.target_layers = target_layers
        self.context = context
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

    def targets(self, target_view: Tensor) -> tuple[Tensor, Tensor]:
        """``(last-block tokens LayerNorm-ed, regression targets)``, both ``[B, N, D]``, from a
        normalised view ``[B, 3, H, W]``. Targets: the mean of the last ``target_layers`` blocks
        (each instance-normalised when more than one), LayerNorm-ed, batch-centred if configured."""
        if self.target_layers == 1:
            last = token_layer_norm(self.target_encoder(target_view))
            targets = last
        else:
            depth = self.target_encoder.depth
            top_blocks = list(range(depth - self.target_layers, depth))
            blocks = self.target_encoder.forward_intermediates(target_view, indices=top_blocks)
            last = token_layer_norm(blocks[-1])
            targets = token_layer_norm(average_top_blocks(blocks))
        return last, center_targets(targets) if self.target_centering == "batch" else targets

    def training_step(self, batch: Batch) -> StepOutput:
        if batch.keep_mask is None or len(batch.views) != 2:
            raise ValueError("MIM-JEPA needs two aligned views and a keep mask per batch")
        context_view, target_view = (normalize_batch(view) for view in batch.views)
        with torch.no_grad():
            target_tokens, targets = self.targets(target_view)
        keep_mask = batch.keep_mask
        if self.context == "visible":
            keep_mask = equalize_keep_counts(keep_mask)
            visible = self.context_encoder(context_view, keep_mask, visible_only=True)  # [B, K, D]
            context_std = visible.detach().float().std(dim=0).mean()
            context = scatter_visible(visible, keep_mask)  # masked positions: the predictor's mask token
        else:
            context = self.context_encoder(context_view, keep_mask)
            context_std = context.detach().float().std(dim=0).mean()
        predictions = self.predictor(context, keep_mask)
        loss = masked_smooth_l1(predictions.float(), targets.float(), keep_mask, predict_mask=batch.predict_mask)
        metrics = {"loss": loss.detach(), "context_token_std": context_std}
        # the online probe and the collapse diagnostics see the target encoder's tokens as its validation
        # does (LayerNorm-ed, never batch-centred: a probe trained on centred tokens would be scored on
        # tokens shifted by the batch mean)
        return StepOutput(loss=loss, metrics=metrics, probe_tokens=target_tokens.detach())
