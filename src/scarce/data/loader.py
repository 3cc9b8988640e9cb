"""Training data pipeline: seeded per-epoch batches, per-sample deterministic augmentation and
masks made in the loader workers.

Every sample's randomness comes from ``(seed, epoch, index)`` alone, so the data a run sees does
not depend on the number of workers, on their scheduling, or on where a run was resumed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from scarce.data.datasets import ImageSet
from scarce.masking import MaskGenerator
from scarce.methods.base import Batch


def mix_seed(*parts: int) -> int:
    """A 63-bit seed mixed from non-negative integers (NumPy's SeedSequence hashing)."""
    state = np.random.SeedSequence(list(parts)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation and mask: a function of ``(seed, epoch, index)`` only."""
    return mix_seed(0, seed, epoch, index)


class EpochBatchSampler(Sampler[list[tuple[int, int]]]):
    """Seeded permutation per epoch cut into batches of ``(epoch, index)`` pairs.

    ``set_epoch(epoch, start_batch)`` selects the epoch and skips batches already trained (a
    mid-epoch resume). With ``world_size > 1`` every global batch of ``batch_size · world_size``
    samples is split across ranks, so each rank sees different data (the distributed issue).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_samples <= 0:
            raise ValueError("no samples to draw batches from")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        global_batch = self.batch_size * self.world_size
        if self.drop_last:
            return self.num_samples // global_batch
        return -(-self.num_samples // global_batch)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        return max(self.batches_per_epoch - self.start_batch, 0)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(mix_seed(1, self.seed, self.epoch))
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        global_batch = self.batch_size * self.world_size
        for batch_index in range(self.start_batch, self.batches_per_epoch):
            chunk = order[batch_index * global_batch : (batch_index + 1) * global_batch]
            mine = chunk[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
            yield [(self.epoch, index) for index in mine]


ViewTransform = Callable[[Tensor, torch.Generator], Any]


class AugmentedViews(Dataset[dict[str, Tensor]]):
    """``dataset[(epoch, index)]`` -> ``{"views": [V, 3, S, S] uint8, "keep_mask": [N] bool,
    "label": int64, "index": int64}``; the transform returns one view or a tuple of views."""

    def __init__(self, images: ImageSet, transform: ViewTransform, mask_generator: MaskGenerator | None, seed: int):
        self.images = images
        self.transform = transform
        self.mask_generator = mask_generator
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        epoch, index = key
        seed = sample_seed(self.seed, epoch, index)
        views = self.transform(self.images.image(index), torch.Generator().manual_seed(seed))
        views = views if isinstance(views, tuple) else (views,)
        label = -1 if self.images.labels is None else int(self.images.labels[index])
        item = {"views": torch.stack(views), "label": torch.tensor(label), "index": torch.tensor(index)}
        if self.mask_generator is not None:
            keep, _ = self.mask_generator.sample_one(random.Random(seed))
            item["keep_mask"] = torch.from_numpy(keep)
        return item


def collate_batch(items: list[dict[str, Tensor]]) -> Batch:
    """Stack samples into a :class:`Batch` (views become a list of ``[B, 3, S, S]``)."""
    views = torch.stack([item["views"] for item in items])  # [B, V, 3, S, S]
    keep = torch.stack([item["keep_mask"] for item in items]) if "keep_mask" in items[0] else None
    return Batch(
        views=list(views.unbind(1)),
        keep_mask=keep,
        labels=torch.stack([item["label"] for item in items]),
        indices=torch.stack([item["index"] for item in items]),
    )


def make_train_loader(
    dataset: AugmentedViews,
    sampler: EpochBatchSampler,
    num_workers: int,
    pin_memory: bool,
    worker_init_fn: Callable[[int], None] | None = None,
    seed: int = 0,
) -> DataLoader[Batch]:
    """The training loader; workers persist across epochs and prefetch. The loader's own
    generator is seeded so that creating it never consumes the global RNG (exact resume)."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_batch,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
        worker_init_fn=worker_init_fn,
        generator=torch.Generator().manual_seed(seed),
    )
