"""Self-training, distillation and auxiliary tasks on Imagenette (the development set).

    python -m benchmarks.self_training run [--only ARM ...]   # trains what is missing (arm by arm)
    python -m benchmarks.self_training report                 # results/self_training.{json,md}

Starting points are the few-label fine-tuned runs of ``python -m benchmarks.few_labels`` (the README
main job's encoder fine-tuned with ``finetune-cpu`` on 10 and 30 labels per class, label seed 0; for the
committed results, the encoder of the recipe before the MIM-JEPA study's winner), in
``$SCARCE_BENCHMARK_RUNS/few-labels``. Arms, one ``scarce`` command each:

- ``semisup-N``: ``scarce semisup`` of ``finetune-N`` (the ``semisup-cpu`` preset, the same N labels);
- ``distill-N-small`` / ``distill-N-self``: ``scarce distill`` of the better of ``finetune-N`` and
  ``semisup-N`` (on the development set) into ``scott-small-96`` (0.44x the FLOPs) / into the
  teacher's architecture (the ``distill-cpu`` preset);
- ``supervised``, ``supervised-drloc``, ``supervised-rotation``: ``scarce supervised -c scott-cpu-96``
  from scratch with all labels (selected on the carved validation split), without and with each
  auxiliary task.

Imagenette's official val split is the test split here; it is the development set, so these
numbers fix the presets and are not results. Each arm records its wall-clock and CPU minutes.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import IMAGENETTE, run_header, run_timed, tested_top1, write_results

RUNS = Path(os.environ.get("SCARCE_BENCHMARK_RUNS", "/work/runs"))
FEW_LABELS = RUNS / "few-labels"
OUT = RUNS / "self-training"
DATA = f"npz:{IMAGENETTE}"
SUPERVISED_EPOCHS = 50


@dataclass(frozen=True)
class Arm:
    name: str
    command: tuple[str, ...]
    start: str  # what it starts from (a run directory, or "scratch")
    labels_per_class: int | None

    @property
    def run_dir(self) -> Path:
        return OUT / self.name


def dev_top1(run: Path) -> float | None:
    """The test top-1 of a finished run (Imagenette's official val split: the development set)."""
    return tested_top1(run) if (run / "results.json").exists() else None


def distillation_teacher(finetuned: Path, semisup: Path) -> Path:
    """The better of the fine-tuned and the self-trained run on the development set (the choice the
    label-efficiency table then applies unchanged); the self-trained one until both are scored."""
    scores = dev_top1(finetuned), dev_top1(semisup)
    if scores[0] is not None and scores[1] is not None and scores[0] > scores[1]:
        return finetuned
    return semisup


def arms() -> list[Arm]:
    listed = []
    for labels in (10, 30):
        finetuned = FEW_LABELS / f"finetune-{labels}-decay-1.0"
        semisup = OUT / f"semisup-{labels}"
        listed.append(
            Arm(f"semisup-{labels}", ("scarce", "semisup", str(finetuned), "--data", DATA), str(finetuned), labels)
        )
        teacher = distillation_teacher(finetuned, semisup)
        for student in ("small", "self"):
            name = "scott-small-96" if student == "small" else "teacher"
            command = ("scarce", "distill", "--teacher", str(teacher), "--student", name, "--data", DATA)
            listed.append(Arm(f"distill-{labels}-{student}", command, str(teacher), labels))
    for aux in ("none", "drloc", "rotation"):
        command = ("scarce", "supervised", "-c", "scott-cpu-96", "--data", DATA, "--epochs", str(SUPERVISED_EPOCHS))
        name = "supervised" if aux == "none" else f"supervised-{aux}"
        listed.append(Arm(name, (*command, "--set", f"aux.kind={aux}"), "scratch", None))
    return listed


def full_command(arm: Arm) -> list[str]:
    return [*arm.command, "-o", str(arm.run_dir), "--no-progress"]


def run_arm(arm: Arm) -> None:
    if (arm.run_dir / "results.json").exists():
        print(f"{arm.name}: done", flush=True)
        return
    if arm.start != "scratch" and not (Path(arm.start) / "classifier.safetensors").exists():
        raise SystemExit(f"{arm.name}: its starting run {arm.start} is missing (run benchmarks.few_labels first)")
    resume = (arm.run_dir / "checkpoints" / "last.pt").exists()
    # --resume reads the run's own config; the command's positional arguments are still required
    command = [*full_command(arm), "--resume"] if resume else full_command(arm)
    print(" ".join(command), flush=True)
    run_timed(command, record_in=arm.run_dir)


def images_per_second(run: Path, epochs: list[dict[str, Any]]) -> float:
    """Training images per second over the run. A semi-supervised step trains on ``(1 + mu) B``
    images (labelled and unlabelled); runs logged before the loop counted them (``Method.images_in``)
    logged ``B``, so for them the count comes from the steps and the config."""
    config = yaml.safe_load((run / "config.yaml").read_text())
    seconds = sum(record["seconds"] for record in epochs)
    if config["method"] == "semisup":
        per_step = config["run"]["batch_size"] * (1 + config["semisup"]["mu"])
        return epochs[-1]["step"] * per_step / seconds
    return sum(record["images_per_second"] * record["seconds"] for record in epochs) / seconds


def _row(arm: Arm) -> dict[str, Any]:
    results = json.loads((arm.run_dir / "results.json").read_text())
    timing = json.loads((arm.run_dir / "benchmark_timing.json").read_text())
    epochs = [json.loads(line) for line in (arm.run_dir / "epochs.jsonl").read_text().splitlines()]
    test = next(row["test"] for row in results["results"] if row.get("test"))
    row: dict[str, Any] = {
        "arm": arm.name,
        "labels_per_class": arm.labels_per_class,
        "start": arm.start,
        "test_top1": test["top1"],
        "test_mean_per_class": test["mean_per_class"],
        "test_f1_macro": test["f1_macro"],
        "labels_used": results["protocol"].get("labels_used"),
        "wall_minutes": timing["wall_seconds"] / 60,
        "cpu_minutes": timing["cpu_seconds"] / 60,
        "images_per_second": images_per_second(arm.run_dir, epochs),
        "last_epoch": epochs[-1],
        "command": " ".join(full_command(arm)),
    }
    start_top1 = dev_top1(Path(arm.start))
    if start_top1 is not None:
        row["start_test_top1"] = start_top1
    distillation = arm.run_dir / "distillation.json"
    if distillation.exists():
        row["distillation"] = json.loads(distillation.read_text())
    return row


def report() -> None:
    rows = [_row(arm) for arm in arms() if (arm.run_dir / "results.json").exists()]
    payload = {**run_header(), "data": DATA, "rows": rows}
    lines = [
        "Self-training, distillation and auxiliary tasks on Imagenette (development set; its official val",
        "split is the test split here, so these numbers fix the presets and are not results). Every arm run",
        "is listed. `start` is the test top-1 of the run an arm starts from (fine-tuned or teacher).",
        "",
        "| arm | labels/class | test top-1 | start | gain | mean per-class | macro F1 | items/s | wall min | CPU min |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        start = row.get("start_test_top1")
        gain = f"{100 * (row['test_top1'] - start):+.1f}" if start is not None else "–"
        lines.append(
            f"| {row['arm']} | {row['labels_per_class'] or 'all'} | {100 * row['test_top1']:.1f} | "
            f"{'–' if start is None else f'{100 * start:.1f}'} | {gain} | {100 * row['test_mean_per_class']:.1f} | "
            f"{100 * row['test_f1_macro']:.1f} | {row['images_per_second']:.1f} | {row['wall_minutes']:.1f} | "
            f"{row['cpu_minutes']:.1f} |"
        )
    lines += ["", "Commands:", "", *(f"- {row['arm']}: `{row['command']}`" for row in rows)]
    write_results("self_training", payload, "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("run", "report"))
    parser.add_argument("--only", nargs="*", help="arm names (default: every arm)")
    args = parser.parse_args()
    if args.action == "report":
        report()
        return
    for arm in arms():
        if not args.only or arm.name in args.only:
            run_arm(arm)
    report()


if __name__ == "__main__":
    main()
