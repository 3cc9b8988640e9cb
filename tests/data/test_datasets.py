"""Image sets, fingerprints and ``load_data`` on tiny fixtures in every supported format.

The fixtures are written to ``tmp_path`` by the tests themselves; no dataset file is committed.
"""

from __future__ import annotations

import json
import os
import pickle
import re
from collections import Counter
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scarce.data import (
    SPEC_FORMS,
    DataSplits,
    ImageSet,
    concat,
    fingerprint,
    imagenet100_wnids,
    load_data,
    parse_spec,
)
from scarce.data.datasets import DATA_FORMATS
from scarce.errors import DataError
from tests.helpers import IMAGEWOOF, require_dataset


def data_error(*fragments: str) -> AbstractContextManager[pytest.ExceptionInfo[DataError]]:
    """``pytest.raises(DataError)`` for a message holding ``fragments`` in order, matched literally."""
    return pytest.raises(DataError, match=".*".join(re.escape(fragment) for fragment in fragments))


# ----------------------------------------------------------------------------------------------
# Fixture writers


def write_image(path: Path, size: tuple[int, int] = (8, 8), seed: int = 0) -> np.ndarray:
    """A random RGB image of ``size`` (width, height) at ``path`` (format from the suffix); returns HWC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def write_npz(path: Path, class_sizes: list[int], size: int = 8, **extra: np.ndarray) -> None:
    """``x`` uint8 [N, size, size, 3] and ``y`` with ``class_sizes[c]`` images of class c, plus ``extra`` keys."""
    labels = np.concatenate([np.full(count, label) for label, count in enumerate(class_sizes)]).astype(np.int64)
    images = np.random.default_rng(len(labels)).integers(0, 256, (len(labels), size, size, 3), dtype=np.uint8)
    np.savez(path, **{"x": images, "y": labels, **extra})


def write_class_folders(root: Path, class_sizes: dict[str, int], suffix: str = ".png") -> None:
    for index, (name, count) in enumerate(class_sizes.items()):
        for number in range(count):
            write_image(root / name / f"img_{number:03d}{suffix}", seed=100 * index + number)


def class_counts(image_set: ImageSet) -> dict[str, int]:
    assert image_set.labels is not None
    return dict(Counter(image_set.classes[label] for label in image_set.labels.tolist()))


def check_disjoint(data: DataSplits) -> None:
    ids = [set(split.ids) for split in data.named().values()]
    assert sum(len(split_ids) for split_ids in ids) == len(set().union(*ids))


# ----------------------------------------------------------------------------------------------
# ImageSet, fingerprint, concat


def tiny_set(count: int = 6, size: int = 4, labelled: bool = True) -> ImageSet:
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8)
    labels = torch.arange(count) % 3 if labelled else None
    return ImageSet(images, labels, [f"img{index}" for index in range(count)], ["a", "b", "c"] if labelled else [])


def test_image_set_basics_and_subset() -> None:
    image_set = tiny_set()
    assert len(image_set) == 6 and image_set.num_classes == 3 and image_set.is_labelled
    assert image_set.image(2).shape == (3, 4, 4)
    part = image_set.subset([4, 1])
    assert part.ids == ["img4", "img1"] and part.labels.tolist() == [1, 1] and part.classes == ["a", "b", "c"]
    assert torch.equal(part.image(0), image_set.image(4))
    as_list = ImageSet(list(image_set.images), image_set.labels, image_set.ids, image_set.classes)
    assert torch.equal(as_list.subset(torch.tensor([5])).image(0), image_set.image(5))
    assert not tiny_set(labelled=False).is_labelled and tiny_set(labelled=False).num_classes == 0
    assert repr(image_set) == "ImageSet(6 images, uint8 [6, 3, 4, 4], 3 classes)"
    assert repr(as_list.subset([0])) == "ImageSet(1 images, list of [3, H, W], 3 classes)"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda s: ImageSet(s.images.float(), s.labels, s.ids, s.classes), "uint8"),
        (lambda s: ImageSet(s.images, s.labels, s.ids[:-1], s.classes), "6 images but 5 ids"),
        (lambda s: ImageSet(s.images, s.labels + 1, s.ids, s.classes), r"labels must be in \[0, 3\)"),
        (lambda s: ImageSet(s.images, s.labels.int(), s.ids, s.classes), "int64"),
        (lambda s: ImageSet(s.images, None, s.ids, s.classes), "no classes"),
        (lambda s: ImageSet(s.images, s.labels, s.ids, ["a", "a", "b"]), "unique"),
        (lambda s: ImageSet([s.images[0][:1]], None, ["x"], []), r"\[3, H, W\]"),
    ],
)
def test_image_set_validation(build, message: str) -> None:
    with pytest.raises(DataError, match=message):
        build(tiny_set())


def test_fingerprint_depends_on_content_not_layout() -> None:
    image_set = tiny_set()
    digest = fingerprint(image_set)
    assert len(digest) == 64 and digest == fingerprint(image_set.subset(range(6)))
    as_list = ImageSet(list(image_set.images), image_set.labels, image_set.ids, image_set.classes)
    assert fingerprint(as_list) == digest
    changed = image_set.subset(range(6))
    changed.images[3, 0, 0, 0] ^= 1
    assert fingerprint(changed) != digest
    assert fingerprint(ImageSet(image_set.images, image_set.labels.roll(1), image_set.ids, image_set.classes)) != digest
    assert fingerprint(ImageSet(image_set.images, image_set.labels, image_set.ids[::-1], image_set.classes)) != digest
    assert fingerprint(image_set.subset([0, 1, 2, 3, 5, 4])) != digest


def test_concat() -> None:
    first, second = tiny_set(4), tiny_set(3)
    joined = concat([first, second])
    assert isinstance(joined.images, torch.Tensor) and joined.images.shape == (7, 3, 4, 4)
    assert joined.labels.tolist() == first.labels.tolist() + second.labels.tolist()
    mixed = concat([first, tiny_set(2, size=5, labelled=False)])
    assert isinstance(mixed.images, list) and len(mixed) == 6 and mixed.is_labelled
    assert mixed.labels.tolist() == [*first.labels.tolist(), -1, -1] and mixed.classes == first.classes
    other = ImageSet(second.images, second.labels, second.ids, ["x", "y", "z"])
    with data_error("different classes"):
        concat([first, other])
    with data_error("at least one"):
        concat([])


# ----------------------------------------------------------------------------------------------
# Specs and arguments


@pytest.mark.parametrize("spec", ["tfds:cifar10", "no-colon", "npz:", "NPZ:/data"])
def test_unknown_spec(spec: str) -> None:
    with data_error("expected one of cifar10:ROOT, flowers102:ROOT, folder:PATH, ", "npz:PATH") as caught:
        load_data(spec)
    assert "\n" not in str(caught.value)


def test_spec_forms_come_from_the_registry() -> None:
    assert DATA_FORMATS.names() == ("cifar10", "flowers102", "folder", "imagenet100", "imagenette", "npz", "pets37")
    assert tuple(DATA_FORMATS.get(kind).form for kind in DATA_FORMATS.names()) == SPEC_FORMS
    assert "imagenette:ROOT" in SPEC_FORMS and "npz:PATH" in SPEC_FORMS


def test_parse_spec() -> None:
    assert parse_spec("folder:~/images") == ("folder", Path("~/images").expanduser())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"test_fraction": -0.1}, "test_fraction"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "< 1"),
        ({"cache_short_side": 0}, "cache_short_side"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    write_npz(tmp_path / "d.npz", [4, 4])
    with pytest.raises(DataError, match=message):
        load_data(f"npz:{tmp_path / 'd.npz'}", **kwargs)


@pytest.mark.parametrize("kind", ["npz", "folder", "imagenet100"])
def test_missing_path(tmp_path: Path, kind: str) -> None:
    missing = tmp_path / "nowhere"
    with data_error(f"not found: {missing}"):
        load_data(f"{kind}:{missing}")


@pytest.mark.parametrize(
    ("kind", "files"),
    [
        ("cifar10", "place cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz) in "),
        ("imagenette", "place imagenette2-160.tgz (https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz)"),
        ("flowers102", "place 102flowers.tgz (https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz), "),
        ("pets37", "place images.tar.gz (https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz), "),
    ],
)
def test_missing_downloadable_dataset_says_what_to_place_where(tmp_path: Path, kind: str, files: str) -> None:
    missing = tmp_path / "nowhere"
    with data_error(f" not found in {missing} (no such folder): run with --download, or ", files) as caught:
        load_data(f"{kind}:{missing}")
    assert "\n" not in str(caught.value) and not missing.exists()


# ----------------------------------------------------------------------------------------------
# npz


def test_npz_file_labelled_carves_stratified_splits(tmp_path: Path) -> None:
    write_npz(tmp_path / "toy.npz", [10, 10, 20], classes=np.array(["cat", "dog", "fox"]))
    data = load_data(f"npz:{tmp_path / 'toy.npz'}", val_fraction=0.1, test_fraction=0.2, seed=0)
    assert class_counts(data.test) == {"cat": 2, "dog": 2, "fox": 4}
    assert class_counts(data.val) == {"cat": 1, "dog": 1, "fox": 2}
    assert len(data.train) == 28 and data.train.classes == ["cat", "dog", "fox"]
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape[1:] == (3, 8, 8)
    assert data.info["origin"] == {"train": "carved from all", "val": "carved from all", "test": "carved from all"}
    assert data.info["loader"] == "npz-file" and data.info["sizes"] == {"train": 28, "val": 4, "test": 8}
    assert all(image_id.startswith("toy.npz#") for image_id in data.train.ids)
    check_disjoint(data)
    json.dumps(data.info)


def test_npz_pixels_are_converted_to_chw(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (3, 5, 7, 3), dtype=np.uint8)
    np.savez(tmp_path / "u.npz", x=images, files=np.array(["a.png", "b.png", "c.png"]))
    data = load_data(f"npz:{tmp_path / 'u.npz'}")
    assert data.val is None and data.test is None and data.info["origin"]["train"] == "all images"
    assert data.train.ids == ["a.png", "b.png", "c.png"] and not data.train.is_labelled
    assert torch.equal(data.train.image(1), torch.from_numpy(images[1]).permute(2, 0, 1))


def test_npz_greyscale_is_replicated(tmp_path: Path) -> None:
    grey = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    np.savez(tmp_path / "g.npz", x=grey, y=np.array([0, 1]))
    image = load_data(f"npz:{tmp_path / 'g.npz'}", val_fraction=0.0, test_fraction=0.0).train.image(0)
    assert torch.equal(image, torch.from_numpy(grey[0]).expand(3, 4, 4))


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"y": np.zeros(3, dtype=np.int64)}, "has no key 'x' \\(keys: y\\)"),
        ({"x": np.zeros((3, 4, 4, 3), dtype=np.float32)}, "key 'x' must be uint8"),
        ({"x": np.zeros((3, 4, 4, 4), dtype=np.uint8)}, r"key 'x' must be \[N, H, W, 3\]"),
        ({"x": np.zeros((3, 4, 4, 3), dtype=np.uint8), "y": np.zeros(2, dtype=np.int64)}, r"integer \[3\]"),
        ({"x": np.zeros((2, 4, 4, 3), dtype=np.uint8), "y": np.array([0, 2]), "classes": np.array(["a"])}, ">= the 1"),
        ({"x": np.zeros((0, 4, 4, 3), dtype=np.uint8)}, "no images"),
    ],
)
def test_npz_bad_arrays(tmp_path: Path, arrays: dict, message: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message) as caught:
        load_data(f"npz:{tmp_path / 'bad.npz'}")
    assert "bad.npz" in str(caught.value)


def test_npz_corrupt_or_npy_file(tmp_path: Path) -> None:
    (tmp_path / "corrupt.npz").write_bytes(b"garbage" * 10)
    with data_error("cannot read npz file ", "corrupt.npz"):
        load_data(f"npz:{tmp_path / 'corrupt.npz'}")
    np.save(tmp_path / "plain.npy", np.zeros((2, 4, 4, 3), dtype=np.uint8))
    with data_error("plain.npy is not an npz archive"):
        load_data(f"npz:{tmp_path / 'plain.npy'}")


def test_npz_dir_train_val_uses_val_as_test(tmp_path: Path) -> None:
    write_npz(tmp_path / "toy_16_train.npz", [20, 20])
    write_npz(tmp_path / "toy_16_val.npz", [5, 5])
    data = load_data(f"npz:{tmp_path}", val_fraction=0.1)
    assert len(data.test) == 10 and data.test.ids[0] == "toy_16_val.npz#0"
    assert class_counts(data.val) == {"0": 2, "1": 2} and len(data.train) == 36
    assert data.info["origin"] == {"train": "official", "val": "carved from train", "test": "official"}
    assert data.info["sources"] == {"train": "toy_16_train.npz", "test": "toy_16_val.npz"}
    assert "official val split is the test split" in data.info["notes"][0]


def test_npz_dir_official_splits_and_class_alignment(tmp_path: Path) -> None:
    write_npz(tmp_path / "d_train.npz", [3, 3, 3], classes=np.array(["a", "b", "c"]))
    write_npz(tmp_path / "d_val.npz", [2, 2, 2], classes=np.array(["a", "b", "c"]))
    write_npz(tmp_path / "d_test.npz", [1, 2], classes=np.array(["c", "a"]))  # other order, one class missing
    data = load_data(f"npz:{tmp_path}")
    assert data.info["origin"] == {"train": "official", "val": "official", "test": "official"}
    assert data.test.classes == ["a", "b", "c"] and data.test.labels.tolist() == [2, 0, 0]
    assert (len(data.train), len(data.val), len(data.test)) == (9, 6, 3)


def test_npz_dir_layout_errors(tmp_path: Path) -> None:
    write_npz(tmp_path / "a_train.npz", [2, 2])
    write_npz(tmp_path / "b_train.npz", [2, 2])
    with data_error("exactly one ", " train: a_train.npz, b_train.npz; val: none"):
        load_data(f"npz:{tmp_path}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with data_error("train: none"):
        load_data(f"npz:{empty}")


def test_npz_dir_labelled_and_unlabelled_mix(tmp_path: Path) -> None:
    write_npz(tmp_path / "d_train.npz", [2, 2])
    np.savez(tmp_path / "d_test.npz", x=np.zeros((2, 4, 4, 3), dtype=np.uint8))
    with data_error("train is labelled but d_test.npz is not"):
        load_data(f"npz:{tmp_path}")


def test_npz_dir_unknown_test_class(tmp_path: Path) -> None:
    write_npz(tmp_path / "d_train.npz", [2, 2], classes=np.array(["a", "b"]))
    write_npz(tmp_path / "d_test.npz", [1, 1], classes=np.array(["a", "z"]))
    with data_error("d_test.npz has 1 classes that train lacks: z"):
        load_data(f"npz:{tmp_path}")


# ----------------------------------------------------------------------------------------------
# Folders


def test_folder_class_layout(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"cat": 10, "dog": 10})
    (tmp_path / "README.txt").write_text("not an image")
    data = load_data(f"folder:{tmp_path}")
    assert data.info["loader"] == "folder-classes" and data.train.classes == ["cat", "dog"]
    assert class_counts(data.test) == {"cat": 2, "dog": 2} and class_counts(data.val) == {"cat": 1, "dog": 1}
    assert data.train.images.shape == (14, 3, 8, 8)
    assert all(image_id.startswith(("cat/img_", "dog/img_")) for image_id in data.train.ids)
    everything = concat(list(data.named().values()))
    expected = torch.from_numpy(np.array(Image.open(tmp_path / "dog" / "img_003.png"))).permute(2, 0, 1)
    assert torch.equal(everything.image(everything.ids.index("dog/img_003.png")), expected)
    check_disjoint(data)


def test_folder_split_layout(tmp_path: Path) -> None:
    write_class_folders(tmp_path / "train", {"a": 10, "b": 10})
    write_class_folders(tmp_path / "val", {"a": 3, "b": 3}, suffix=".JPG")
    data = load_data(f"folder:{tmp_path}")
    assert data.info["loader"] == "folder-splits"
    assert data.info["sources"] == {"train": "train/", "test": "val/"}
    assert len(data.test) == 6 and data.test.ids[0] == "val/a/img_000.JPG"
    assert class_counts(data.val) == {"a": 1, "b": 1} and len(data.train) == 18


def test_folder_flat_unlabelled_and_resize(tmp_path: Path) -> None:
    write_image(tmp_path / "wide.jpg", size=(40, 20))
    write_image(tmp_path / "tall.webp", size=(12, 30))
    write_image(tmp_path / "square.bmp", size=(9, 9))
    data = load_data(f"folder:{tmp_path}", cache_short_side=6)
    assert data.info["loader"] == "folder-flat" and data.val is None and data.test is None
    assert data.train.ids == ["square.bmp", "tall.webp", "wide.jpg"]
    assert [tuple(data.train.image(index).shape) for index in range(3)] == [(3, 6, 6), (3, 15, 6), (3, 6, 12)]
    assert isinstance(data.train.images, list)
    again = load_data(f"folder:{tmp_path}", cache_short_side=6)
    assert fingerprint(again.train) == data.info["fingerprints"]["train"]


def test_folder_uniform_sizes_are_stacked(tmp_path: Path) -> None:
    for index in range(3):
        write_image(tmp_path / f"{index}.png", size=(16, 10), seed=index)
    data = load_data(f"folder:{tmp_path}", cache_short_side=5)
    assert isinstance(data.train.images, torch.Tensor) and data.train.images.shape == (3, 3, 5, 8)


def test_folder_corrupt_image_is_named(tmp_path: Path) -> None:
    write_class_folders(tmp_path, {"cat": 3, "dog": 3})
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with data_error(f"cannot read image {tmp_path / 'dog' / 'broken.jpg'}"):
        load_data(f"folder:{tmp_path}")


def test_folder_truncated_image_is_named(tmp_path: Path) -> None:
    write_image(tmp_path / "ok.png", size=(16, 16))
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with data_error("cannot read image ", "cut.png"):
        load_data(f"folder:{tmp_path}")


def test_folder_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with data_error(f"no images or class folders in {empty}"):
        load_data(f"folder:{empty}")
    classes = tmp_path / "classes"
    write_class_folders(classes, {"cat": 2})
    (classes / "dog").mkdir()
    with data_error(f"class folder {classes / 'dog'} has no images"):
        load_data(f"folder:{classes}")
    write_image(classes / "loose.png")
    with data_error("holds both images and sub-folders"):
        load_data(f"folder:{classes}")
    not_a_folder = tmp_path / "file.png"
    write_image(not_a_folder)
    with data_error(f"image folder not found: {not_a_folder}"):
        load_data(f"folder:{not_a_folder}")


# ----------------------------------------------------------------------------------------------
# Flowers-102


FLOWER_LABELS = [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
FLOWER_SETS = {"trnid": [1, 5, 9], "valid": [2, 6, 10], "tstid": [3, 4, 7, 8, 11, 12]}


def write_flowers(base: Path) -> None:
    from scipy.io import savemat

    for number in range(1, len(FLOWER_LABELS) + 1):
        write_image(base / "jpg" / f"image_{number:05d}.jpg", size=(12, 10) if number % 2 else (10, 14), seed=number)
    savemat(base / "imagelabels.mat", {"labels": np.array([FLOWER_LABELS], dtype=np.uint8)})
    savemat(base / "setid.mat", {key: np.array([numbers], dtype=np.uint16) for key, numbers in FLOWER_SETS.items()})


@pytest.mark.parametrize("nested", [False, True])
def test_flowers102(tmp_path: Path, nested: bool) -> None:
    write_flowers(tmp_path / "flowers-102" if nested else tmp_path)
    data = load_data(f"flowers102:{tmp_path}", cache_short_side=8)
    assert (len(data.train), len(data.val), len(data.test)) == (3, 3, 6)
    assert data.train.classes == ["1", "2", "3"] and data.train.labels.tolist() == [0, 1, 2]
    assert data.test.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.train.ids == ["jpg/image_00001.jpg", "jpg/image_00005.jpg", "jpg/image_00009.jpg"]
    assert data.info["origin"] == {"train": "official", "val": "official", "test": "official"}
    assert {tuple(image.shape) for image in data.test.images} == {(3, 8, 10), (3, 11, 8)}


def test_flowers102_errors(tmp_path: Path) -> None:
    with data_error(f"Flowers-102 not found in {tmp_path} (no jpg, imagelabels.mat, setid.mat in {tmp_path})"):
        load_data(f"flowers102:{tmp_path}")
    write_flowers(tmp_path)
    (tmp_path / "setid.mat").unlink()
    with data_error(f"(no setid.mat in {tmp_path}): run with --download, or place 102flowers.tgz", "/flowers-102 "):
        load_data(f"flowers102:{tmp_path}")
    from scipy.io import savemat

    savemat(tmp_path / "setid.mat", {"trnid": np.array([[1]]), "tstid": np.array([[2]])})
    with data_error("setid.mat has no key 'valid'"):
        load_data(f"flowers102:{tmp_path}")
    savemat(tmp_path / "setid.mat", {"trnid": np.array([[1]]), "valid": np.array([[99]]), "tstid": np.array([[2]])})
    with data_error("'valid' must list image numbers in [1, 12]"):
        load_data(f"flowers102:{tmp_path}")
    (tmp_path / "imagelabels.mat").write_bytes(b"not a mat file")
    with data_error("cannot read ", "imagelabels.mat"):
        load_data(f"flowers102:{tmp_path}")


def test_flowers102_missing_image_is_named(tmp_path: Path) -> None:
    write_flowers(tmp_path)
    (tmp_path / "jpg" / "image_00007.jpg").unlink()
    with data_error("cannot read image ", "image_00007.jpg"):
        load_data(f"flowers102:{tmp_path}")


# ----------------------------------------------------------------------------------------------
# Oxford-IIIT Pets


PETS = {"Abyssinian": 1, "american_bulldog": 2, "Bengal": 6}


def write_pets(base: Path, trainval: int = 10, test: int = 2) -> None:
    header = "#Image CLASS-ID SPECIES BREED ID\n#ID: 1:37 Class ids\n"
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    for breed, class_id in sorted(PETS.items(), key=lambda item: item[0].lower()):
        for number in range(1, trainval + test + 1):
            write_image(base / "images" / f"{breed}_{number}.jpg", size=(9, 7), seed=number)
            split = "trainval" if number <= trainval else "test"
            lines[split].append(f"{breed}_{number} {class_id} {1 + class_id % 2} {number}")
    (base / "annotations").mkdir(parents=True)
    for split, split_lines in lines.items():
        (base / "annotations" / f"{split}.txt").write_text(header + "\n".join(split_lines) + "\n")


@pytest.mark.parametrize("nested", [False, True])
def test_pets37(tmp_path: Path, nested: bool) -> None:
    write_pets(tmp_path / "oxford-iiit-pet" if nested else tmp_path)
    data = load_data(f"pets37:{tmp_path}", val_fraction=0.1)
    assert data.train.classes == ["Abyssinian", "american_bulldog", "Bengal"]
    assert class_counts(data.test) == {"Abyssinian": 2, "american_bulldog": 2, "Bengal": 2}
    assert class_counts(data.val) == {"Abyssinian": 1, "american_bulldog": 1, "Bengal": 1}
    assert len(data.train) == 27 and data.info["origin"]["val"] == "carved from train"
    assert data.info["sources"] == {"train": "annotations/trainval.txt", "test": "annotations/test.txt"}
    assert data.test.ids[0] == "images/Abyssinian_11.jpg"
    assert isinstance(data.train.images, torch.Tensor) and data.train.images.shape[1:] == (3, 7, 9)
    check_disjoint(data)


def test_pets37_errors(tmp_path: Path) -> None:
    with data_error(f"Oxford-IIIT Pets not found in {tmp_path} (no images, annotations in {tmp_path})"):
        load_data(f"pets37:{tmp_path}")
    write_pets(tmp_path, trainval=2, test=1)
    test_list = tmp_path / "annotations" / "test.txt"
    test_list.write_text(test_list.read_text() + "Bengal_x\n")
    with data_error(f"{test_list}:6: expected"):
        load_data(f"pets37:{tmp_path}")
    test_list.write_text("Abyssinian_3 2 1 1\n")
    with data_error("class id 2 is both american_bulldog and Abyssinian"):
        load_data(f"pets37:{tmp_path}")
    test_list.unlink()
    with data_error(f"missing file {test_list}"):
        load_data(f"pets37:{tmp_path}")


# ----------------------------------------------------------------------------------------------
# ImageNet-100


def test_imagenet100_wnid_list() -> None:
    wnids = imagenet100_wnids()
    assert len(wnids) == len(set(wnids)) == 100 and wnids == sorted(wnids)
    assert all(wnid.startswith("n") and len(wnid) == 9 for wnid in wnids)


@pytest.fixture(scope="module")
def imagenet_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All 100 WNIDs with 2 train and 1 val image each, plus a class outside the list."""
    root = tmp_path_factory.mktemp("imagenet")
    for index, wnid in enumerate([*imagenet100_wnids(), "n99999999"]):
        for number in range(2):
            write_image(root / "train" / wnid / f"{wnid}_{number}.JPEG", size=(6, 5), seed=index)
        write_image(root / "val" / wnid / f"ILSVRC2012_val_{index:08d}.JPEG", size=(5, 6), seed=index)
    return root


