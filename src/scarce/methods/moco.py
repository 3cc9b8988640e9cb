"""MoCo v2 (Chen et al. 2020, arXiv 2003.04297; He et al. 2020): a query encoder, a momentum key
encoder, a queue of past keys as negatives, InfoNCE. The S3L settings (Cao & Wu 2021): T = 0.2,
K = 4096, key momentum 0.999, MLP head 2048 -> 2048 -> 128.

Shuffle-BN without several processes (after the split-BatchNorm of MoCo's CIFAR demo): queries are
computed in ``shuffle_bn_splits`` consecutive groups of the batch and keys in as many groups of a
random permutation of it, each group with its own BatchNorm statistics. A query and its key are then
normalised with the statistics of two different random subsets (overlapping by about 1/splits), as
queries and keys are on different GPUs in MoCo's shuffle-BN, which weakens the BatchNorm shortcut
that tells the positive from the queue's negatives. Each rank splits its own slice; no cross-rank
shuffle is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scarce.methods.base import Batch, BuildContext, StepOutput, register_method
from scarce.methods.losses import concat_all_gather, info_nce
from scarce.methods.siamese import SiameseMethod, momentum_copy, pooled
from scarce.models.heads import moco_v2_head

if TYPE_CHECKING:
    from scarce.config import ScarceConfig


@register_method("mocov2")
class MoCoV2(SiameseMethod):
    """``MoCoV2(backbone, queue_size=4096, temperature=0.2, projection_hidden=2048, projection_dim=128)``.

    ``backbone(images [B, 3, S, S]) -> tokens [B, N, D]`` with an ``embed_dim`` attribute.
    """

    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> MoCoV2:
        """The ``contrastive`` section's MoCo; the queue is capped at the training images (S3L)."""
        options = config.contrastive
        queue = options.queue_size
        if context.train_size is not None and context.train_size < queue:
            queue = context.train_size
            context.log(
                f"MoCo queue: {queue} negatives (contrastive.queue_size {options.queue_size} is capped at "
                "the number of training images, as in S3L)"
            )
        return cls(
            cls.backbone_of(config),
            queue_size=queue,
            temperature=options.temperature,
            projection_hidden=options.projection_hidden,
            projection_dim=options.projection_dim,
            shuffle_bn_splits=options.shuffle_bn_splits,
        )

    def __init__(
        self,
        backbone: nn.Module,
        queue_size: int = 4096,
        temperature: float = 0.2,
        projection_hidden: int = 2048,
        projection_dim: int = 128,
        shuffle_bn_splits: int = 4,
    ) -> None:
        super().__init__()
        if queue_size < 1 or shuffle_bn_splits < 1:
            raise ValueError("queue_size and shuffle_bn_splits must be >= 1")
        self.temperature = temperature
        self.shuffle_bn_splits = shuffle_bn_splits
        self.encoder = backbone
        self.projector = moco_v2_head(int(backbone.embed_dim), projection_hidden, projection_dim)
        self.target_encoder = momentum_copy(backbone)
        self.target_projector = momentum_copy(self.projector)
        self.queue: Tensor
        self.queue_pointer: Tensor
        self.register_buffer("queue", F.normalize(torch.randn(queue_size, projection_dim), dim=1))
        self.register_buffer("queue_pointer", torch.zeros((), dtype=torch.long))

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "projector": self.projector}

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.encoder, self.target_encoder), (self.projector, self.target_projector)]

    def export_encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "target_encoder": self.target_encoder}

    def query_tokens(self, images: Tensor) -> Tensor:
        """Tokens ``[B, N, D]`` of the query encoder, BatchNorm statistics per consecutive group."""
        groups = images.chunk(min(self.shuffle_bn_splits, images.shape[0]))
        return torch.cat([self.encoder(group) for group in groups])

    @torch.no_grad()
    def keys(self, images: Tensor) -> Tensor:
        """L2-normalised keys ``[B, projection_dim]`` of the key network with split shuffle-BN."""
        order = torch.randperm(images.shape[0], device=images.device)
        groups = images[order].chunk(min(self.shuffle_bn_splits, images.shape[0]))
        shuffled = torch.cat([self.target_projector(pooled(self.target_encoder(group))) for group in groups])
        keys = torch.empty_like(shuffled)
        keys[order] = shuffled
        return F.normalize(keys.float(), dim=1)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys [n, d]`` (every rank's) over the oldest entries of the queue, wrapping around."""
        keys = concat_all_gather(keys)[-self.queue.shape[0] :]
        slots = (self.queue_pointer + torch.arange(keys.shape[0], device=keys.device)) % self.queue.shape[0]
        self.queue[slots] = keys.to(self.queue.dtype)
        self.queue_pointer.copy_((self.queue_pointer + keys.shape[0]) % self.queue.shape[0])

    def training_step(self, batch: Batch) -> StepOutput:
        query_view, key_view = self.two_views(batch)
        tokens = self.query_tokens(query_view)
        queries = self.projector(pooled(tokens))
        keys = self.keys(key_view)
        loss = info_nce(queries.float(), keys, self.queue.clone(), self.temperature)
        self.enqueue(keys)
        return StepOutput(loss=loss, metrics={"loss": loss.detach()}, probe_tokens=self.probe_tokens(tokens))
