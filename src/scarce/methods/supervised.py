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

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.data.transforms import normalize_batch
from scarce.methods.base import Batch, Method, StepOutput
from scarce.models.probes import HeadKind, build_probe
from scarce.models.resnet import ResNetBackbone


def mixup(images: Tensor, labels: Tensor, num_classes: int, alpha: float) -> tuple[Tensor, Tensor]:
    """Mixup (Zhang et al. 2018): ``λ ~ Beta(α, α)``, each image blended with the batch reversed.

    ``images [B, 3, S, S]`` float, ``labels [B]`` -> mixed images and soft targets ``[B, C]``
    (torch's global RNG, so a resumed run draws the same λ)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    targets = F.one_hot(labels, num_classes).to(images.dtype)
    mixed = lam * images + (1.0 - lam) * images.flip(0)
    return mixed, lam * targets + (1.0 - lam) * targets.flip(0)


class Supervised(Method):
    """``Supervised(backbone, num_classes, head="simple", label_smoothing=0.1, mixup_alpha=0.0,
    warmup_epochs=0)``; ``backbone(images) -> tokens [B, N, D]`` with an ``embed_dim``."""

    name = "supervised"

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
            tokens = F.layer_norm(tokens, (tokens.shape[-1],))
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