def test_imagenet100(imagenet_root: Path) -> None:
    data = load_data(f"imagenet100:{imagenet_root}", cache_short_side=4)
    wnids = imagenet100_wnids()
    assert data.train.classes == wnids and data.info["num_classes"] == 100
    assert (len(data.train), len(data.val), len(data.test)) == (100, 100, 100)
    assert data.test.labels.tolist() == list(range(100))
    assert data.test.ids[0] == f"val/{wnids[0]}/ILSVRC2012_val_00000000.JPEG"
    assert [image_id.split("/")[1] for image_id in data.val.ids] == [wnids[label] for label in data.val.labels]
    assert data.info["origin"] == {"train": "official", "val": "carved from train", "test": "official"}
    assert data.train.images.shape == (100, 3, 4, 5) and data.test.images.shape == (100, 3, 5, 4)


def test_imagenet100_missing_wnids(tmp_path: Path) -> None:
    for wnid in imagenet100_wnids()[:3]:
        write_image(tmp_path / "train" / wnid / "a.JPEG")
        write_image(tmp_path / "val" / wnid / "b.JPEG")
    fourth = imagenet100_wnids()[3]
    with data_error(f"{tmp_path / 'train'} lacks 97 of the 100 ", f"class folders (first: {fourth}"):
        load_data(f"imagenet100:{tmp_path}")
    (tmp_path / "train").rename(tmp_path / "training")
    with data_error(f"ImageNet folder not found: {tmp_path / 'train'}"):
        load_data(f"imagenet100:{tmp_path}")


