"""``cifar10:ROOT``: the CIFAR-10 python pickle batches (``data_batch_1`` ... ``5``, ``test_batch``, ``batches.meta``),
read with an unpickler that only builds dicts, lists, bytes and numpy arrays."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scarce.data.formats.base import DATA_FORMATS, Source
from scarce.data.formats.download import Download, DownloadableFormat
from scarce.data.image_set import ImageSet
from scarce.errors import DataError

_TRAIN_BATCHES = tuple(f"data_batch_{number}" for number in range(1, 6))
_BATCHES = (*_TRAIN_BATCHES, "test_batch")


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays only (no arbitrary code)."""

    allowed = frozenset(
        {(f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")}
        | {(f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")}
        | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}  # encode: bytes in protocol 2
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.allowed:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[bytes, object]:
    if not path.is_file():
        raise DataError(f"missing file {path}")
    try:
        with path.open("rb") as stream:
            contents = _ArrayUnpickler(stream, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if not isinstance(contents, dict):
        raise DataError(f"{path} does not hold a dict")
    return contents


def _cifar_batch(path: Path, num_classes: int) -> tuple[Tensor, Tensor]:
    """uint8 images ``[n, 3, 32, 32]`` and int64 labels ``[n]`` of one CIFAR-10 batch file."""
    batch = _unpickle(path)
    if b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path} lacks the keys 'data' and 'labels'")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DataError(f"{path}: 'data' must be uint8 [n, 3072] with n labels, got {data.dtype} {data.shape}")
    if len(labels) and not 0 <= labels.min() <= labels.max() < num_classes:
        raise DataError(f"{path}: labels must be in [0, {num_classes})")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels.astype(np.int64))


def _cifar_set(base: Path, names: list[str], classes: list[str]) -> ImageSet:
    batches = [_cifar_batch(base / name, len(classes)) for name in names]
    ids = [f"{name}#{row}" for name, (images, _) in zip(names, batches, strict=True) for row in range(len(images))]
    return ImageSet(
        images=torch.cat([images for images, _ in batches]),
        labels=torch.cat([labels for _, labels in batches]),
        ids=ids,
        classes=classes,
    )


@DATA_FORMATS.register("cifar10")
class Cifar10(DownloadableFormat):
    """CIFAR-10 in ROOT or ``ROOT/cifar-10-batches-py``: official train (5 batches) and test; images kept at 32 px."""

    form = "cifar10:ROOT"
    dataset = "CIFAR-10"
    folder = "cifar-10-batches-py"
    archives_hold_folder = True
    downloads = (  # as torchvision.datasets.CIFAR10
        Download(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a",
            ("batches.meta", *_BATCHES),
        ),
    )

    @classmethod
    def load(cls, path: Path, short_side: int | None) -> Source:
        base = cls.locate(path)
        meta = _unpickle(base / "batches.meta")
        names = meta.get(b"label_names")
        if not isinstance(names, list) or not names:
            raise DataError(f"{base / 'batches.meta'} has no 'label_names' list")
        classes = [name.decode() if isinstance(name, bytes) else str(name) for name in names]
        official = {
            "train": _cifar_set(base, list(_TRAIN_BATCHES), classes),
            "test": _cifar_set(base, ["test_batch"], classes),
        }
        return Source("cifar10", base, official, {"train": "data_batch_1..5", "test": "test_batch"})
