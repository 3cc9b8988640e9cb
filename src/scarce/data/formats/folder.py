"""``folder:DIR``: split sub-folders (``train/`` + ``val/`` / ``test/``), class folders, or a flat folder of images."""

from __future__ import annotations

from pathlib import Path

from scarce.data.formats.base import DATA_FORMATS, SPLIT_NAMES, DataFormat, Source, split_layout
from scarce.data.formats.images import read_image_folder
from scarce.errors import DataError


@DATA_FORMATS.register("folder")
class Folder(DataFormat):
    """A folder of images: split sub-folders, class folders (labelled) or loose images (unlabelled)."""

    form = "folder:PATH"

    @classmethod
    def load(cls, path: Path, short_side: int | None) -> Source:
        if not path.is_dir():
            raise DataError(f"image folder not found: {path}")
        if (path / "train").is_dir():
            found = {split: [path / split] if (path / split).is_dir() else [] for split in SPLIT_NAMES}
            folders = split_layout(found, path, "sub-folder:")
            official = {split: read_image_folder(path, folder, short_side) for split, folder in folders.items()}
            return Source("folder-splits", path, official, {split: f"{split}/" for split in folders})
        image_set = read_image_folder(path, path, short_side)
        loader = "folder-classes" if image_set.is_labelled else "folder-flat"
        return Source(loader, path, {"train": image_set}, {"train": "./"})