# ----------------------------------------------------------------------------------------------
# Imagenette


IMAGENETTE_WNIDS = ["n01440764", "n02102040"]


def write_imagenette(base: Path, train: int = 5, val: int = 2) -> None:
    """The official ``imagenette2-160`` layout: ``train/<wnid>/*.JPEG``, ``val/<wnid>/*.JPEG`` and the labels csv."""
    for index, wnid in enumerate(IMAGENETTE_WNIDS):
        for split, count in (("train", train), ("val", val)):
            for number in range(count):
                write_image(base / split / wnid / f"{wnid}_{number}.JPEG", size=(12, 10), seed=10 * index + number)
    (base / "noisy_imagenette.csv").write_text("path,noisy_labels_0,is_valid\n")


@pytest.mark.parametrize("nested", [False, True])
def test_imagenette(tmp_path: Path, nested: bool) -> None:
    write_imagenette(tmp_path / "imagenette2-160" if nested else tmp_path)
    data = load_data(f"imagenette:{tmp_path}", val_fraction=0.2, cache_short_side=5)
    assert data.train.classes == IMAGENETTE_WNIDS and data.info["loader"] == "imagenette"
    assert (len(data.train), len(data.val), len(data.test)) == (8, 2, 4)
    assert data.info["origin"] == {"train": "official", "val": "carved from train", "test": "official"}
    assert data.info["sources"] == {"train": "train/", "test": "val/"}
    assert data.test.ids[0] == f"val/{IMAGENETTE_WNIDS[0]}/{IMAGENETTE_WNIDS[0]}_0.JPEG"
    assert data.test.labels.tolist() == [0, 0, 1, 1] and data.train.images.shape[1:] == (3, 5, 6)
    check_disjoint(data)


