"""``load_data(spec, download=True)`` against a local HTTP server that serves tiny archives in the official layouts.

The archives are built by the tests (CIFAR-10 pickle batches, an ``imagenette2-160.tgz``, Flowers-102's
``102flowers.tgz`` + ``.mat`` files, the Pets tarballs); each format's ``downloads`` table is pointed at the
server with the md5s of those archives. Nothing here reaches the internet.
"""

from __future__ import annotations

import socket
import sys
import tarfile
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from torchvision.datasets.utils import calculate_md5

from scarce.data import load_data
from scarce.data.formats import DownloadableFormat
from scarce.data.formats.cifar10 import Cifar10
from scarce.data.formats.flowers102 import Flowers102
from scarce.data.formats.imagenette import Imagenette
from scarce.data.formats.pets37 import Pets37
from tests.data.test_datasets import (
    CIFAR_CLASSES,
    IMAGENETTE_WNIDS,
    data_error,
    write_cifar,
    write_flowers,
    write_imagenette,
    write_npz,
    write_pets,
)

FORMATS: dict[str, type[DownloadableFormat]] = {
    "cifar10": Cifar10,
    "imagenette": Imagenette,
    "flowers102": Flowers102,
    "pets37": Pets37,
}


def _tar(archive: Path, folder: Path) -> None:
    """``archive`` (gzipped tar) holding ``folder`` under its own name."""
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)


def build_archives(mirror: Path, staging: Path) -> None:
    """Every official file of the four downloadable formats, tiny, in ``mirror``."""
    write_cifar(staging / "cifar-10-batches-py")
    _tar(mirror / "cifar-10-python.tar.gz", staging / "cifar-10-batches-py")
    write_imagenette(staging / "imagenette2-160")
    _tar(mirror / "imagenette2-160.tgz", staging / "imagenette2-160")
    write_flowers(staging / "flowers")
    _tar(mirror / "102flowers.tgz", staging / "flowers" / "jpg")
    for name in ("imagelabels.mat", "setid.mat"):
        (mirror / name).write_bytes((staging / "flowers" / name).read_bytes())
    write_pets(staging / "pets")
    _tar(mirror / "images.tar.gz", staging / "pets" / "images")
    _tar(mirror / "annotations.tar.gz", staging / "pets" / "annotations")


