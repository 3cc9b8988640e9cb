"""Classify a folder of images with a trained classifier (``scarce predict``).

The images of ``folder:DIR`` are found recursively (sub-folders are not classes: the path relative
to ``DIR`` names an image), decoded to RGB, made into the classifier's input exactly as evaluation
does (:func:`scarce.eval.features.eval_view`: short side to ``S / 0.875``, centre crop ``S x S``)
and classified in batches, so only one batch of decoded images is in memory at a time. A file
that cannot be decoded is skipped and reported, never fatal; a folder with no readable image is.

The CSV (:func:`write_predictions_csv`) has the columns ``file, predicted_class, confidence,
class_1, probability_1, ..., class_k, probability_k`` (``k = min(top_k, number of classes)``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from scarce.data.formats.images import IMAGE_EXTENSIONS, decode_image
from scarce.data.image_set import ImageSet
from scarce.errors import ConfigError, DataError
from scarce.eval.features import eval_view
from scarce.models.classifier import LoadedClassifier

PREDICT_EXTENSIONS = IMAGE_EXTENSIONS | {".gif"}
"""Image file extensions ``scarce predict`` reads (compared in lower case); a GIF gives its first frame."""

SortOrder = Literal["file", "confidence"]
SORT_ORDERS: tuple[SortOrder, ...] = ("file", "confidence")


@dataclass(frozen=True)
class Prediction:
    """The ``k`` most probable classes of one image, most probable first."""

    file: str
    classes: tuple[str, ...]
    probabilities: tuple[float, ...]

    @property
    def predicted_class(self) -> str:
        return self.classes[0]

    @property
    def confidence(self) -> float:
        """The softmax probability of the predicted class."""
        return self.probabilities[0]


@dataclass
class PredictionResult:
    """Predictions in file order, and the files that could not be decoded: ``(path, reason)``."""

    predictions: list[Prediction] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def folder_of_spec(spec: str) -> Path:
    """``"folder:DIR"`` -> ``Path("DIR")``; any other spec is a one-line :class:`DataError`."""
    kind, colon, location = spec.partition(":")
    if kind != "folder" or not colon or not location:
        raise DataError(f"--data must be folder:DIR (a folder of images), got {spec!r}")
    return Path(location).expanduser()


def find_images(folder: Path) -> list[Path]:
    """The image files under ``folder`` at any depth, sorted by their path relative to ``folder``
    (hidden files and folders skipped). A missing folder, or one without image files, is a
    one-line :class:`DataError`."""
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    found = [
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in PREDICT_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    ]
    if not found:
        raise DataError(f"no image files ({', '.join(sorted(PREDICT_EXTENSIONS))}) in {folder} or its sub-folders")
    return sorted(found, key=lambda path: path.relative_to(folder).as_posix())


def _try_decode(path: Path) -> torch.Tensor | str:
    """uint8 ``[3, H, W]`` of ``path``, or why it cannot be read (one line)."""
    from scarce.engine.checkpoint import one_line

    try:
        return decode_image(path)
    except DataError as error:
        cause = error.__cause__ or error
        return one_line(f"{type(cause).__name__}: {cause}", 300)


def _batches(paths: Sequence[Path], batch_size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(paths), batch_size):
        yield paths[start : start + batch_size]


@torch.no_grad()
def predict_folder(
    classifier: LoadedClassifier,
    folder: Path,
    *,
    top_k: int = 5,
    batch_size: int = 64,
    device: torch.device | None = None,
) -> PredictionResult:
    """Classify every image file under ``folder`` (see the module docstring).

    Args:
        classifier: from :func:`scarce.models.classifier.load_classifier`; moved to ``device``.
        folder: searched recursively; the ``file`` of a prediction is the path relative to it.
        top_k: classes kept per image (at most the number of classes).
        batch_size: images decoded and classified at once.
        device: where the classifier runs (default: the CPU).

    Returns:
        The predictions in file order and the skipped files. A folder with no readable image is a
        one-line :class:`DataError`.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {top_k}")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    paths = find_images(folder)
    device = device or torch.device("cpu")
    model = classifier.model.to(device).eval()
    k = min(top_k, len(classifier.classes))
    result = PredictionResult()
    with ThreadPoolExecutor() as pool:  # PIL releases the GIL while decoding
        for chunk in _batches(paths, batch_size):
            decoded: list[torch.Tensor] = []
            names: list[str] = []
            for path, image in zip(chunk, pool.map(_try_decode, chunk), strict=True):
                if isinstance(image, str):
                    result.skipped.append((path, image))
                else:
                    decoded.append(image)
                    names.append(path.relative_to(folder).as_posix())
            if not decoded:
                continue
            inputs = eval_view(ImageSet(decoded, None, names), classifier.img_size)  # uint8 [b, 3, S, S]
            probabilities = model.logits(inputs.to(device)).float().softmax(dim=-1)  # [b, C]
            top_probabilities, top_indices = (part.cpu().tolist() for part in probabilities.topk(k, dim=-1))
            result.predictions += [
                Prediction(name, tuple(classifier.classes[index] for index in indices), tuple(values))
                for name, indices, values in zip(names, top_indices, top_probabilities, strict=True)
            ]
    if not result.predictions:
        path, reason = result.skipped[0]
        raise DataError(f"none of the {len(paths)} image files in {folder} could be read (first: {path}: {reason})")
    return result


def sort_predictions(predictions: Sequence[Prediction], by: SortOrder) -> list[Prediction]:
    """By ``file`` path, or by ``confidence``: the least sure first (ties by file)."""
    if by == "file":
        return sorted(predictions, key=lambda prediction: prediction.file)
    if by == "confidence":
        return sorted(predictions, key=lambda prediction: (prediction.confidence, prediction.file))
    raise ConfigError(f"unknown sort order {by!r}; known: {', '.join(SORT_ORDERS)}")


def prediction_columns(top_k: int) -> list[str]:
    """``file, predicted_class, confidence, class_1, probability_1, ..., class_k, probability_k``."""
    ranked = [name for rank in range(1, top_k + 1) for name in (f"class_{rank}", f"probability_{rank}")]
    return ["file", "predicted_class", "confidence", *ranked]


def write_predictions_csv(path: Path, predictions: Sequence[Prediction]) -> None:
    """Write ``predictions`` (all with the same ``k``) as CSV, atomically; probabilities with 6 decimals."""
    from scarce.engine.checkpoint import atomic_write

    top_k = len(predictions[0].classes) if predictions else 0

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(prediction_columns(top_k))
            for prediction in predictions:
                ranked = [
                    item
                    for name, probability in zip(prediction.classes, prediction.probabilities, strict=True)
                    for item in (name, f"{probability:.6f}")
                ]
                writer.writerow([prediction.file, prediction.predicted_class, f"{prediction.confidence:.6f}", *ranked])

    atomic_write(path, write)
