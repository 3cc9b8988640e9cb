"""Fetching the official files of a dataset: :class:`Download` tables and :class:`DownloadableFormat`.

A downloadable format names its official files in ``downloads`` (URL, md5 and what each file
yields in the dataset folder), as torchvision's dataset classes do. ``load_data(spec,
download=True)`` calls :meth:`DownloadableFormat.download`, which fetches the missing files with
``torchvision.datasets.utils.download_url``, checks their md5 and extracts the archives; a dataset
already in ROOT is never fetched again. Without ``download`` (or offline) a missing dataset is a
one-line :class:`~scarce.errors.DataError` saying which files to place where.

The tables are class attributes of each format (e.g. ``Cifar10.downloads``): tests point them at
a local server with ``monkeypatch.setattr``; there is no environment variable to redirect them.
"""

from __future__ import annotations

import socket
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import ClassVar

from torchvision.datasets.utils import calculate_md5, check_integrity, download_url, extract_archive

from scarce.data.formats.base import DataFormat
from scarce.errors import DataError

DOWNLOAD_TIMEOUT_S = 60.0
"""Socket timeout of a download (applied only when the process sets no default timeout)."""
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")


@dataclass(frozen=True)
class Download:
    """One official file of a dataset.

    Attributes:
        url: where to fetch it; the file keeps the URL's last path segment as its name.
        md5: its checksum.
        provides: the files or folders it yields in the dataset folder (an archive: what it
            unpacks; another file: its own name). The dataset is present when all of them are.
    """

    url: str
    md5: str
    provides: tuple[str, ...]

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def is_archive(self) -> bool:
        return self.filename.endswith(ARCHIVE_SUFFIXES)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Give sockets opened meanwhile a timeout (urllib's default is none: an offline stall would hang)."""
    previous = socket.getdefaulttimeout()
    if previous is None:
        socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


class DownloadableFormat(DataFormat):
    """A format whose official files can be fetched into ROOT (the torchvision-backed datasets).

    The dataset's files live in ``ROOT/folder`` or directly in ROOT; :meth:`locate` finds them.
    """

    dataset: ClassVar[str]
    """Its name in messages, e.g. ``"CIFAR-10"``."""
    folder: ClassVar[str]
    """The dataset folder inside ROOT, e.g. ``"cifar-10-batches-py"``."""
    downloads: ClassVar[tuple[Download, ...]]
    """The official files (URL, md5, what each yields in the dataset folder)."""
    archives_hold_folder: ClassVar[bool] = False
    """True when the archive unpacks into ``folder`` itself and is fetched into ROOT (CIFAR-10,
    Imagenette); False when the files are fetched into ``ROOT/folder`` (Flowers-102, Pets-37)."""

    @classmethod
    def markers(cls) -> tuple[str, ...]:
        """What a complete copy holds: everything the downloads provide."""
        return tuple(name for item in cls.downloads for name in item.provides)

    @classmethod
    def _holds(cls, base: Path, names: tuple[str, ...]) -> bool:
        return all((base / name).exists() for name in names)

    @classmethod
    def _target(cls, root: Path) -> Path:
        """Where the files are fetched (and the archives extracted)."""
        return root if cls.archives_hold_folder else root / cls.folder

    @classmethod
    def place_by_hand(cls, root: Path) -> str:
        """The manual alternative to downloading, as a clause: ``place FILE (URL), ... in DIR and extract ...``."""
        files = ", ".join(f"{item.filename} ({item.url})" for item in cls.downloads)
        archives = [item.filename for item in cls.downloads if item.is_archive]
        extract = ""
        if archives:
            extract = f" and extract {'it' if len(cls.downloads) == 1 else ' and '.join(archives)} there"
        return f"place {files} in {cls._target(root)}{extract}"

    @classmethod
    def locate(cls, root: Path) -> Path:
        """``root`` or ``root/folder``, whichever holds the whole dataset; else a one-line DataError."""
        markers = cls.markers()
        for base in (root, root / cls.folder):
            if cls._holds(base, markers):
                return base
        if not root.is_dir():
            reason = "no such folder"
        else:
            base = root / cls.folder if (root / cls.folder).is_dir() else root
            reason = f"no {', '.join(name for name in markers if not (base / name).exists())} in {base}"
        raise DataError(
            f"{cls.dataset} not found in {root} ({reason}): run with --download, or {cls.place_by_hand(root)}"
        )

    @classmethod
    def download(cls, path: Path) -> None:
        """Fetch, check and extract the files the dataset in ``path`` lacks; nothing when it is present."""
        if any(cls._holds(base, cls.markers()) for base in (path, path / cls.folder)):
            return
        for item in cls.downloads:
            if not cls._holds(path / cls.folder, item.provides):
                cls._fetch(item, path)
        missing = [name for name in cls.markers() if not (path / cls.folder / name).exists()]
        if missing:
            raise DataError(f"the downloaded {cls.dataset} files hold no {', '.join(missing)} in {path / cls.folder}")

    @classmethod
    def _fetch(cls, item: Download, root: Path) -> None:
        """Download ``item`` into the target folder unless a copy with the right md5 is there, then extract it."""
        target = cls._target(root)
        file = target / item.filename
        if not check_integrity(str(file), item.md5):
            file.unlink(missing_ok=True)
            try:
                with _socket_timeout(DOWNLOAD_TIMEOUT_S):
                    download_url(item.url, str(target), filename=item.filename)
            except (OSError, HTTPException, ValueError) as error:  # URLError and timeouts are OSErrors
                file.unlink(missing_ok=True)
                raise DataError(
                    f"cannot download {item.url} ({_one_line(error)}): {cls.place_by_hand(root)}"
                ) from error
            if not check_integrity(str(file), item.md5):
                actual = calculate_md5(str(file)) if file.is_file() else "none (no file)"
                file.unlink(missing_ok=True)
                raise DataError(
                    f"{file} has md5 {actual}, expected {item.md5} (removed it): download again, or"
                    f" {cls.place_by_hand(root)}"
                )
        if item.is_archive:
            try:
                extract_archive(str(file), str(target))
            except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, zlib.error, RuntimeError) as error:
                raise DataError(f"cannot extract {file}: {_one_line(error)}") from error
