"""Dataset specs and split rules: ``load_data(spec)`` -> train / val / test :class:`ImageSet` splits.

An :class:`ImageSet` holds uint8 RGB images, channels first: one tensor ``[N, 3, H, W]`` when all
images have the same size, else a list of ``[3, H_i, W_i]`` tensors. ``load_data`` returns
:class:`DataSplits` (train, val, test and a JSON-serialisable ``info`` record). The image sets live
in :mod:`scarce.data.image_set` and the readers of each format in :mod:`scarce.data.formats`; the
names they export are re-exported here.

Dataset specs (``KIND:PATH``; ``KIND`` is a format registered in ``DATA_FORMATS``, one module of
:mod:`scarce.data.formats` each; ``SPEC_FORMS`` lists them, an unknown kind is an error listing them):

- ``npz:FILE.npz``: keys ``x`` uint8 ``[N, H, W, 3]`` (RGB) or ``[N, H, W]`` (greyscale, made
  RGB), optional ``y`` integer ``[N]``, ``classes`` str ``[C]`` (default ``"0"``, ``"1"``, ...) and
  ``files`` str ``[N]`` (ids; default ``"<file name>#<index>"``). Read with ``allow_pickle=False``.
- ``npz:DIR``: ``*_train.npz`` plus ``*_val.npz`` and/or ``*_test.npz``, at most one file per
  pattern.
- ``folder:DIR``: ``DIR/train/`` (+ ``val/`` and/or ``test/``), each holding class folders or
  images; or class folders (``DIR/<class>/<image>``, labelled); or images directly in ``DIR``
  (unlabelled). Classes are the sorted folder names. Extensions: see ``IMAGE_EXTENSIONS``.
- ``flowers102:ROOT``: Oxford Flowers-102 (``jpg/``, ``imagelabels.mat``, ``setid.mat``) in ROOT
  or ``ROOT/flowers-102``; class names are the official label numbers ``"1"`` ... ``"102"``.
- ``pets37:ROOT``: Oxford-IIIT Pets (``images/``, ``annotations/trainval.txt``, ``test.txt``) in
  ROOT or ``ROOT/oxford-iiit-pet``; class names are the image-name prefixes, by class id.
- ``imagenet100:ROOT``: ``ROOT/train/<wnid>/`` and ``ROOT/val/<wnid>/`` (ImageNet layout),
  restricted to the 100 WNIDs of the SCOTT paper (``imagenet100_wnids()``); other folders are ignored.
- ``imagenette:ROOT``: the official Imagenette 160 px release (``train/<wnid>/*.JPEG``,
  ``val/<wnid>/*.JPEG``) in ROOT or ``ROOT/imagenette2-160``; class names are the WNIDs.
- ``cifar10:ROOT``: the python pickle batches in ROOT or ``ROOT/cifar-10-batches-py``.

Downloads: ``load_data(spec, download=True)`` fetches a missing Imagenette, CIFAR-10, Flowers-102
or Pets-37 into ROOT from the official URLs that torchvision uses (``imagenette2-160.tgz``;
``cifar-10-python.tar.gz``; ``102flowers.tgz``, ``imagelabels.mat`` and ``setid.mat`` into
``ROOT/flowers-102``; ``images.tar.gz`` and ``annotations.tar.gz`` into ``ROOT/oxford-iiit-pet``),
checks their md5 and extracts the archives. A dataset already present is never fetched again; a
file with a wrong md5 is removed and reported. Without ``download``, or offline, a missing dataset
is a one-line DataError naming the files to place where. The other formats have nothing to fetch.

How the splits are made (``info["origin"]`` records it for each split):

1. **Official train, val and test** (Flowers-102; a DIR with all three): used as they are.
2. **Official train and test** (Pets-37, CIFAR-10; a DIR with train and test): val is carved
   from train, ``val_fraction`` of train, stratified.
3. **Official train and val only** (ImageNet-100, Imagenette; a DIR with train and val, e.g.
   Imagewoof): the official val split becomes the **test** split, and val is carved from train
   as in 2.
4. **One labelled source** (one npz file, class folders, a DIR with train only): test is carved
   from all images (``test_fraction``), then val (``val_fraction`` of all images), stratified.
5. **One unlabelled source**: every image is train; val and test are None.

Carving uses :func:`scarce.data.splits.stratified_split` (test with ``seed``, val with
``seed + 1``); a fraction of 0 gives no split (None). The val and test classes of official splits
are mapped onto the train classes by name. Every split is labelled, or none is.

Decoded images (folders, Flowers, Pets, ImageNet, Imagenette) can be resized so that their short
side is ``cache_short_side`` (PIL bicubic, antialiased, aspect ratio kept; JPEGs are first decoded at a
reduced DCT scale that keeps at least twice that size). npz and CIFAR arrays are kept as stored.
Every error a user can cause raises :class:`scarce.errors.DataError` naming the path, file or key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import Tensor

from scarce.data.formats import (
    DATA_FORMATS,
    IMAGE_EXTENSIONS,
    SPLIT_NAMES,
    DataFormat,
    Source,
    decode_image,
    decode_images,
    files_to_set,
    image_files,
    imagenet100_wnids,
    list_class_images,
    read_image_folder,
    read_npz,
    spec_forms,
)
from scarce.data.image_set import UNLABELLED, ImageSet, concat, fingerprint, pack_images, relabel
from scarce.data.splits import stratified_split
from scarce.errors import DataError

__all__ = [
    "DATA_FORMATS",
    "IMAGE_EXTENSIONS",
    "SPEC_FORMS",
    "SPLIT_NAMES",
    "UNLABELLED",
    "DataFormat",
    "DataSplits",
    "ImageSet",
    "Origin",
    "concat",
    "decode_image",
    "decode_images",
    "files_to_set",
    "fingerprint",
    "image_files",
    "imagenet100_wnids",
    "list_class_images",
    "load_data",
    "pack_images",
    "parse_spec",
    "read_image_folder",
    "read_npz",
    "relabel",
]

SPEC_FORMS = spec_forms()
"""The spec form of every data format registered by :mod:`scarce.data.formats`, by kind."""


@dataclass
class DataSplits:
    """The splits of one dataset; ``info`` is JSON-serialisable (see the module docstring)."""

    train: ImageSet
    val: ImageSet | None
    test: ImageSet | None
    info: dict[str, object]
    unlabelled: ImageSet | None = None
    """Under a label budget (:mod:`scarce.data.budget`): the training images whose labels are hidden."""
    hidden_labels: Tensor | None = None
    """Their true labels, for diagnostics only (e.g. pseudo-label accuracy), never for training."""

    def named(self) -> dict[str, ImageSet]:
        """``{"train": ..., "val": ..., "test": ...}`` without the splits that are None."""
        splits = {"train": self.train, "val": self.val, "test": self.test}
        return {name: split for name, split in splits.items() if split is not None}


# ----------------------------------------------------------------------------------------------
# Split rules


def _check_arguments(val_fraction: float, test_fraction: float, cache_short_side: int | None) -> None:
    for name, fraction in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= fraction < 1.0:
            raise DataError(f"{name} must be in [0, 1), got {fraction}")
    if val_fraction + test_fraction >= 1.0:
        raise DataError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}")
    if cache_short_side is not None and cache_short_side < 1:
        raise DataError(f"cache_short_side must be a positive number of pixels, got {cache_short_side}")


def _align_classes(source: Source) -> dict[str, ImageSet]:
    """The official splits with val/test labels mapped onto the train classes."""
    train = source.official["train"]
    aligned = {}
    for split, image_set in source.official.items():
        if image_set.is_labelled != train.is_labelled:
            state = "labelled" if train.is_labelled else "unlabelled"
            raise DataError(f"{source.path}: train is {state} but {source.sources[split]} is not")
        aligned[split] = relabel(image_set, train.classes, f"{source.path}/{source.sources[split]}")
    return aligned


def _carve(image_set: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """``(remaining, split off)``; no split off (None) when ``fraction`` is 0."""
    if fraction == 0.0:
        return image_set, None
    remaining, split_off = stratified_split(image_set.labels, fraction, seed, num_items=len(image_set))
    return image_set.subset(remaining), image_set.subset(split_off)


Origin = dict[str, str | None]


def _official_splits(official: dict[str, ImageSet], val_fraction: float, seed: int) -> tuple[DataSplits, Origin]:
    """Rules 1 and 2: official train and test, official val or val carved from train."""
    if "val" in official:
        data = DataSplits(official["train"], official["val"], official["test"], info={})
        return data, {"train": "official", "val": "official", "test": "official"}
    train, val = _carve(official["train"], val_fraction, seed + 1)
    origin: Origin = {"train": "official", "val": None if val is None else "carved from train", "test": "official"}
    return DataSplits(train, val, official["test"], info={}), origin


def _carved_splits(images: ImageSet, val_fraction: float, test_fraction: float, seed: int) -> tuple[DataSplits, Origin]:
    """Rules 4 and 5: test then val carved from one labelled source; all train if unlabelled."""
    if not images.is_labelled:
        return DataSplits(images, None, None, info={}), {"train": "all images", "val": None, "test": None}
    rest, test = _carve(images, test_fraction, seed)
    train, val = _carve(rest, val_fraction / (1.0 - test_fraction), seed + 1)
    carved = "carved from all"
    origin: Origin = {"train": carved, "val": None if val is None else carved, "test": None if test is None else carved}
    return DataSplits(train, val, test, info={}), origin


def _make_splits(
    source: Source, val_fraction: float, test_fraction: float, seed: int
) -> tuple[DataSplits, Origin, dict[str, str], list[str]]:
    """Apply the split rules of the module docstring: ``(splits without info, origin, sources, notes)``."""
    official = _align_classes(source)
    sources = dict(source.sources)
    notes = []
    if "val" in official and "test" not in official:  # rule 3
        official["test"] = official.pop("val")
        sources["test"] = sources.pop("val")
        notes.append("the official val split is the test split; val is carved from train")
    if "test" in official:
        data, origin = _official_splits(official, val_fraction, seed)
    else:
        data, origin = _carved_splits(official["train"], val_fraction, test_fraction, seed)
    return data, origin, sources, notes


def parse_spec(spec: str) -> tuple[str, Path]:
    """``"npz:/data/x.npz"`` -> ``("npz", Path("/data/x.npz"))``; one-line DataError for an unknown form.

    The kinds are those of ``DATA_FORMATS``; the error lists their spec forms.
    """
    kind, colon, location = spec.partition(":")
    if not colon or kind not in DATA_FORMATS or not location:
        raise DataError(f"unknown dataset spec {spec!r}; expected one of {', '.join(spec_forms())}")
    return kind, Path(location).expanduser()


def load_data(
    spec: str,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    cache_short_side: int | None = None,
    download: bool = False,
) -> DataSplits:
    """Load a dataset spec and make train / val / test splits (rules in the module docstring).

    Args:
        spec: ``KIND:PATH``, one of ``SPEC_FORMS``.
        val_fraction: share of val when it is carved (of train, or of all images for one source).
        test_fraction: share of test when it is carved from one labelled source.
        seed: seed of the carving.
        cache_short_side: resize decoded images to this short side (None: keep their size).
        download: fetch a downloadable dataset (imagenette, cifar10, flowers102, pets37) into its
            ROOT when its files are absent (md5-checked, extracted; never re-fetched once present).
            The other formats have nothing to fetch and ignore it.
    """
    _check_arguments(val_fraction, test_fraction, cache_short_side)
    kind, path = parse_spec(spec)
    data_format = DATA_FORMATS.get(kind)
    if download:
        data_format.download(path)
    source = data_format.load(path, cache_short_side)
    data, origin, sources, notes = _make_splits(source, val_fraction, test_fraction, seed)
    splits = {"train": data.train, "val": data.val, "test": data.test}
    data.info = {
        "spec": spec,
        "loader": source.loader,
        "path": str(source.path.resolve()),
        "origin": origin,
        "sources": sources,
        "notes": notes,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "seed": seed,
        "cache_short_side": cache_short_side,
        "sizes": {name: None if split is None else len(split) for name, split in splits.items()},
        "num_classes": data.train.num_classes,
        "classes": list(data.train.classes),
        "fingerprints": {name: fingerprint(split) for name, split in data.named().items()},
    }
    return data
