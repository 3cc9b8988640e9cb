"""Readers of the on-disk dataset formats behind ``load_data(spec)``: one module per spec kind.

Each module defines a :class:`DataFormat` and registers it with ``@DATA_FORMATS.register(KIND)``
(``npz``, ``folder``, ``flowers102``, ``pets37``, ``imagenet100``, ``imagenette``, ``cifar10``);
importing this package registers them all. A loader returns a :class:`Source` with the official
splits it found; :mod:`scarce.data.datasets` documents the formats and turns a Source into
train / val / test splits. The torchvision-backed sets (Imagenette, CIFAR-10, Flowers-102, Pets-37)
are :class:`DownloadableFormat` s: see :mod:`scarce.data.formats.download`. Shared helpers: image
decoding in :mod:`~scarce.data.formats.images`, the registry in :mod:`~scarce.data.formats.base`.
"""

from scarce.data.formats import cifar10, flowers102, folder, imagenet100, imagenette, npz, pets37
from scarce.data.formats.base import DATA_FORMATS, SPLIT_NAMES, DataFormat, Source, spec_forms
from scarce.data.formats.download import Download, DownloadableFormat
from scarce.data.formats.imagenet100 import imagenet100_wnids
from scarce.data.formats.images import (
    IMAGE_EXTENSIONS,
    decode_image,
    decode_images,
    files_to_set,
    image_files,
    list_class_images,
    read_image_folder,
)
from scarce.data.formats.npz import read_npz

__all__ = [
    "DATA_FORMATS",
    "IMAGE_EXTENSIONS",
    "SPLIT_NAMES",
    "DataFormat",
    "Download",
    "DownloadableFormat",
    "Source",
    "cifar10",
    "decode_image",
    "decode_images",
    "files_to_set",
    "flowers102",
    "folder",
    "image_files",
    "imagenet100",
    "imagenet100_wnids",
    "imagenette",
    "list_class_images",
    "npz",
    "pets37",
    "read_image_folder",
    "read_npz",
    "spec_forms",
]
