"""``scarce distill``: the KD loss, a student that learns its teacher on real images, exact resume,
the student-vs-teacher record, and one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from scarce.cli import main
from scarce.config import load_config
from scarce.data.datasets import load_data
from scarce.eval.features import eval_view
from scarce.methods.distill import kd_loss
from scarce.models.backbone import build_backbone
from scarce.models.classifier import load_classifier
from scarce.models.probes import build_probe
from tests.helpers import needs_data

QUIET = ["--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]


def test_kd_loss_hand_computed() -> None:
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax: [0.75, 0.25]
    # KL(p || q) with p = [0.75, 0.25], q = [0.5, 0.5]
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert kd_loss(student, teacher, temperature=1.0).item() == pytest.approx(expected, rel=1e-5)
    # T = 2: softmax(t / 2) = [sqrt 3, 1] / (sqrt 3 + 1), times T^2 = 4
    p = torch.tensor([math.sqrt(3.0), 1.0]) / (math.sqrt(3.0) + 1.0)
    expected_t2 = 4.0 * float((p * (p / 0.5).log()).sum())
    assert kd_loss(student, teacher, temperature=2.0).item() == pytest.approx(expected_t2, rel=1e-5)
    assert kd_loss(teacher, teacher, temperature=3.0).item() == pytest.approx(0.0, abs=1e-6)


def _distill(classifier_run: Path, data_spec: str, out: Path, *extra: str) -> int:
    arguments = ["distill", "--teacher", str(classifier_run), "--student", "teacher", "--data", data_spec]
    return main([*arguments, "-o", str(out), "--batch-size", "20", "--set", "schedule.warmup_epochs=1", *QUIET, *extra])


def _agreement(student: torch.nn.Module, teacher: torch.nn.Module, images: torch.Tensor) -> float:
    with torch.no_grad():
        return float((student.logits(images).argmax(-1) == teacher.logits(images).argmax(-1)).float().mean())  # type: ignore[operator]


@needs_data
def test_a_distilled_student_agrees_with_its_teacher_more_than_a_random_student(
    classifier_run: Path, data_spec: str, tmp_path: Path
) -> None:
    out = tmp_path / "student"
    assert _distill(classifier_run, data_spec, out, "--epochs", "8") == 0
    record = json.loads((out / "distillation.json").read_text())
    assert (
        record["flops_ratio"] == pytest.approx(1.0)
        and record["student"]["parameters"] == record["teacher"]["parameters"]
    )
    protocol = json.loads((out / "results.json").read_text())["protocol"]
    assert protocol["pretraining"] == f"distilled from {classifier_run} (the student from random init)"
    config = load_config(str(out / "config.yaml"))
    assert config.data.labels_per_class == 3 and config.distill.teacher == str(classifier_run)  # the teacher's budget
    teacher, student = load_classifier(classifier_run), load_classifier(out)
    torch.manual_seed(1)
    random_student = type(teacher.model)(
        build_backbone(config.network_config()), build_probe("simple", 64, len(teacher.classes))
    ).eval()
    data = load_data(data_spec)
    assert data.test is not None
    # held-out images the student never trained on
    images = eval_view(data.test, 32)
    distilled = _agreement(student.model, teacher.model, images)
    chance = _agreement(random_student, teacher.model, images)
    assert distilled == pytest.approx(record["test_agreement"], abs=1e-6)
    assert distilled > chance + 0.1, (distilled, chance)


@needs_data
def test_distillation_resumes_exactly(classifier_run: Path, data_spec: str, tmp_path: Path) -> None:
    assert _distill(classifier_run, data_spec, tmp_path / "whole", "--epochs", "2") == 0
    assert _distill(classifier_run, data_spec, tmp_path / "split", "--epochs", "2", "--stop-after-epoch", "1") == 0
    teacher = ["--teacher", str(classifier_run), "--student", "teacher"]
    assert main(["distill", *teacher, "-o", str(tmp_path / "split"), "--resume", *QUIET]) == 0
    whole = [json.loads(line)["loss"] for line in (tmp_path / "whole" / "epochs.jsonl").read_text().splitlines()]
    split = [json.loads(line)["loss"] for line in (tmp_path / "split" / "epochs.jsonl").read_text().splitlines()]
    assert split == pytest.approx(whole, rel=1e-5)


@needs_data
def test_distillation_errors_are_one_line(
    classifier_run: Path, data_spec: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ssl_run = classifier_run.parent / "ssl"  # a pretraining run: an encoder without a classifier head
    arguments = ["distill", "--teacher", str(ssl_run), "--student", "teacher", "--data", data_spec, "-o"]
    assert main([*arguments, str(tmp_path / "a"), *QUIET]) == 2
    error = capsys.readouterr().err.strip()
    assert "holds no classifier.safetensors" in error and len(error.splitlines()) == 1
    arguments = ["distill", "--teacher", str(classifier_run), "--student", "giant", "--data", data_spec, "-o"]
    assert main([*arguments, str(tmp_path / "b"), *QUIET]) == 2
    assert "unknown student 'giant'" in capsys.readouterr().err
    arguments = ["distill", "--teacher", str(classifier_run), "--student", "scott-small-96", "--data", data_spec, "-o"]
    assert main([*arguments, str(tmp_path / "c"), *QUIET]) == 2
    assert "takes 96 px images, the teacher 32 px" in capsys.readouterr().err
