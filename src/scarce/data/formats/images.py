"""Image files: listing, decoding (optionally resized) on a thread pool, and class-folder layouts."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from scarce.data.image_set import ImageSet, pack_images
from scarce.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"})
"""Image file extensions read from folders (compared in lower case)."""


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()
    )


def subfolders(folder: Path) -> list[Path]:
    """The folders directly in ``folder``, sorted by name (hidden ones skipped)."""
    return sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))


def _resize_short_side(image: Image.Image, short_side: int) -> Image.Image:
    width, height = image.size
    if width <= height:
        size = (short_side, max(1, round(height * short_side / width)))
    else:
        size = (max(1, round(width * short_side / height)), short_side)
    return image if size == image.size else image.resize(size, Image.Resampling.BICUBIC)


def decode_image(path: Path, short_side: int | None = None) -> Tensor:
    """uint8 RGB ``[3, H, W]`` of one image file, its short side resized to ``short_side`` if given."""
    try:
        with Image.open(path) as image:
            if short_side is not None:
                image.draft("RGB", (2 * short_side, 2 * short_side))
            rgb = image.convert("RGB")
        if short_side is not None:
            rgb = _resize_short_side(rgb, short_side)
        array = np.array(rgb, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {path}: {error}") from error
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


def _num_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 32))


def decode_images(paths: Sequence[Path], short_side: int | None = None) -> list[Tensor]:
    """:func:`decode_image` of every path, in order, on a thread pool (PIL releases the GIL)."""
    with ThreadPoolExecutor(max_workers=_num_workers()) as pool:
        try:
            return list(pool.map(partial(decode_image, short_side=short_side), paths))
        except DataError:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def files_to_set(
    root: Path, paths: Sequence[Path], labels: Sequence[int] | None, classes: list[str], short_side: int | None
) -> ImageSet:
    """Decode ``paths`` into an :class:`ImageSet` whose ids are the paths relative to ``root``."""
    return ImageSet(
        images=pack_images(decode_images(paths, short_side)),
        labels=None if labels is None else torch.tensor(list(labels), dtype=torch.int64),
        ids=[path.relative_to(root).as_posix() for path in paths],
        classes=list(classes) if labels is not None else [],
    )


def list_class_images(folder: Path, classes: Sequence[str]) -> tuple[list[Path], list[int]]:
    """Image paths and labels of ``folder/<class>/*`` for each class name, in class order."""
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = image_files(folder / name)
        if not files:
            raise DataError(f"class folder {folder / name} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        paths += files
        labels += [label] * len(files)
    return paths, labels


def read_image_folder(root: Path, folder: Path, short_side: int | None) -> ImageSet:
    """``folder/<class>/<image>`` (labelled) or ``folder/<image>`` (unlabelled); ids relative to ``root``."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    class_folders = subfolders(folder)
    loose = image_files(folder)
    if class_folders and loose:
        raise DataError(f"{folder} holds both images and sub-folders; put every image in a class folder")
    if loose:
        return files_to_set(root, loose, None, [], short_side)
    if not class_folders:
        raise DataError(f"no images or class folders in {folder}")
    classes = [path.name for path in class_folders]
    paths, labels = list_class_images(folder, classes)
    return files_to_set(root, paths, labels, classes, short_side)
