"""Export a trained classifier to ONNX or TorchScript (``scarce export``).

The exported model is :class:`ImageClassifier`: float32 RGB images in ``[0, 1]``, ``[B, 3, S, S]``
(``S`` = the classifier's ``img_size``; resize and crop them as evaluation does, see
:class:`scarce.data.transforms.EvalTransform`) -> logits ``[B, C]``, with the ImageNet
normalisation inside and a dynamic batch axis. The class names travel with the file: ONNX
``metadata_props`` ``classes`` (a JSON list) and ``scarce`` (JSON: ``img_size``, the input and
output contract); TorchScript extra files ``classes.json`` and ``scarce.json``, the same JSON.

ONNX goes through ``torch.onnx.export(..., dynamo=True)`` (needs the ``onnx`` and ``onnxscript``
packages): the TorchScript-based ONNX exporter cannot export the token encoders' LayerNorm.
TorchScript is a trace (``torch.jit.trace``), in eval mode and without token masks; the models'
Python control flow depends on shapes and configuration only, so the trace is exact for any batch.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from scarce.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from scarce.errors import ConfigError
from scarce.models.classifier import Classifier, LoadedClassifier

ExportFormat = Literal["onnx", "torchscript"]
EXPORT_SUFFIXES: dict[str, str] = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}
"""Format -> the suffix of its default file, next to the classifier's (``RUN/classifier.onnx``)."""

INPUT_CONTRACT = "float32 RGB images in [0, 1], [B, 3, S, S], S = img_size; ImageNet normalisation is inside"
OUTPUT_CONTRACT = "logits [B, C], C = len(classes), in the order of classes"


class ImageClassifier(nn.Module):
    """``forward(images float [B, 3, S, S] in [0, 1]) -> logits [B, C]``: ``(x - mean) / std`` with
    the ImageNet statistics (what :func:`scarce.data.transforms.normalize_batch` does to ``255 x``),
    then the classifier."""

    mean: Tensor
    std: Tensor

    def __init__(self, classifier: Classifier) -> None:
        super().__init__()
        self.classifier = classifier
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier((images - self.mean) / self.std)


def default_export_path(classifier_file: Path, export_format: ExportFormat) -> Path:
    """``RUN/classifier.safetensors`` -> ``RUN/classifier.onnx`` or ``RUN/classifier.torchscript.pt``."""
    return classifier_file.with_name(classifier_file.stem + EXPORT_SUFFIXES[export_format])


def export_info(loaded: LoadedClassifier) -> dict[str, object]:
    """What the exported file says about itself besides the classes (stored as JSON)."""
    return {
        "img_size": loaded.img_size,
        "input": INPUT_CONTRACT,
        "output": OUTPUT_CONTRACT,
        "head": loaded.metadata.get("head"),
        "source": loaded.path.name,
    }


def check_export_format(export_format: str) -> ExportFormat:
    """``export_format`` if it can be written here; else a one-line :class:`ConfigError`."""
    if export_format not in EXPORT_SUFFIXES:
        raise ConfigError(f"unknown export format {export_format!r}; known: {', '.join(EXPORT_SUFFIXES)}")
    if export_format == "onnx":
        missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
        if missing:
            raise ConfigError(
                f"--format onnx needs the {' and '.join(missing)} package(s): pip install onnx onnxscript "
                "(--format torchscript needs nothing more)"
            )
    return export_format  # type: ignore[return-value]


def _export_onnx(module: ImageClassifier, example: Tensor, metadata: dict[str, str], out: Path) -> None:
    from scarce.engine.checkpoint import atomic_write

    batch = torch.export.Dim("batch")
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        verbose=False,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes={"images": {0: batch}},
    )
    assert program is not None  # f=None: the program is returned, not written
    program.model.metadata_props.update(metadata)
    atomic_write(out, lambda temporary: program.save(temporary, external_data=False))


def _export_torchscript(module: ImageClassifier, example: Tensor, extra_files: dict[str, str], out: Path) -> None:
    from scarce.engine.checkpoint import atomic_write

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks become constants: fine for one S
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)  # recent torch
        traced = torch.jit.trace(module, example)
        atomic_write(out, lambda temporary: torch.jit.save(traced, str(temporary), _extra_files=extra_files))


@torch.no_grad()
def export_classifier(loaded: LoadedClassifier, export_format: str, out: Path | None = None) -> Path:
    """Write ``loaded`` as an :class:`ImageClassifier` in ``export_format`` to ``out`` (default:
    :func:`default_export_path`); returns the path written. Runs on the CPU."""
    fmt = check_export_format(export_format)
    out = out if out is not None else default_export_path(loaded.path, fmt)
    if out.is_dir():
        raise ConfigError(f"-o must be a file, {out} is a folder")
    module = ImageClassifier(loaded.model).cpu().eval()
    size = loaded.img_size
    example = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))  # batch 2: not specialised to 1
    classes, info = json.dumps(loaded.classes), json.dumps(export_info(loaded))
    if fmt == "onnx":
        _export_onnx(module, example, {"classes": classes, "scarce": info}, out)
    else:
        _export_torchscript(module, example, {"classes.json": classes, "scarce.json": info}, out)
    return out
