"""Frozen-encoder features (spec sec. 5): eval mode, no mask, all tokens -> non-affine LayerNorm."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.data.datasets import ImageSet
from scarce.data.transforms import EvalTransform, normalize_batch


class FrozenEncoder:
    """``tokens(images uint8 [B, 3, S, S]) -> [B, N, D]`` LayerNorm-ed tokens of a frozen encoder;
    ``pooled(images) -> [B, n·D]``: mean-pooled tokens of the last ``last_blocks`` blocks."""

    def __init__(
        self,
        encoder: nn.Module,
        device: torch.device,
        autocast: Callable[[], AbstractContextManager[Any]] = nullcontext,
        last_blocks: int = 1,
    ) -> None:
        self.encoder = encoder.to(device).eval().requires_grad_(False)
        self.device = device
        self.autocast = autocast
        self.last_blocks = last_blocks

    @staticmethod
    def _normalise(tokens: Tensor) -> Tensor:
        return F.layer_norm(tokens.float(), (tokens.shape[-1],))

    @torch.no_grad()
    def tokens(self, images: Tensor) -> Tensor:
        with self.autocast():
            out = self.encoder(normalize_batch(images.to(self.device, non_blocking=True)))
        return self._normalise(out)

    @torch.no_grad()
    def pooled(self, images: Tensor) -> Tensor:
        if self.last_blocks == 1:
            return self.tokens(images).mean(dim=1)
        indices = list(range(-self.last_blocks, 0))
        with self.autocast():
            outputs = self.encoder.forward_intermediates(
                normalize_batch(images.to(self.device, non_blocking=True)), indices=indices
            )
        return torch.cat([self._normalise(out).mean(dim=1) for out in outputs], dim=-1)


def eval_view(images: ImageSet, size: int) -> Tensor:
    """Eval-transformed uint8 images ``[M, 3, size, size]`` (short side to size/0.875, centre crop)."""
    transform = EvalTransform(size)
    return torch.stack([transform(images.image(index)) for index in range(len(images))])


@torch.no_grad()
def extract(
    features: Callable[[Tensor], Tensor], images: Tensor, batch_size: int = 128, dtype: torch.dtype = torch.float32
) -> Tensor:
    """Apply ``features`` to ``images`` in batches; the result lives on the CPU."""
    chunks = [
        features(images[start : start + batch_size]).to("cpu", dtype) for start in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks)
