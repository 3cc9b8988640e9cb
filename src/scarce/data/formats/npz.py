"""``npz:FILE.npz`` (one labelled or unlabelled source) and ``npz:DIR`` (``*_train.npz`` + ``*_val.npz`` /
``*_test.npz``); the keys are documented in :mod:`scarce.data.datasets`."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scarce.data.formats.base import DATA_FORMATS, SPLIT_NAMES, DataFormat, Source, split_layout
from scarce.data.image_set import ImageSet
from scarce.errors import DataError


def _npz_strings(array: np.ndarray, path: Path, key: str, count: int | None) -> list[str]:
    if array.dtype.kind not in "US" or array.ndim != 1 or (count is not None and len(array) != count):
        expected = f"[{count}]" if count is not None else "[C]"
        raise DataError(f"{path}: key {key!r} must be str {expected}, got {array.dtype} {array.shape}")
    return [value.decode() if isinstance(value, bytes) else str(value) for value in array.tolist()]


def _npz_images(x: np.ndarray, path: Path) -> Tensor:
    """uint8 ``[N, 3, H, W]`` from ``x`` ``[N, H, W, 3]`` or ``[N, H, W]``."""
    if x.dtype != np.uint8:
        raise DataError(f"{path}: key 'x' must be uint8, got {x.dtype}")
    if x.ndim == 3:
        return torch.from_numpy(x).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    if x.ndim == 4 and x.shape[-1] == 3:
        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    raise DataError(f"{path}: key 'x' must be [N, H, W, 3] or [N, H, W], got {x.shape}")


def _npz_labels(y: np.ndarray, path: Path, count: int) -> Tensor:
    if y.dtype.kind not in "iu" or y.shape != (count,):
        raise DataError(f"{path}: key 'y' must be integer [{count}], got {y.dtype} {y.shape}")
    if count and int(y.min()) < 0:
        raise DataError(f"{path}: key 'y' has negative labels")
    return torch.from_numpy(y.astype(np.int64))


def read_npz(path: Path) -> ImageSet:
    """One npz file as an :class:`ImageSet` (keys in the :mod:`scarce.data.datasets` docstring)."""
    if not path.is_file():
        raise DataError(f"npz file not found: {path}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{path} is not an npz archive (np.load gave {type(loaded).__name__})")
        with loaded as archive:
            if "x" not in archive.files:
                raise DataError(f"{path} has no key 'x' (keys: {', '.join(archive.files) or 'none'})")
            arrays = {key: archive[key] for key in ("x", "y", "classes", "files") if key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(f"cannot read npz file {path}: {error}") from error
    images = _npz_images(arrays["x"], path)
    count = len(images)
    if count == 0:
        raise DataError(f"{path} holds no images")
    ids = _npz_strings(arrays["files"], path, "files", count) if "files" in arrays else None
    labels = _npz_labels(arrays["y"], path, count) if "y" in arrays else None
    classes: list[str] = []
    if labels is not None:
        if "classes" in arrays:
            classes = _npz_strings(arrays["classes"], path, "classes", None)
        else:
            classes = [str(label) for label in range(int(labels.max()) + 1)]
        if int(labels.max()) >= len(classes):
            raise DataError(f"{path}: key 'y' has labels >= the {len(classes)} classes")
    return ImageSet(images, labels, ids or [f"{path.name}#{index}" for index in range(count)], classes)


@DATA_FORMATS.register("npz")
class Npz(DataFormat):
    """An npz file (train only) or a folder of ``*_<split>.npz`` files."""

    form = "npz:PATH"

    @classmethod
    def load(cls, path: Path, short_side: int | None) -> Source:
        if path.is_file():
            return Source("npz-file", path, {"train": read_npz(path)}, {"train": path.name})
        if not path.is_dir():
            raise DataError(f"npz path not found: {path}")
        found = {split: sorted(path.glob(f"*_{split}.npz")) for split in SPLIT_NAMES}
        files = split_layout(found, path, "*_<split>.npz file:")
        official = {split: read_npz(file) for split, file in files.items()}
        return Source("npz-dir", path, official, {split: file.name for split, file in files.items()})