def test_imagenette_errors(tmp_path: Path) -> None:
    write_imagenette(tmp_path)
    (tmp_path / "val").rename(tmp_path / "valid")
    with data_error(f"Imagenette not found in {tmp_path} (no val in {tmp_path}): run with --download"):
        load_data(f"imagenette:{tmp_path}")
    (tmp_path / "valid").rename(tmp_path / "val")
    (tmp_path / "val" / "n99999999").mkdir()
    with data_error(f"class folder {tmp_path / 'val' / 'n99999999'} has no images"):
        load_data(f"imagenette:{tmp_path}")


# ----------------------------------------------------------------------------------------------
# CIFAR-10


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def write_cifar(base: Path, rows: int = 4) -> None:
    base.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{number}" for number in range(1, 6)] + ["test_batch"]
    for batch_index, name in enumerate(names):
        data = np.random.default_rng(batch_index).integers(0, 256, (rows, 3072), dtype=np.uint8)
        data[0, :1024], data[0, 1024:2048], data[0, 2048:] = 10, 20, 30  # planes R, G, B of row 0
        labels = [(batch_index * rows + row) % 10 for row in range(rows)]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": data, b"filenames": [b"x.png"] * rows}
        (base / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"label_names": [name.encode() for name in CIFAR_CLASSES], b"num_vis": 3072}
    (base / "batches.meta").write_bytes(pickle.dumps(meta))


