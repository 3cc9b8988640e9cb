"""Supervised training of the same backbone with a probe head, end to end (the papers' baselines).

``backbone -> head``: for a transformer encoder the tokens are LayerNorm-ed (non-affine) first, and
the head is an attentive probe (``simple`` is CCT's sequence pooling) or ``linear`` (mean-pooled
tokens); for a ResNet, ``linear`` is global average pooling + fc, as in S3L. Cross-entropy with label
smoothing, optionally mixup (S3L's fine-tuning recipe). From random init, or fine-tuning a
pretrained backbone. The head downstream of the encoder is the one the frozen probes use, so the
comparison frozen-SSL vs supervised changes one thing: how the encoder was trained.

S3L's last-stage warm-up (Cao & Wu 2021): for a backbone pretrained without its last stage, a fresh
``layer4`` is added and, for the first ``warmup_epochs``, only it and the head train; the earlier
stages are frozen *including their BatchNorm statistics*. Then everything trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.data.transforms import normalize_batch
from scarce.errors import ConfigError
from scarce.methods.base import Batch, BuildContext, Method, StepOutput, register_method
from scarce.models.backbone import BACKBONES, build_backbone
from scarce.models.layers import token_layer_norm
from scarce.models.probes import HeadKind, build_probe
from scarce.models.resnet import ResNetBackbone, ResNetConfig

if TYPE_CHECKING:
    from scarce.config import ScarceConfig


def mixup(images: Tensor, labels: Tensor, num_classes: int, alpha: float) -> tuple[Tensor, Tensor]:
    """Mixup (Zhang et al. 2018): ``λ ~ Beta(α, α)``, each image blended with the batch reversed.

    ``images [B, 3, S, S]`` float, ``labels [B]`` -> mixed images and soft targets ``[B, C]``
    (torch's global RNG, so a resumed run draws the same λ)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    targets = F.one_hot(labels, num_classes).to(images.dtype)
    mixed = lam * images + (1.0 - lam) * images.flip(0)
    return mixed, lam * targets + (1.0 - lam) * targets.flip(0)


def initial_backbone(config: ScarceConfig) -> nn.Module:
    """A random-init backbone, or the ``supervised.init`` run's encoder; a pretrained S3L backbone
    without its last stage gets a fresh ``layer4`` when the run's backbone has one."""
    from scarce.config import config_differences
    from scarce.eval.encoders import load_encoder

    backbone = build_backbone(config.network_config())
    if config.supervised.init is None:
        return backbone
    pretrained = load_encoder(config.supervised.init, config.supervised.init_encoder).encoder
    wanted = config.network_config()
    if isinstance(pretrained, ResNetBackbone) and isinstance(wanted, ResNetConfig):
        if pretrained.config.drop_last_stage and not wanted.drop_last_stage:
            pretrained.add_last_stage()  # S3L: conv5 comes back at random init (seeded by run.seed)
        differences = config_differences(
            pretrained.config.model_dump(exclude={"img_size"}), wanted.model_dump(exclude={"img_size"})
        )
        pretrained.config = wanted  # fine-tuned at this run's resolution (a ResNet takes any)
    else:
        differences = config_differences(pretrained.config.model_dump(), wanted.model_dump())
    if differences:
        raise ConfigError(
            f"supervised.init {config.supervised.init}: its backbone differs from this run's: " + "; ".join(differences)
        )
    return pretrained


@register_method("supervised")
class Supervised(Method):
    """``Supervised(backbone, num_classes, head="simple", label_smoothing=0.1, mixup_alpha=0.0,
    warmup_epochs=0)``; ``backbone(images) -> tokens [B, N, D]`` with an ``embed_dim``."""

    needs_labels = True
    pretraining = False

    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> Supervised:
        """``encoder -> head`` of the ``supervised`` section, from random init or ``supervised.init``."""
        options = config.supervised
        return cls(
            initial_backbone(config),
            context.num_classes,
            options.head,
            options.label_smoothing,
            mixup_alpha=options.mixup_alpha,
            warmup_epochs=options.warmup_last_stage_epochs,
        )

    @classmethod
    def check_config(cls, config: ScarceConfig) -> None:
        warmup = config.supervised.warmup_last_stage_epochs
        if not warmup:
            return
        if BACKBONES.get(config.backbone.kind).family != "resnet" or config.backbone.drop_last_stage:
            raise ValueError(
                "supervised.warmup_last_stage_epochs needs a ResNet backbone with its last stage "
                "(backbone.drop_last_stage false: layer4 is added to the pretrained backbone)"
            )
        if config.supervised.init is None:
            raise ValueError("supervised.warmup_last_stage_epochs needs supervised.init (a pretrained backbone)")
        if warmup >= config.schedule.epochs:
            raise ValueError(
                f"supervised.warmup_last_stage_epochs {warmup} must be fewer than schedule.epochs "
                f"{config.schedule.epochs} (the warm-up is part of the schedule)"
            )

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        head: HeadKind = "simple",
        label_smoothing: float = 0.1,
        mixup_alpha: float = 0.0,
        warmup_epochs: int = 0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"supervised training needs at least 2 classes, got {num_classes}")
        if warmup_epochs and not isinstance(encoder, ResNetBackbone):
            raise ValueError("the last-stage warm-up needs a ResNet backbone")
        self.encoder = encoder
        self.num_classes = num_classes
        self.head = build_probe(head, int(encoder.embed_dim), num_classes)
        self.label_smoothing = label_smoothing
        self.mixup_alpha = mixup_alpha
        self.warmup_epochs = warmup_epochs
        self.token_norm = not isinstance(encoder, ResNetBackbone)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "head": self.head}

    def export_encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def begin_epoch(self, epoch: int) -> None:
        if not isinstance(self.encoder, ResNetBackbone) or not self.warmup_epochs:
            return
        if epoch < self.warmup_epochs and not self.encoder.frozen_stages:
            self.encoder.freeze_all_but_last_stage()
        elif epoch >= self.warmup_epochs and self.encoder.frozen_stages:
            self.encoder.unfreeze()

    def _logits(self, normalised: Tensor) -> Tensor:
        tokens = self.encoder(normalised)
        if self.token_norm:
            tokens = token_layer_norm(tokens)
        return self.head(tokens)

    def logits(self, images: Tensor) -> Tensor:
        """``images`` uint8 ``[B, 3, S, S]`` -> logits ``[B, C]``."""
        return self._logits(normalize_batch(images))

    def classify(self, images: Tensor) -> Tensor:
        return self.logits(images)

    def training_step(self, batch: Batch) -> StepOutput:
        if batch.labels is None or bool((batch.labels < 0).any()):
            raise ValueError("supervised training needs a label for every image")
        images = normalize_batch(batch.views[0])
        if self.mixup_alpha > 0:
            images, targets = mixup(images, batch.labels, self.num_classes, self.mixup_alpha)
            logits = self._logits(images)
            loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        else:
            logits = self._logits(images)
            loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(-1) == batch.labels).float().mean()
        return StepOutput(loss=loss, metrics={"loss": loss.detach(), "train_top1": accuracy.detach()})
