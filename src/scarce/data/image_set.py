"""In-memory image sets: :class:`ImageSet` and the helpers that combine, pack and relabel them.

An :class:`ImageSet` holds uint8 RGB images, channels first: one tensor ``[N, 3, H, W]`` when all
images have the same size, else a list of ``[3, H_i, W_i]`` tensors. Nothing here reads files; see
:mod:`scarce.data.formats` for the readers and :mod:`scarce.data.datasets` for ``load_data``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from scarce.errors import DataError

UNLABELLED = -1
"""Label of an image without one inside a labelled :class:`ImageSet`."""


@dataclass(repr=False)
class ImageSet:
    """Images with optional labels, in memory.

    Attributes:
        images: uint8 ``[N, 3, H, W]``, or a list of N uint8 ``[3, H_i, W_i]``.
        labels: int64 ``[N]`` indices into ``classes`` (``UNLABELLED`` = -1 for an image without a
            label, e.g. test images fed to transductive pretraining), or None (unlabelled set).
        ids: N image identifiers (relative file paths, or ``"name.npz#index"``).
        classes: class names; empty when unlabelled.
    """

    images: Tensor | list[Tensor]
    labels: Tensor | None
    ids: list[str]
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        count = len(self.ids)
        if isinstance(self.images, Tensor):
            if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
                shape = tuple(self.images.shape)
                raise DataError(f"images must be uint8 [N, 3, H, W], got {self.images.dtype} {shape}")
        elif any(image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3 for image in self.images):
            raise DataError("every image of a list must be uint8 [3, H, W]")
        if len(self.images) != count:
            raise DataError(f"{len(self.images)} images but {count} ids")
        repeated = sorted(name for name, count in Counter(self.classes).items() if count > 1)
        if repeated:
            raise DataError(f"class names must be unique; repeated: {', '.join(repeated[:5])}")
        if self.labels is None:
            if self.classes:
                raise DataError("an unlabelled image set has no classes")
            return
        if self.labels.dtype != torch.int64 or self.labels.shape != (count,):
            raise DataError(f"labels must be int64 [{count}], got {self.labels.dtype} {tuple(self.labels.shape)}")
        if count and (int(self.labels.min()) < UNLABELLED or int(self.labels.max()) >= len(self.classes)):
            raise DataError(f"labels must be in [0, {len(self.classes)}), the number of classes, or {UNLABELLED}")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        layout = f"uint8 {list(self.images.shape)}" if isinstance(self.images, Tensor) else "list of [3, H, W]"
        labels = f"{self.num_classes} classes" if self.is_labelled else "unlabelled"
        return f"ImageSet({len(self)} images, {layout}, {labels})"

    def image(self, index: int) -> Tensor:
        """One uint8 image ``[3, H, W]``."""
        return self.images[index]

    def subset(self, indices: Sequence[int] | Tensor) -> ImageSet:
        """The images at ``indices`` (in that order), with the same classes."""
        index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        positions = index.tolist()
        if isinstance(self.images, Tensor):
            images: Tensor | list[Tensor] = self.images[index]
        else:
            images = [self.images[position] for position in positions]
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(images, labels, [self.ids[position] for position in positions], list(self.classes))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_labelled(self) -> bool:
        return self.labels is not None


def fingerprint(image_set: ImageSet) -> str:
    """sha256 hex digest of the images (shape and bytes, in order), labels, ids and classes.

    The same images give the same digest whether they are stacked or a list (~0.2 s for 10k
    images of 96 px).
    """
    digest = hashlib.sha256(struct.pack("<q", len(image_set)))
    for index in range(len(image_set)):
        image = image_set.image(index).contiguous()
        digest.update(struct.pack("<3q", *image.shape))
        digest.update(image.numpy().data)
    if image_set.labels is None:
        digest.update(b"unlabelled")
    else:
        digest.update(b"labels")
        digest.update(image_set.labels.contiguous().numpy().data)
    for strings in (image_set.ids, image_set.classes):
        digest.update(struct.pack("<q", len(strings)))
        digest.update("\0".join(strings).encode())
    return digest.hexdigest()


def pack_images(images: list[Tensor]) -> Tensor | list[Tensor]:
    """Stack ``[3, H, W]`` images into ``[N, 3, H, W]`` when they all have one size, else keep the list."""
    if images and len({tuple(image.shape) for image in images}) == 1:
        return torch.stack(images)
    return images


def _join_images(parts: Sequence[Tensor | list[Tensor]]) -> Tensor | list[Tensor]:
    stacked = [part for part in parts if isinstance(part, Tensor)]
    if len(stacked) == len(parts) and len({tuple(part.shape[1:]) for part in stacked}) == 1:
        return torch.cat(stacked)
    return [image for part in parts for image in part]


def concat(sets: Sequence[ImageSet]) -> ImageSet:
    """The images of ``sets`` in order, e.g. train + val + test for transductive pretraining.

    The labelled sets must have the same classes. If any set is labelled, the result is, and the
    images of the unlabelled sets get the label ``UNLABELLED`` (-1).
    """
    if not sets:
        raise DataError("concat needs at least one image set")
    named = [image_set.classes for image_set in sets if image_set.is_labelled]
    if any(classes != named[0] for classes in named):
        raise DataError("cannot concat image sets with different classes")
    labels = None
    if named:
        labels = torch.cat(
            [
                image_set.labels if image_set.labels is not None else torch.full((len(image_set),), UNLABELLED)
                for image_set in sets
            ]
        )
    return ImageSet(
        images=_join_images([image_set.images for image_set in sets]),
        labels=labels,
        ids=[image_id for image_set in sets for image_id in image_set.ids],
        classes=list(named[0]) if named else [],
    )


def relabel(image_set: ImageSet, classes: list[str], where: str) -> ImageSet:
    """``image_set`` with its labels mapped by class name onto ``classes`` (a superset of its classes)."""
    if image_set.labels is None or image_set.classes == classes:
        return image_set
    position = {name: index for index, name in enumerate(classes)}
    unknown = [name for name in image_set.classes if name not in position]
    if unknown:
        raise DataError(f"{where} has {len(unknown)} classes that train lacks: {', '.join(unknown[:5])}")
    lookup = torch.tensor([position[name] for name in image_set.classes], dtype=torch.int64)
    return dataclasses.replace(image_set, labels=lookup[image_set.labels], classes=list(classes))
