"""``scarce predict``: a folder of images -> one CSV row per readable image, unreadable ones skipped."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scarce.cli import main
from scarce.data.transforms import EvalTransform
from scarce.models.backbone import backbone_metadata, build_backbone
from scarce.models.classifier import CLASSIFIER_FILE, load_classifier, save_classifier
from scarce.models.encoder import EncoderConfig
from scarce.models.probes import build_probe
from scarce.models.resnet import ResNetConfig

CLASSES = ["cat", "dog", "fox"]
KINDS = ("scott", "resnet")


def tiny_backbone(kind: str) -> tuple[torch.nn.Module, str]:
    """A 32 px backbone and the head kind to put on it: SCOTT tokens + attentive head, or ResNet-18 + linear."""
    torch.manual_seed(0)
    if kind == "scott":
        return build_backbone(EncoderConfig(img_size=32, embed_dim=32, depth=1, num_heads=2, stride=8)), "simple"
    return build_backbone(ResNetConfig(img_size=32, cifar_stem=True)), "linear"


def save_tiny_classifier(run: Path, kind: str = "scott", classes: list[str] = CLASSES) -> Path:
    """``run/classifier.safetensors`` of a randomly initialised ``kind`` classifier."""
    encoder, head_kind = tiny_backbone(kind)
    head = build_probe(head_kind, int(encoder.embed_dim), len(classes))
    return save_classifier(run / CLASSIFIER_FILE, encoder, head, head_kind=head_kind, classes=classes, selected="test")


def save_encoder_only_run(run: Path) -> Path:
    """A pretraining-like run: ``encoder.safetensors`` and no classifier."""
    from safetensors.torch import save_file

    encoder, _ = tiny_backbone("scott")
    run.mkdir(parents=True, exist_ok=True)
    state = {key: value.contiguous() for key, value in encoder.state_dict().items()}
    save_file(state, str(run / "encoder.safetensors"), metadata=backbone_metadata(encoder))
    return run


def write_image(path: Path, size: tuple[int, int], seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """4 readable images of different sizes and formats (one in a sub-folder), one corrupt, one text file."""
    folder = tmp_path / "images"
    write_image(folder / "b.png", (40, 50), 1)
    write_image(folder / "a.jpg", (32, 32), 2)
    write_image(folder / "sub" / "c.PNG", (64, 48), 3)
    write_image(folder / "d.gif", (36, 36), 4)
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("not an image file: ignored")
    return folder


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def expected_probabilities(run: Path, folder: Path, files: list[str]) -> torch.Tensor:
    """Softmax of the classifier on each file, decoded and eval-transformed here: ``[M, C]``."""
    loaded = load_classifier(run)
    transform = EvalTransform(loaded.img_size)
    batch = []
    for name in files:
        with Image.open(folder / name) as image:
            array = np.array(image.convert("RGB"), dtype=np.uint8)
        batch.append(transform(torch.from_numpy(array).permute(2, 0, 1).contiguous()))
    return loaded.model.logits(torch.stack(batch)).softmax(dim=-1)


def predict(run: Path, data: str, out: Path, *extra: str) -> int:
    return main(["predict", str(run), "--data", data, "--out", str(out), "--device", "cpu", *extra])


@pytest.mark.parametrize("kind", KINDS)
def test_one_row_per_readable_image_matching_the_model(
    kind: str, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    save_tiny_classifier(run, kind)
    out = tmp_path / "predictions.csv"
    assert predict(run, f"folder:{images}", out, "--top-k", "2", "--batch-size", "3") == 0
    captured = capsys.readouterr()
    skipped = captured.err.splitlines()
    assert len(skipped) == 1 and skipped[0].startswith(f"skipped {images / 'broken.jpg'}: UnidentifiedImageError")
    assert f"4 predictions written to {out}; 1 unreadable images skipped" in captured.out

    columns, rows = read_csv(out)
    assert columns == ["file", "predicted_class", "confidence", "class_1", "probability_1", "class_2", "probability_2"]
    files = [row["file"] for row in rows]
    assert files == ["a.jpg", "b.png", "d.gif", "sub/c.PNG"]  # paths relative to the folder, in file order
    expected = expected_probabilities(run, images, files)
    for row, probabilities in zip(rows, expected, strict=True):
        top = probabilities.topk(2)
        assert [row["class_1"], row["class_2"]] == [CLASSES[int(index)] for index in top.indices]
        listed = torch.tensor([float(row["probability_1"]), float(row["probability_2"])])
        torch.testing.assert_close(listed, top.values, atol=1e-5, rtol=0)
        assert row["predicted_class"] == row["class_1"] and row["confidence"] == row["probability_1"]
        assert float(listed.sum()) <= 1 + 1e-5


def test_top_k_is_capped_at_the_classes_and_sort_confidence_is_ascending(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    save_tiny_classifier(run)
    out = tmp_path / "sure-last.csv"
    assert predict(run, f"folder:{images}", out, "--sort", "confidence") == 0  # --top-k 5 > 3 classes
    columns, rows = read_csv(out)
    assert columns[-2:] == ["class_3", "probability_3"]
    confidences = [float(row["confidence"]) for row in rows]
    assert confidences == sorted(confidences) and len(rows) == 4
    for row in rows:
        assert abs(sum(float(row[f"probability_{rank}"]) for rank in (1, 2, 3)) - 1) < 1e-5
    # the least sure image is the one with the smallest maximum probability of the model
    files = sorted(row["file"] for row in rows)
    maxima = expected_probabilities(run, images, files).max(dim=-1).values
    assert rows[0]["file"] == files[int(maxima.argmin())]


def test_only_unreadable_images_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    save_tiny_classifier(run)
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "x.jpg").write_bytes(b"garbage")
    write_image(folder / "y.png", (32, 32), 0)
    (folder / "y.png").write_bytes((folder / "y.png").read_bytes()[:40])  # truncated
    out = tmp_path / "p.csv"
    assert predict(run, f"folder:{folder}", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none of the 2 image files" in err[0] and "x.jpg" in err[0]
    assert not out.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("folder:{tmp}/missing", "image folder not found"),
        ("npz:{tmp}/x.npz", "--data must be folder:DIR"),
        ("folder:{tmp}/empty", "no image files"),
    ],
)
def test_bad_data_is_one_line_error(
    data: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    save_tiny_classifier(run)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    assert predict(run, data.format(tmp=tmp_path), tmp_path / "p.csv") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_run_without_classifier_is_one_line_error(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = save_encoder_only_run(tmp_path / "pretrain-run")
    out = tmp_path / "p.csv"
    assert predict(run, f"folder:{images}", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and CLASSIFIER_FILE in err[0] and str(run) in err[0]
    assert predict(run / "encoder.safetensors", f"folder:{images}", out) == 2  # the weights file itself
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a classifier" in err[0]
    assert not out.exists()