def test_cifar10(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar-10-batches-py")
    data = load_data(f"cifar10:{tmp_path}", val_fraction=0.2)
    assert data.train.classes == CIFAR_CLASSES
    assert len(data.test) == 4 and len(data.train) == len(data.val) == 10  # 2 per class: 1 each
    assert data.test.labels.tolist() == [0, 1, 2, 3] and data.test.ids[1] == "test_batch#1"
    first = data.test.image(0)
    assert first.shape == (3, 32, 32) and first[:, 5, 7].tolist() == [10, 20, 30]
    assert data.info["sources"] == {"train": "data_batch_1..5", "test": "test_batch"}
    check_disjoint(data)


def test_cifar10_errors(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    (tmp_path / "test_batch").unlink()
    with data_error(f"CIFAR-10 not found in {tmp_path} (no test_batch in {tmp_path})"):
        load_data(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": os.getcwd, b"labels": []}))
    with data_error("test_batch: refusing to load"):
        load_data(f"cifar10:{tmp_path}")
    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    with data_error("test_batch: 'data' must be uint8 [n, 3072]"):
        load_data(f"cifar10:{tmp_path}")
    (tmp_path / "batches.meta").unlink()
    with data_error("(no batches.meta in "):
        load_data(f"cifar10:{tmp_path}")


# ----------------------------------------------------------------------------------------------
# Reproducibility and the real data


def test_splits_are_reproducible_per_seed(tmp_path: Path) -> None:
    write_npz(tmp_path / "toy.npz", [20, 20, 20])
    spec = f"npz:{tmp_path / 'toy.npz'}"
    first, again, other = load_data(spec, seed=0), load_data(spec, seed=0), load_data(spec, seed=1)
    assert first.info["fingerprints"] == again.info["fingerprints"]
    assert first.val.ids == again.val.ids and first.test.ids == again.test.ids
    assert first.info["fingerprints"]["test"] != other.info["fingerprints"]["test"]
    assert first.info["fingerprints"]["val"] != other.info["fingerprints"]["val"]
    assert first.info["sizes"] == other.info["sizes"]


def test_zero_fractions_give_no_split(tmp_path: Path) -> None:
    write_npz(tmp_path / "toy.npz", [5, 5])
    data = load_data(f"npz:{tmp_path / 'toy.npz'}", val_fraction=0.0, test_fraction=0.0)
    assert data.val is None and data.test is None and len(data.train) == 10
    assert data.info["origin"] == {"train": "carved from all", "val": None, "test": None}
    assert set(data.info["fingerprints"]) == {"train"}


def test_imagewoof_real_data() -> None:
    root = IMAGEWOOF
    require_dataset(root / "imagewoof_96_train.npz")
    data = load_data(f"npz:{root}", val_fraction=0.1, seed=0)
    assert (len(data.train), len(data.val), len(data.test)) == (2700, 300, 1000)
    assert all(ident.startswith("val/") for ident in data.test.ids)
    assert set(class_counts(data.val).values()) == {30} and set(class_counts(data.test).values()) == {100}
    for split in data.named().values():
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 96, 96)
    check_disjoint(data)
    assert data.info["origin"] == {"train": "official", "val": "carved from train", "test": "official"}
    everything = concat([data.train, data.val, data.test])
    assert len(everything) == 4000 and everything.num_classes == 10
