"""Batches for semi-supervised self-training: one labelled view and ``mu`` unlabelled images, each
as a weak and a strong view (FixMatch, Sohn et al. 2020; Semi-ViT, Cai et al. 2022).

- :class:`WeakStrongTransform`: the weak view is the run's training view (crop, flip and the
  configured photometric jitter); the strong view is the weak one followed by RandAugment and
  RandomErasing from torchvision v2 (FixMatch's strong augmentation). torchvision draws from
  torch's global RNG, so the strong part runs under a forked RNG seeded from the sample's own
  generator: a sample's views depend on ``(seed, epoch, index)`` alone, as every other view here.
- :class:`LabelledUnlabelledViews`: item ``k`` of an epoch holds the ``k``-th labelled image (a
  seeded permutation per pass over the labelled set, repeated as often as needed) and the
  ``k``-th block of ``mu`` unlabelled images of a seeded permutation per epoch, so that the items
  of an epoch cover every unlabelled image once (the last block wraps to the start; with
  ``run.drop_last`` the last incomplete batch of items is skipped, as for every method). A batch of
  ``B`` items is ``B`` labelled and ``mu · B`` unlabelled images.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.transforms import v2

from scarce.data.image_set import ImageSet
from scarce.data.loader import mix_seed, sample_seed
from scarce.data.transforms import SingleViewTransform


class WeakStrongTransform:
    """``(image uint8 [3, H, W], generator) -> (weak, strong)``, both uint8 ``[3, S, S]``.

    Args:
        weak: the weak view (the run's single-view training transform).
        ops, magnitude: RandAugment's number of operations and magnitude (FixMatch: 2, up to 10).
        erasing_p: probability of RandomErasing on the strong view (FixMatch's Cutout).
    """

    def __init__(self, weak: SingleViewTransform, ops: int = 2, magnitude: int = 10, erasing_p: float = 0.5) -> None:
        self.weak = weak
        self.strong = v2.Compose(
            [
                v2.RandAugment(num_ops=ops, magnitude=magnitude),
                v2.ToDtype(torch.float32, scale=True),
                v2.RandomErasing(p=erasing_p, scale=(0.02, 0.25), value=0.5),
                v2.ToDtype(torch.uint8, scale=True),
            ]
        )

    def strong_of(self, weak_view: Tensor, generator: torch.Generator) -> Tensor:
        """The strong view of an already made weak view (torchvision's RNG seeded from ``generator``)."""
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.strong(weak_view)

    def __call__(self, image: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        weak_view = self.weak(image, generator)
        return weak_view, self.strong_of(weak_view, generator)


class LabelledUnlabelledViews(Dataset[dict[str, Tensor]]):
    """``dataset[(epoch, k)]`` -> ``{"views": [1 + 2 mu, 3, S, S] uint8`` (labelled weak, then
    ``weak, strong`` per unlabelled image), ``"label"``, ``"index"`` (labelled), ``"unlabelled_index"
    [mu]``, ``"hidden_label" [mu]`` (the unlabelled images' true labels for diagnostics, -1 when
    unknown)}``. ``len`` = ``ceil(U / mu)`` items per epoch."""

    def __init__(
        self,
        labelled: ImageSet,
        unlabelled: ImageSet,
        transform: WeakStrongTransform,
        mu: int,
        seed: int,
        hidden_labels: Tensor | None = None,
    ) -> None:
        if len(unlabelled) == 0:
            raise ValueError("semi-supervised training needs unlabelled images")
        if labelled.labels is None or len(labelled) == 0:
            raise ValueError("semi-supervised training needs labelled images")
        self.labelled = labelled
        self.unlabelled = unlabelled
        self.transform = transform
        self.mu = mu
        self.seed = seed
        self.hidden_labels = hidden_labels
        self._orders: dict[tuple[str, int, int], list[int]] = {}

    def __len__(self) -> int:
        return math.ceil(len(self.unlabelled) / self.mu)

    def _order(self, kind: str, count: int, epoch: int, cycle: int) -> list[int]:
        key = (kind, epoch, cycle)
        if key not in self._orders:
            if len(self._orders) > 64:
                self._orders.clear()
            generator = torch.Generator().manual_seed(mix_seed(3 if kind == "labelled" else 4, self.seed, epoch, cycle))
            self._orders[key] = torch.randperm(count, generator=generator).tolist()
        return self._orders[key]

    def labelled_index(self, epoch: int, item: int) -> int:
        """The labelled image of item ``item``: pass ``item // L`` over a fresh permutation."""
        count = len(self.labelled)
        return self._order("labelled", count, epoch, item // count)[item % count]

    def unlabelled_indices(self, epoch: int, item: int) -> list[int]:
        """The ``mu`` unlabelled images of item ``item`` (the last block wraps to the start)."""
        count = len(self.unlabelled)
        order = self._order("unlabelled", count, epoch, 0)
        return [order[(item * self.mu + offset) % count] for offset in range(self.mu)]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Tensor]:
        epoch, item = key
        labelled = self.labelled_index(epoch, item)
        generator = torch.Generator().manual_seed(sample_seed(self.seed, epoch, item))
        views = [self.transform.weak(self.labelled.image(labelled), generator)]
        unlabelled = self.unlabelled_indices(epoch, item)
        for index in unlabelled:
            views.extend(self.transform(self.unlabelled.image(index), generator))
        assert self.labelled.labels is not None
        hidden = (
            self.hidden_labels[unlabelled] if self.hidden_labels is not None else torch.full((self.mu,), -1)
        ).long()
        return {
            "views": torch.stack(views),
            "label": self.labelled.labels[labelled].clone(),
            "index": torch.tensor(labelled),
            "unlabelled_index": torch.tensor(unlabelled),
            "hidden_label": hidden,
        }
