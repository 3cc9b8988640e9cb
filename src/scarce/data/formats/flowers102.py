"""``flowers102:ROOT``: Oxford Flowers-102 (``jpg/``, ``imagelabels.mat``, ``setid.mat``), official train, val
and test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarce.data.formats.base import DATA_FORMATS, Source
from scarce.data.formats.download import Download, DownloadableFormat
from scarce.data.formats.images import files_to_set
from scarce.errors import DataError

_URL = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/"


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


@DATA_FORMATS.register("flowers102")
class Flowers102(DownloadableFormat):
    """Flowers-102 in ROOT or ``ROOT/flowers-102``; class names are the label numbers ``"1"`` ... ``"102"``."""

    form = "flowers102:ROOT"
    dataset = "Flowers-102"
    folder = "flowers-102"
    downloads = (  # as torchvision.datasets.Flowers102
        Download(f"{_URL}102flowers.tgz", "52808999861908f626f3c1f4e79d11fa", ("jpg",)),
        Download(f"{_URL}imagelabels.mat", "e0620be6f572b9609742df49c70aed4d", ("imagelabels.mat",)),
        Download(f"{_URL}setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c", ("setid.mat",)),
    )

    @classmethod
    def load(cls, path: Path, short_side: int | None) -> Source:
        base = cls.locate(path)
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
