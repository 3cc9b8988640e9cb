"""Supervised training of the same encoder with a probe head, end to end (the paper's baseline).

``encoder -> non-affine LayerNorm -> head`` (an attentive probe: ``simple`` is CCT's sequence
pooling), cross-entropy with label smoothing. From random init, or fine-tuning a pretrained
encoder. The architecture downstream of the encoder is the one the frozen probes use, so the
comparison frozen-SSL vs supervised changes one thing: how the encoder was trained.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from scarce.data.transforms import normalize_batch
from scarce.methods.base import Batch, Method, StepOutput
from scarce.models.encoder import Encoder
from scarce.models.probes import ProbeKind, build_probe


class Supervised(Method):
    """``Supervised(encoder, num_classes, head="simple", label_smoothing=0.1)``."""

    name = "supervised"

    def __init__(self, encoder: Encoder, num_classes: int, head: ProbeKind = "simple", label_smoothing: float = 0.1):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"supervised training needs at least 2 classes, got {num_classes}")
        self.encoder = encoder
        self.head = build_probe(head, encoder.embed_dim, num_classes)
        self.label_smoothing = label_smoothing

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "head": self.head}

    def export_encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder}

    def logits(self, images: Tensor) -> Tensor:
        """``images`` uint8 ``[B, 3, S, S]`` -> logits ``[B, C]``."""
        tokens = self.encoder(normalize_batch(images))
        return self.head(F.layer_norm(tokens, (tokens.shape[-1],)))

    def classify(self, images: Tensor) -> Tensor:
        return self.logits(images)

    def training_step(self, batch: Batch) -> StepOutput:
        if batch.labels is None or bool((batch.labels < 0).any()):
            raise ValueError("supervised training needs a label for every image")
        logits = self.logits(batch.views[0])
        loss = F.cross_entropy(logits.float(), batch.labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(-1) == batch.labels).float().mean()
        return StepOutput(loss=loss, metrics={"loss": loss.detach(), "train_top1": accuracy.detach()})
