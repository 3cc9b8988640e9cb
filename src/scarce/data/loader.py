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
    """Seeded permutation per epoch, cut into **global** batches, yielded as this rank's
    micro-batches of ``(epoch, index)`` pairs.

    A global batch of ``global_batch`` samples (one optimiser step) is split into
    ``accumulation`` micro-steps, each split across ``world_size`` ranks: every rank sees
    ``global_batch / (world_size · accumulation)`` samples per micro-batch. The data of a step is
    therefore the same whatever the number of processes or accumulation steps, which is what makes
    a run resumable under another world size. ``set_epoch(epoch, start_step)`` selects the epoch
    and skips the optimiser steps already done (a mid-epoch resume).
    """

    def __init__(
        self,
        num_samples: int,
        global_batch: int,
        seed: int,
        drop_last: bool = True,
        rank: int = 0,
        world_size: int = 1,
        accumulation: int = 1,
    ) -> None:
        if num_samples <= 0:
            raise ValueError("no samples to draw batches from")
        if global_batch % (world_size * accumulation):
            raise ValueError(
                f"batch size {global_batch} is not divisible by world size {world_size} x accumulation {accumulation}"
            )
        self.num_samples = num_samples
        self.global_batch = global_batch
        self.micro_batch = global_batch // (world_size * accumulation)
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.accumulation = accumulation
        self.epoch = 0
        self.start_step = 0

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps (global batches) per epoch."""
        if self.drop_last:
            return self.num_samples // self.global_batch
        return -(-self.num_samples // self.global_batch)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch = epoch
        self.start_step = start_step

    def __len__(self) -> int:
        return max(self.steps_per_epoch - self.start_step, 0) * self.accumulation

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        generator = torch.Generator().manual_seed(mix_seed(1, self.seed, self.epoch))
        order = torch.randperm(self.num_samples, generator=generator).tolist()
        for step in range(self.start_step, self.steps_per_epoch):
            chunk = order[step * self.global_batch : (step + 1) * self.global_batch]
            micro = -(-len(chunk) // (self.world_size * self.accumulation))  # a short last batch (drop_last off)
            for part in range(self.accumulation):
                start = (part * self.world_size + self.rank) * micro
                yield [(self.epoch, index) for index in chunk[start : start + micro]]


ViewTransform = Callable[[Tensor, torch.Generator], Any]


class AugmentedViews(Dataset[dict[str, Tensor]]):
    """``dataset[(epoch, index)]`` -> ``{"views": [V, 3, S, S] uint8, "keep_mask": [N] bool,
    "predict_mask": [N] bool, "label": int64, "index": int64}`` (the masks only with a mask
    generator); the transform returns one view or a tuple of views."""

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
            keep, predict = self.mask_generator.sample_masks(random.Random(seed))
            item["keep_mask"] = torch.from_numpy(keep)
            item["predict_mask"] = torch.from_numpy(predict)
        return item


def collate_batch(items: list[dict[str, Tensor]]) -> Batch:
    """Stack samples into a :class:`Batch` (views become a list of ``[B, 3, S, S]``)."""
    views = torch.stack([item["views"] for item in items])  # [B, V, 3, S, S]
    keep = torch.stack([item["keep_mask"] for item in items]) if "keep_mask" in items[0] else None
    predict = torch.stack([item["predict_mask"] for item in items]) if "predict_mask" in items[0] else None
    known = {"views", "keep_mask", "predict_mask", "label", "index"}
    extras = {key: torch.stack([item[key] for item in items]) for key in items[0] if key not in known}
    return Batch(
        views=list(views.unbind(1)),
        keep_mask=keep,
        predict_mask=predict,
        extras=extras,
        labels=torch.stack([item["label"] for item in items]),
        indices=torch.stack([item["index"] for item in items]),
    )


def make_train_loader(
    dataset: Dataset[dict[str, Tensor]],
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
