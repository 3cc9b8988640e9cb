"""``scarce export``: ONNX and TorchScript files that give the classifier's logits on [0, 1] images."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from scarce.cli import main
from scarce.errors import ConfigError
from scarce.export import check_export_format
from scarce.models.classifier import CLASSIFIER_FILE, load_classifier
from tests.test_predict import CLASSES, KINDS, save_encoder_only_run, save_tiny_classifier

HAS_ONNX = all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxscript", "onnxruntime"))
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.load` is deprecated:FutureWarning")
FORMATS = [
    "torchscript",
    pytest.param(
        "onnx", marks=pytest.mark.skipif(not HAS_ONNX, reason="onnx, onnxscript or onnxruntime not installed")
    ),
]


def run_exported(path: Path, export_format: str, images: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """Logits of the exported file on float ``images [B, 3, S, S]``, and the class names stored in it."""
    if export_format == "torchscript":
        extra = {"classes.json": ""}
        module = torch.jit.load(str(path), _extra_files=extra)
        with torch.no_grad():
            return module(images), json.loads(extra["classes.json"])
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], {"images": images.numpy()})
    return torch.from_numpy(logits), json.loads(session.get_modelmeta().custom_metadata_map["classes"])


@pytest.mark.parametrize("export_format", FORMATS)
@pytest.mark.parametrize("kind", KINDS)
def test_exported_logits_match_the_classifier(
    kind: str, export_format: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    save_tiny_classifier(run, kind)
    assert main(["export", str(run), "--format", export_format]) == 0
    suffix = ".onnx" if export_format == "onnx" else ".torchscript.pt"
    path = run / f"classifier{suffix}"  # the default output, next to the classifier
    assert path.is_file() and str(path) in capsys.readouterr().out
    model = load_classifier(run).model
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 5):  # the batch axis is dynamic (the export traced a batch of 2)
        images = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8, generator=generator)
        logits, classes = run_exported(path, export_format, images.float() / 255)
        assert classes == CLASSES
        torch.testing.assert_close(logits, model.logits(images), atol=1e-4, rtol=0)


def test_output_path_and_stored_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    classifier = save_tiny_classifier(tmp_path / "run")
    out = tmp_path / "elsewhere" / "model.pt"
    assert main(["export", str(classifier), "--format", "torchscript", "-o", str(out)]) == 0
    extra = {"scarce.json": ""}
    torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["scarce.json"])["img_size"] == 32
    assert not (tmp_path / "run" / "classifier.torchscript.pt").exists()


def test_run_without_classifier_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = save_encoder_only_run(tmp_path / "pretrain-run")
    assert main(["export", str(run), "--format", "torchscript"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and CLASSIFIER_FILE in err[0] and str(run) in err[0]
    assert main(["export", str(run / "encoder.safetensors"), "--format", "torchscript"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a classifier" in err[0]
    assert main(["export", str(tmp_path / "nowhere"), "--format", "torchscript"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert sorted(path.name for path in run.iterdir()) == ["encoder.safetensors"]  # nothing written


def test_onnx_without_its_packages_is_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "onnxscript" else real_find_spec(name, *args)
    )
    with pytest.raises(ConfigError, match="pip install onnx onnxscript"):
        check_export_format("onnx")
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        check_export_format("tflite")
