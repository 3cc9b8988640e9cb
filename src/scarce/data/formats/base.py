"""The data-format registry: one :class:`DataFormat` per spec kind, and the :class:`Source` it reads.

A format is a module of :mod:`scarce.data.formats` that subclasses :class:`DataFormat` (or
:class:`~scarce.data.formats.download.DownloadableFormat` when it can fetch its official files) and
registers the class with ``@DATA_FORMATS.register(KIND)``; ``load_data("KIND:PATH")`` then calls
its ``load``. An unknown kind is an error listing the registered ones (nothing falls through).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from scarce.data.image_set import ImageSet
from scarce.errors import DataError
from scarce.registry import Registry

SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Source:
    """What a loader read: ``official`` splits by name and the file or folder each came from."""

    loader: str
    path: Path
    official: dict[str, ImageSet]
    sources: dict[str, str]


class DataFormat:
    """One kind of dataset spec ``KIND:PATH``: the spec form shown in help and a loader.

    Subclasses set ``form`` and implement ``load``; they are used as classes (never instantiated).
    """

    form: ClassVar[str]
    """The spec as shown in help and errors, e.g. ``"npz:PATH"``."""

    @classmethod
    def load(cls, path: Path, short_side: int | None) -> Source:
        """Read the dataset at ``path`` (images resized to ``short_side`` where decoded) with its official splits."""
        raise NotImplementedError

    @classmethod
    def download(cls, path: Path) -> None:
        """Fetch the dataset's official files into ``path`` if they are absent; this format has none to fetch."""


DATA_FORMATS: Registry[type[DataFormat]] = Registry("data format")
"""Data formats by spec kind (the ``KIND`` of ``KIND:PATH``)."""


def spec_forms() -> tuple[str, ...]:
    """The spec form of every registered format, e.g. ``("cifar10:ROOT", ..., "npz:PATH", ...)``, by kind."""
    return tuple(data_format.form for _, data_format in DATA_FORMATS.items())


def split_layout(found: dict[str, list[Path]], where: Path, what: str) -> dict[str, Path]:
    """One path per split name from a ``{split: matches}`` listing, or a DataError listing them."""
    listing = "; ".join(f"{split}: {', '.join(p.name for p in paths) or 'none'}" for split, paths in found.items())
    if not found["train"] or any(len(paths) > 1 for paths in found.values()):
        raise DataError(f"{where} must hold exactly one {what} train, and at most one val and test; found {listing}")
    return {split: paths[0] for split, paths in found.items() if paths}
