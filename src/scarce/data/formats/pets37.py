"""``pets37:ROOT``: Oxford-IIIT Pets (``images/``, ``annotations/trainval.txt`` and ``test.txt``)."""

from __future__ import annotations

from pathlib import Path

from scarce.data.formats.base import DATA_FORMATS, Source
from scarce.data.formats.download import Download, DownloadableFormat
from scarce.data.formats.images import files_to_set
from scarce.errors import DataError

_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/"


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


@DATA_FORMATS.register("pets37")
class Pets37(DownloadableFormat):
    """Pets in ROOT or ``ROOT/oxford-iiit-pet``; class names are the image-name prefixes (breeds), by class id."""

    form = "pets37:ROOT"
    dataset = "Oxford-IIIT Pets"
    folder = "oxford-iiit-pet"
    downloads = (  # as torchvision.datasets.OxfordIIITPet
        Download(f"{_URL}images.tar.gz", "5c4f3ee8e5d25df40f4fd59a7f44e54c", ("images",)),
        Download(f"{_URL}annotations.tar.gz", "95a8c909bbe2e81eed6a22bccdf3f68f", ("annotations",)),
    )

    @classmethod
    def load(cls, path: Path, short_side: int | None) -> Source:
        base = cls.locate(path)
        splits = (("train", "trainval"), ("test", "test"))
        lists = {split: base / "annotations" / f"{name}.txt" for split, name in splits}
        entries = {split: _read_pets_list(file) for split, file in lists.items()}
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
        return Source("pets37", base, official, {split: f"annotations/{file.name}" for split, file in lists.items()})
