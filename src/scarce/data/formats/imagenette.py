"""``imagenette:ROOT``: the official Imagenette 160 px release (``imagenette2-160/train/<wnid>/*.JPEG`` and
``val/<wnid>/``) in ROOT or ``ROOT/imagenette2-160``; class names are the WNIDs."""

from __future__ import annotations

from pathlib import Path

from scarce.data.formats.base import DATA_FORMATS, Source
from scarce.data.formats.download import Download, DownloadableFormat
from scarce.data.formats.images import read_image_folder


@DATA_FORMATS.register("imagenette")
class Imagenette(DownloadableFormat):
    """Imagenette (10 ImageNet classes): official train and val (val is the test split, rule 3)."""

    form = "imagenette:ROOT"
    dataset = "Imagenette"
    folder = "imagenette2-160"
    archives_hold_folder = True
    downloads = (  # as torchvision.datasets.Imagenette(size="160px")
        Download(
            "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
            "e793b78cc4c9e9a4ccc0c1155377a412",
            ("train", "val"),
        ),
    )

    @classmethod
    def load(cls, path: Path, short_side: int | None) -> Source:
        base = cls.locate(path)
        official = {split: read_image_folder(base, base / split, short_side) for split in ("train", "val")}
        return Source("imagenette", base, official, {"train": "train/", "val": "val/"})
