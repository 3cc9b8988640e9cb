"""Readers of the on-disk dataset formats behind ``load_data(spec)``.

One loader per spec kind (``LOADERS``: npz files or folders, image folders, Flowers-102 ``.mat``
files, Pets-37 lists, ImageNet-100 WNID folders, CIFAR-10 pickles). Each returns a :class:`Source`
with the official splits it found; :mod:`scarce.data.datasets` documents the formats and turns a
Source into train / val / test splits.
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from scarce.data.image_set import ImageSet, pack_images
from scarce.errors import DataError

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"})
"""Image file extensions read from folders (compared in lower case)."""
SPLIT_NAMES = ("train", "val", "test")
_WNID_FILE = "imagenet100_scott_wnids.txt"


# ----------------------------------------------------------------------------------------------
# npz files


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


# ----------------------------------------------------------------------------------------------
# Image files


def image_files(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted by name (hidden files skipped)."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".") and path.is_file()
    )


def _subfolders(folder: Path) -> list[Path]:
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
    class_folders = _subfolders(folder)
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


# ----------------------------------------------------------------------------------------------
# Loaders: each returns the official splits it found


@dataclass
class Source:
    """What a loader read: ``official`` splits by name and the file or folder each came from."""

    loader: str
    path: Path
    official: dict[str, ImageSet]
    sources: dict[str, str]


def _locate(root: Path, subfolder: str, marker: str, dataset: str) -> Path:
    """``root`` or ``root/subfolder``, whichever holds ``marker``."""
    if not root.exists():
        raise DataError(f"{dataset} root not found: {root}")
    for base in (root, root / subfolder):
        if (base / marker).exists():
            return base
    raise DataError(f"{root} is not a {dataset} folder: no {marker} in it or in {root / subfolder}")


def _split_layout(found: dict[str, list[Path]], where: Path, what: str) -> dict[str, Path]:
    """One path per split name from a ``{split: matches}`` listing, or a DataError listing them."""
    listing = "; ".join(f"{split}: {', '.join(p.name for p in paths) or 'none'}" for split, paths in found.items())
    if not found["train"] or any(len(paths) > 1 for paths in found.values()):
        raise DataError(f"{where} must hold exactly one {what} train, and at most one val and test; found {listing}")
    return {split: paths[0] for split, paths in found.items() if paths}


def _load_npz(path: Path, short_side: int | None) -> Source:
    if path.is_file():
        return Source("npz-file", path, {"train": read_npz(path)}, {"train": path.name})
    if not path.is_dir():
        raise DataError(f"npz path not found: {path}")
    found = {split: sorted(path.glob(f"*_{split}.npz")) for split in SPLIT_NAMES}
    files = _split_layout(found, path, "*_<split>.npz file:")
    official = {split: read_npz(file) for split, file in files.items()}
    return Source("npz-dir", path, official, {split: file.name for split, file in files.items()})


def _load_folder(path: Path, short_side: int | None) -> Source:
    if not path.is_dir():
        raise DataError(f"image folder not found: {path}")
    if (path / "train").is_dir():
        found = {split: [path / split] if (path / split).is_dir() else [] for split in SPLIT_NAMES}
        folders = _split_layout(found, path, "sub-folder:")
        official = {split: read_image_folder(path, folder, short_side) for split, folder in folders.items()}
        return Source("folder-splits", path, official, {split: f"{split}/" for split in folders})
    image_set = read_image_folder(path, path, short_side)
    loader = "folder-classes" if image_set.is_labelled else "folder-flat"
    return Source(loader, path, {"train": image_set}, {"train": "./"})


def _read_mat(path: Path, key: str) -> np.ndarray:
    """Array ``key`` of a MATLAB file, flattened to int64."""
    try:
        from scipy.io import loadmat
    except ImportError as error:
        raise DataError(f"reading {path} needs scipy (pip install scipy)") from error
    if not path.is_file():
        raise DataError(f"missing file {path}")
    try:
        contents = loadmat(path)
    except Exception as error:  # scipy raises many types for a corrupt file
        raise DataError(f"cannot read {path}: {error}") from error
    if key not in contents:
        raise DataError(f"{path} has no key {key!r}")
    return np.asarray(contents[key]).reshape(-1).astype(np.int64)


def _load_flowers102(root: Path, short_side: int | None) -> Source:
    base = _locate(root, "flowers-102", "imagelabels.mat", "Flowers-102")
    image_labels = _read_mat(base / "imagelabels.mat", "labels")
    if image_labels.size == 0 or image_labels.min() < 1:
        raise DataError(f"{base / 'imagelabels.mat'}: 'labels' must be class numbers from 1")
    classes = [str(number) for number in range(1, int(image_labels.max()) + 1)]
    official, sources = {}, {}
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        numbers = _read_mat(base / "setid.mat", key)
        if numbers.size == 0 or numbers.min() < 1 or numbers.max() > image_labels.size:
            raise DataError(f"{base / 'setid.mat'}: {key!r} must list image numbers in [1, {image_labels.size}]")
        paths = [base / "jpg" / f"image_{number:05d}.jpg" for number in numbers.tolist()]
        labels = (image_labels[numbers - 1] - 1).tolist()
        official[split] = files_to_set(base, paths, labels, classes, short_side)
        sources[split] = f"setid.mat:{key}"
    return Source("flowers102", base, official, sources)


def _read_pets_list(path: Path) -> list[tuple[str, int]]:
    """``(image name, class id)`` of each line ``NAME CLASS_ID SPECIES BREED_ID`` (``#`` = comment)."""
    if not path.is_file():
        raise DataError(f"missing file {path}")
    entries = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or not fields[1].isdigit() or "_" not in fields[0]:
            raise DataError(f"{path}:{line_number}: expected 'Name_number CLASS_ID ...', got {line.strip()!r}")
        entries.append((fields[0], int(fields[1])))
    if not entries:
        raise DataError(f"{path} lists no images")
    return entries


def _load_pets37(root: Path, short_side: int | None) -> Source:
    base = _locate(root, "oxford-iiit-pet", "annotations", "Oxford-IIIT Pets")
    lists = {split: base / "annotations" / f"{name}.txt" for split, name in (("train", "trainval"), ("test", "test"))}
    entries = {split: _read_pets_list(path) for split, path in lists.items()}
    class_names: dict[int, str] = {}
    for split, split_entries in entries.items():
        for name, class_id in split_entries:
            breed = name.rsplit("_", 1)[0]
            if class_names.setdefault(class_id, breed) != breed:
                raise DataError(f"{lists[split]}: class id {class_id} is both {class_names[class_id]} and {breed}")
    label_of = {class_id: label for label, class_id in enumerate(sorted(class_names))}
    classes = [class_names[class_id] for class_id in sorted(class_names)]
    official = {
        split: files_to_set(
            base,
            [base / "images" / f"{name}.jpg" for name, _ in split_entries],
            [label_of[class_id] for _, class_id in split_entries],
            classes,
            short_side,
        )
        for split, split_entries in entries.items()
    }
    return Source("pets37", base, official, {split: f"annotations/{path.name}" for split, path in lists.items()})


def imagenet100_wnids() -> list[str]:
    """The 100 WNIDs of the SCOTT paper's ImageNet-100, in the packaged list's (sorted) order."""
    text = resources.files("scarce.data").joinpath(_WNID_FILE).read_text()
    return [line.split("\t")[0].strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _load_imagenet100(root: Path, short_side: int | None) -> Source:
    if not root.is_dir():
        raise DataError(f"ImageNet root not found: {root}")
    wnids = imagenet100_wnids()
    official = {}
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise DataError(f"ImageNet folder not found: {folder}")
        missing = [wnid for wnid in wnids if not (folder / wnid).is_dir()]
        if missing:
            raise DataError(
                f"{folder} lacks {len(missing)} of the {len(wnids)} ImageNet-100 class folders"
                f" (first: {', '.join(missing[:5])})"
            )
        paths, labels = list_class_images(folder, wnids)
        official[split] = files_to_set(root, paths, labels, wnids, short_side)
    return Source("imagenet100", root, official, {"train": "train/", "val": "val/"})


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


def _load_cifar10(root: Path, short_side: int | None) -> Source:
    base = _locate(root, "cifar-10-batches-py", "batches.meta", "CIFAR-10")
    meta = _unpickle(base / "batches.meta")
    names = meta.get(b"label_names")
    if not isinstance(names, list) or not names:
        raise DataError(f"{base / 'batches.meta'} has no 'label_names' list")
    classes = [name.decode() if isinstance(name, bytes) else str(name) for name in names]
    train_names = [f"data_batch_{number}" for number in range(1, 6)]
    official = {"train": _cifar_set(base, train_names, classes), "test": _cifar_set(base, ["test_batch"], classes)}
    return Source("cifar10", base, official, {"train": "data_batch_1..5", "test": "test_batch"})


LOADERS = {
    "npz": _load_npz,
    "folder": _load_folder,
    "flowers102": _load_flowers102,
    "pets37": _load_pets37,
    "imagenet100": _load_imagenet100,
    "cifar10": _load_cifar10,
}
