"""``imagenet100:ROOT``: the ImageNet layout (``train/<wnid>/``, ``val/<wnid>/``) restricted to the 100 WNIDs of
the SCOTT paper (the packaged ``imagenet100_scott_wnids.txt``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from scarce.data.formats.base import DATA_FORMATS, DataFormat, Source
from scarce.data.formats.images import files_to_set, list_class_images
from scarce.errors import DataError

_WNID_FILE = "imagenet100_scott_wnids.txt"


def imagenet100_wnids() -> list[str]:
    """The 100 WNIDs of the SCOTT paper's ImageNet-100, in the packaged list's (sorted) order."""
    text = resources.files("scarce.data").joinpath(_WNID_FILE).read_text()
    return [line.split("\t")[0].strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@DATA_FORMATS.register("imagenet100")
class ImageNet100(DataFormat):
    """ImageNet train and val, the 100 listed WNIDs only (other class folders are ignored)."""

    form = "imagenet100:ROOT"

    @classmethod
    def load(cls, path: Path, short_side: int | None) -> Source:
        if not path.is_dir():
            raise DataError(f"ImageNet root not found: {path}")
        wnids = imagenet100_wnids()
        official = {}
        for split in ("train", "val"):
            folder = path / split
            if not folder.is_dir():
                raise DataError(f"ImageNet folder not found: {folder}")
            missing = [wnid for wnid in wnids if not (folder / wnid).is_dir()]
            if missing:
                raise DataError(
                    f"{folder} lacks {len(missing)} of the {len(wnids)} ImageNet-100 class folders"
                    f" (first: {', '.join(missing[:5])})"
                )
            paths, labels = list_class_images(folder, wnids)
            official[split] = files_to_set(path, paths, labels, wnids, short_side)
        return Source("imagenet100", path, official, {"train": "train/", "val": "val/"})