class QuietServer(ThreadingHTTPServer):
    """Drops the broken pipes of torchvision's redirect probe (a GET it closes after the headers)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class Mirror:
    """The served folder, its base URL and the number of GET requests per file name."""

    folder: Path
    url: str
    requests: Counter[str]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    folder = tmp_path_factory.mktemp("mirror")
    build_archives(folder, tmp_path_factory.mktemp("staging"))
    requests: Counter[str] = Counter()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)

        def do_GET(self) -> None:
            requests[self.path.lstrip("/")] += 1
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = QuietServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Mirror(folder, f"http://127.0.0.1:{httpd.server_port}", requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def mirror(server: Mirror) -> Mirror:
    server.requests.clear()
    return server


def serve_from(
    monkeypatch: pytest.MonkeyPatch, data_format: type[DownloadableFormat], base_url: str, folder: Path, md5: str = ""
) -> None:
    """Point ``data_format.downloads`` at ``base_url`` with the md5s of the files in ``folder`` (or ``md5``)."""
    table = tuple(
        replace(item, url=f"{base_url}/{item.filename}", md5=md5 or calculate_md5(folder / item.filename))
        for item in data_format.downloads
    )
    monkeypatch.setattr(data_format, "downloads", table)


EXPECTED = {  # classes, train + val, test
    "cifar10": (CIFAR_CLASSES, 20, 4),
    "imagenette": (IMAGENETTE_WNIDS, 10, 4),
    "flowers102": (["1", "2", "3"], 6, 6),
    "pets37": (["Abyssinian", "american_bulldog", "Bengal"], 30, 6),
}


@pytest.mark.parametrize("kind", list(FORMATS))
def test_download_fetches_checks_extracts_and_loads_once(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    data_format = FORMATS[kind]
    serve_from(monkeypatch, data_format, mirror.url, mirror.folder)
    root = tmp_path / "root"
    data = load_data(f"{kind}:{root}", download=True, val_fraction=0.2)
    classes, train_and_val, test = EXPECTED[kind]
    assert data.train.classes == classes and len(data.test) == test
    assert len(data.train) + (0 if data.val is None else len(data.val)) == train_and_val
    assert data.info["path"] == str((root / data_format.folder).resolve())
    assert set(mirror.requests) == {item.filename for item in data_format.downloads}
    assert socket.getdefaulttimeout() is None
    fetched = dict(mirror.requests)
    again = load_data(f"{kind}:{root}", download=True, val_fraction=0.2)
    assert dict(mirror.requests) == fetched, "a present dataset must not be downloaded again"
    assert again.info["fingerprints"] == data.info["fingerprints"]


def test_a_dataset_placed_by_hand_is_not_downloaded(tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch):
    serve_from(monkeypatch, Cifar10, mirror.url, mirror.folder)
    write_cifar(tmp_path)  # directly in ROOT, not in ROOT/cifar-10-batches-py
    assert len(load_data(f"cifar10:{tmp_path}", download=True).test) == 4
    assert not mirror.requests


def test_only_the_missing_files_are_downloaded(tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch):
    serve_from(monkeypatch, Flowers102, mirror.url, mirror.folder)
    load_data(f"flowers102:{tmp_path}", download=True)
    (tmp_path / "flowers-102" / "setid.mat").unlink()
    (tmp_path / "flowers-102" / "102flowers.tgz").unlink()
    mirror.requests.clear()
    with data_error(f"Flowers-102 not found in {tmp_path} (no setid.mat in {tmp_path / 'flowers-102'})"):
        load_data(f"flowers102:{tmp_path}")
    assert len(load_data(f"flowers102:{tmp_path}", download=True).test) == 6
    assert set(mirror.requests) == {"setid.mat"}


def test_a_wrong_checksum_is_one_line_and_the_file_is_removed(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_from(monkeypatch, Cifar10, mirror.url, mirror.folder, md5="0" * 32)
    archive = tmp_path / "cifar-10-python.tar.gz"
    actual = calculate_md5(mirror.folder / archive.name)
    with data_error(
        f"{archive} has md5 {actual}, expected {'0' * 32} (removed it): download again, or place"
    ) as caught:
        load_data(f"cifar10:{tmp_path}", download=True)
    assert "\n" not in str(caught.value)
    assert not archive.exists() and not (tmp_path / "cifar-10-batches-py").exists()


def test_a_corrupt_local_copy_is_replaced(tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_from(monkeypatch, Imagenette, mirror.url, mirror.folder)
    (tmp_path / "imagenette2-160.tgz").write_bytes(b"half an archive")
    assert load_data(f"imagenette:{tmp_path}", download=True).train.classes == IMAGENETTE_WNIDS
    assert mirror.requests["imagenette2-160.tgz"] >= 1


def test_an_unreachable_server_says_what_to_place_where(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(
        Pets37, "downloads", tuple(replace(d, url=f"{base_url}/{d.filename}") for d in Pets37.downloads)
    )
    target = tmp_path / "oxford-iiit-pet"
    with data_error(
        f"cannot download {base_url}/images.tar.gz (",
        f"): place images.tar.gz ({base_url}/images.tar.gz), annotations.tar.gz ({base_url}/annotations.tar.gz)"
        f" in {target} and extract images.tar.gz and annotations.tar.gz there",
    ) as caught:
        load_data(f"pets37:{tmp_path}", download=True)
    assert "\n" not in str(caught.value) and not (target / "images.tar.gz").exists()


def test_without_download_nothing_is_fetched(tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_from(monkeypatch, Cifar10, mirror.url, mirror.folder)
    with data_error(f"CIFAR-10 not found in {tmp_path} (no batches.meta, ", "run with --download, or place"):
        load_data(f"cifar10:{tmp_path}")
    assert not mirror.requests


def test_formats_without_downloads_ignore_download(tmp_path: Path) -> None:
    write_npz(tmp_path / "d.npz", [4, 4])
    data = load_data(f"npz:{tmp_path / 'd.npz'}", download=True)
    assert sum(data.info["sizes"].values()) == 8 and [path.name for path in tmp_path.iterdir()] == ["d.npz"]


def test_the_cli_download_flag_reaches_the_loader(
    tmp_path: Path, mirror: Mirror, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from scarce.cli import main

    serve_from(monkeypatch, Cifar10, mirror.url, mirror.folder)
    root, run = tmp_path / "cifar", tmp_path / "run"
    common = ["pretrain", "-c", "scott-tiny", "--data", f"cifar10:{root}", "-o", str(run), "--batch-size", "8"]
    common += ["--epochs", "1", "--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]
    assert main(common) == 2  # without --download: a one-line error that says how to get the data
    assert "run with --download" in capsys.readouterr().err and not mirror.requests and not run.exists()
    assert main([*common, "--download"]) == 0, capsys.readouterr().err
    assert set(mirror.requests) == {item.filename for item in Cifar10.downloads}
    assert (run / "encoder.safetensors").exists()
