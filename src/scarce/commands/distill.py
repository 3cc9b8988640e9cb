"""``scarce distill``: distil a classifier run into a student (same or smaller) on every training image, test once."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from scarce.commands.base import inherited_budget, register_command
from scarce.commands.pretrain import add_arguments as add_training_arguments
from scarce.commands.pretrain import execute

DEFAULT_PRESET = "distill-cpu"
REPORT_FILE = "distillation.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", required=True, help="the teacher classifier run (scarce finetune / semisup)")
    parser.add_argument(
        "--student",
        required=True,
        help="the student's architecture: an encoder preset (scarce models: scott-cpu-96, scott-small-96, ...), "
        "resnet18 or resnet50, or 'teacher' (self-distillation)",
    )
    add_training_arguments(parser)


def student_overrides(student: str, teacher: str) -> list[str]:
    """``model.*`` / ``backbone.*`` overrides of the student architecture ``student``."""
    from scarce.commands.finetune import ARCHITECTURE_FIELDS, architecture_overrides
    from scarce.errors import ConfigError
    from scarce.models.classifier import load_classifier
    from scarce.models.registry import ENCODER_PRESETS, preset_config

    if student == "teacher":
        return architecture_overrides(teacher, "context")
    img_size = load_classifier(teacher).img_size
    if student in ("resnet18", "resnet50"):
        return [f"backbone.kind={student}", f"model.img_size={img_size}"]
    if student not in ENCODER_PRESETS:
        known = ", ".join(["teacher", "resnet18", "resnet50", *sorted(ENCODER_PRESETS)])
        raise ConfigError(f"unknown student {student!r}; known: {known}")
    config = preset_config(student).model_dump()
    if config["img_size"] != img_size:
        raise ConfigError(f"the student {student} takes {config['img_size']} px images, the teacher {img_size} px")
    return ["backbone.kind=encoder", *(f"model.{name}={json.dumps(config[name])}" for name in ARCHITECTURE_FIELDS)]


def distillation_record(run: Path, teacher: str) -> dict[str, Any]:
    """Student vs teacher: test top-1, parameters and forward FLOPs per image, and their agreement
    (same predicted class) on the test split; written to ``RUN/distillation.json``."""
    from scarce.config import load_config
    from scarce.errors import DataError
    from scarce.eval.features import eval_view, extract
    from scarce.flops import forward_flops_per_image
    from scarce.models.classifier import load_classifier
    from scarce.pretrain import prepare_data

    config = load_config(str(run / "config.yaml"))
    student, mentor = load_classifier(run), load_classifier(teacher)
    test = prepare_data(config).splits.test  # the split results.json scored: same spec, seeds and fractions
    if test is None or test.labels is None:
        raise DataError("the distillation record needs a labelled test split")
    images = eval_view(test, student.img_size)
    predictions = {
        name: extract(lambda batch, model=model: model.model.logits(batch), images).argmax(-1)
        for name, model in (("student", student), ("teacher", mentor))
    }

    def describe(model: Any, name: str) -> dict[str, Any]:
        encoder = model.model.encoder
        return {
            "source": str(model.path),
            "parameters": sum(p.numel() for p in model.model.parameters()),
            "forward_flops_per_image": forward_flops_per_image(encoder, model.img_size),
            "test_top1": float((predictions[name] == test.labels).float().mean()),
        }

    record = {
        "student": describe(student, "student"),
        "teacher": describe(mentor, "teacher"),
        "test_agreement": float((predictions["student"] == predictions["teacher"]).float().mean()),
        "test_images": len(test),
    }
    record["flops_ratio"] = record["student"]["forward_flops_per_image"] / record["teacher"]["forward_flops_per_image"]
    (run / REPORT_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def run(args: argparse.Namespace) -> int:
    from scarce.supervised import train_supervised

    recipe: list[str] = []
    if not args.resume:
        args.config = args.config or DEFAULT_PRESET
        recipe = [
            "method=distill",
            *student_overrides(args.student, args.teacher),
            *inherited_budget(args.teacher, args),
        ]
        recipe += [f"distill.teacher={json.dumps(str(args.teacher))}"]
    finished: list[bool] = []

    def train(*positional: Any, **keywords: Any) -> Any:
        result, report = train_supervised(*positional, **keywords)
        finished.append(report is not None)
        return result

    code = execute(args, recipe, train)
    if finished and finished[0]:
        record = distillation_record(Path(args.out), args.teacher)
        student, teacher = record["student"], record["teacher"]
        print(
            f"student {100 * student['test_top1']:.1f} % vs teacher {100 * teacher['test_top1']:.1f} % test top-1, "
            f"agreement {100 * record['test_agreement']:.1f} %; {student['parameters'] / 1e6:.2f} M vs "
            f"{teacher['parameters'] / 1e6:.2f} M parameters, FLOPs ratio {record['flops_ratio']:.2f}"
        )
    return code


register_command("distill", run, add_arguments)
