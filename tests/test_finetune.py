"""``scarce finetune`` end to end: a label budget, the fixed-recipe protocol, the classifier file that
``scarce predict`` uses, resume, one-line errors, and a learning test against random init."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from benchmarks.finetune_margin import finetuned_pair
from PIL import Image

from scarce.cli import main
from scarce.config import load_config
from scarce.data.datasets import load_data
from scarce.models.classifier import load_classifier
from scarce.pretrain import pretrain
from tests.helpers import IMAGENETTE, TINY_OVERRIDES, needs_data

pytestmark = needs_data

QUIET = ["--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]

# Calibrated by `python -m benchmarks.finetune_margin` (benchmarks/results/finetune_margin.md, digits):
# fine-tuned minus random init over seeds 0-2 was +0.288 / +0.246 / +0.274 (the test runs seed 0).
MARGIN = 0.1


@pytest.fixture(scope="module")
def pretrained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("ssl") / "run"
    pretrain(
        load_config("scott-tiny", [*TINY_OVERRIDES, "schedule.epochs=1"]), run, show_progress=False, log=lambda _: None
    )
    return run


@pytest.fixture(scope="module")
def finetuned_run(pretrained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ft") / "ft"
    assert _finetune(pretrained_run, out) == 0
    return out


def _finetune(run: Path, out: Path, *extra: str) -> int:
    arguments = ["finetune", str(run), "--data", f"npz:{IMAGENETTE}", "-o", str(out), "--labels-per-class", "3"]
    return main([*arguments, "--epochs", "2", "--batch-size", "10", *QUIET, *extra])


def test_a_budgeted_fine_tune_tests_its_last_epoch_once_and_writes_a_classifier(
    pretrained_run: Path, finetuned_run: Path
) -> None:
    results = json.loads((finetuned_run / "results.json").read_text())
    protocol = results["protocol"]
    assert protocol["labels_used"] == {"train": 30, "val": 0}
    assert protocol["selection"].startswith("none: fixed recipe, the last epoch")
    assert protocol["pretraining"] == f"fine-tuned from {pretrained_run}"
    row = results["results"][0]
    assert row["val"] is None and row["selected"]["epoch"] == 2 and 0.0 <= row["test"]["top1"] <= 1.0
    config = load_config(str(finetuned_run / "config.yaml"))
    assert config.method == "finetune" and config.finetune.layer_decay == 1.0  # the finetune-cpu preset
    assert config.model.depth == 2 and config.model.embed_dim == 64  # the pretrained run's architecture
    classifier = load_classifier(finetuned_run)
    assert classifier.classes == load_data(f"npz:{IMAGENETTE}").train.classes
    assert classifier.metadata["selected"]["epoch"] == 2


def test_random_init_is_the_same_recipe_from_scratch(pretrained_run: Path, tmp_path: Path) -> None:
    assert _finetune(pretrained_run, tmp_path / "scratch", "--random-init") == 0
    results = json.loads((tmp_path / "scratch" / "results.json").read_text())
    assert results["protocol"]["pretraining"] == "none (random init)"
    assert load_config(str(tmp_path / "scratch" / "config.yaml")).finetune.init is None


def test_a_preset_gives_the_scratch_baseline_the_architecture_of_its_runs(pretrained_run: Path, tmp_path: Path) -> None:
    from scarce.commands.finetune import architecture_overrides

    assert architecture_overrides("scott-tiny", "context", preset_allowed=True) == architecture_overrides(
        str(pretrained_run), "context"
    )
    assert main(["finetune", "scott-tiny", "--random-init", "--data", f"npz:{IMAGENETTE}", "-o", str(tmp_path / "s"),
                 "--labels-per-class", "3", "--epochs", "1", "--batch-size", "10", *QUIET]) == 0  # fmt: skip
    config = load_config(str(tmp_path / "s" / "config.yaml"))
    assert config.finetune.init is None and config.model.embed_dim == load_config("scott-tiny").model.embed_dim


def test_fine_tuning_resumes_exactly(pretrained_run: Path, finetuned_run: Path, tmp_path: Path) -> None:
    assert _finetune(pretrained_run, tmp_path / "split", "--stop-after-epoch", "1") == 0
    assert main(["finetune", str(pretrained_run), "-o", str(tmp_path / "split"), "--resume", *QUIET]) == 0
    whole = [json.loads(line)["loss"] for line in (finetuned_run / "epochs.jsonl").read_text().splitlines()]
    split = [json.loads(line)["loss"] for line in (tmp_path / "split" / "epochs.jsonl").read_text().splitlines()]
    assert split == pytest.approx(whole, rel=1e-5)


def test_predict_labels_a_folder_with_a_fine_tuned_run(finetuned_run: Path, tmp_path: Path) -> None:
    test = load_data(f"npz:{IMAGENETTE}").test
    assert test is not None
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for index in range(5):
        Image.fromarray(np.ascontiguousarray(test.image(index).permute(1, 2, 0).numpy())).save(folder / f"{index}.png")
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(finetuned_run), "--data", f"folder:{folder}", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5 and all(row["predicted_class"] in test.classes for row in rows)


def test_bad_runs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _finetune(tmp_path / "missing", tmp_path / "out") == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no such run directory" in error
    (tmp_path / "empty").mkdir()
    assert _finetune(tmp_path / "empty", tmp_path / "out") == 2
    assert "holds neither encoder.safetensors nor checkpoints/last.pt" in capsys.readouterr().err
    assert _finetune(Path("scott-tiny"), tmp_path / "out") == 2  # a preset has no weights to fine-tune
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "scott-tiny is a preset, not a pretrained run" in error
    assert not (tmp_path / "out").exists()


def test_fine_tuning_a_pretrained_encoder_beats_random_init_with_10_labels_per_class(digits_workdir: Path) -> None:
    """Real images (scikit-learn's handwritten digits, :mod:`benchmarks.digits`): the encoder trained
    on half A, fine-tuned on 10 labels per class of half B, beats the same fine-tune from random init."""
    finetuned, scratch = finetuned_pair(0, digits_workdir)
    assert finetuned > scratch + MARGIN, f"fine-tuned {finetuned:.3f} vs random init {scratch:.3f}"
