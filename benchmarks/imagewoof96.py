"""The Imagewoof results table (issue: does SCOTT + MIM-JEPA beat supervised training at CPU scale?).

Each arm is a list of ``scarce`` commands; this file is the single source of the commands that the
JSON rows and the README table cite.

    python -m benchmarks.imagewoof96 run A 0     # train (resuming if interrupted), then evaluate
    python -m benchmarks.imagewoof96 report      # results/imagewoof96.json + .md + .png, README table

Budget: every arm trains for at most 60 minutes on the 2-core Xeon. It is fixed as a number of
epochs, calibrated from epoch times measured on the otherwise idle machine (MIM-JEPA ~25 s,
supervised ~15.4 s per epoch of 2,700 images at batch 64), so that every arm gets the same compute
whatever else the machine was doing. The report gives both the measured training wall-clock (the
sum of the per-epoch seconds in ``epochs.jsonl``; monitoring passes excluded) and the idle-machine
estimate (epochs x the mean of the run's fastest 10 % of epochs): some runs shared the machine with
development work and took longer than their budget in wall-clock.
Protocol: the 3,000 official training images are split 2,700 train / 300 validation (stratified,
``data.split_seed`` 0); the 1,000 official validation images are the test split, evaluated once per
arm and probe family; pretraining sees the 2,700 training images only (inductive).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import FULL_CONTEXT_RECIPE

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = "npz:../shared/datasets/imagewoof"
RUNS = Path(os.environ.get("SCARCE_BENCHMARK_RUNS", "/work/runs")) / "imagewoof96"  # outside the repository
PRESET = "scott-cpu-96"
MIMJEPA_EPOCHS = 135  # 135 x ~25 s = ~56 min
MIMJEPA_WARMUP = 18  # the paper's 40/300 share of the schedule
SUPERVISED_EPOCHS = 225  # 225 x ~15.4 s = ~58 min
VIT_EPOCHS = 170  # 170 x ~19 s = ~54 min (calibration: benchmarks/results/tuning/calibration.md)
VIT_WARMUP = 23  # the same 13 % warm-up share as MIMJEPA_WARMUP
CENTRED = "mimjepa.target_centering=batch"
BEFORE_STUDY = [item for setting in FULL_CONTEXT_RECIPE for item in ("--set", setting)]  # A ran before it
MOCO_EPOCHS = 90  # S3L arms, the same epochs at 48 px (E1) and 96 px (E2): 90 x ~35 s = ~53 min for E2
MOCO_RESNET18 = ["backbone.kind=resnet18", "backbone.drop_last_stage=false", "model.img_size=96"]


@dataclass(frozen=True)
class Arm:
    """One row group of the table: how to train (if at all) and how to evaluate."""

    name: str
    method: str
    encoder: str
    seeds: tuple[int, ...]

    @property
    def evaluates_trained_run(self) -> bool:
        """``scarce evaluate RUN`` on a pretrained run (results in ``RUN/eval-context``)."""
        return self.name in ("A", "C", "E1", "E2")

    @property
    def random_init(self) -> bool:
        """``scarce evaluate --random-init`` of the arm's preset, no training."""
        return self.name in ("D", "Dv")

    def run_dir(self, seed: int) -> Path:
        return RUNS / f"{self.name}-s{seed}"

    def train_command(self, seed: int) -> list[str] | None:
        out = str(self.run_dir(seed))
        common = ["--data", DATA, "-o", out, "--seed", str(seed), "--no-progress"]
        if self.name == "A":
            extra = ["--set", f"schedule.warmup_epochs={MIMJEPA_WARMUP}", "--set", CENTRED, *BEFORE_STUDY]
            return ["scarce", "pretrain", "-c", PRESET, "--epochs", str(MIMJEPA_EPOCHS), *common, *extra]
        if self.name == "B":
            return ["scarce", "supervised", "-c", PRESET, "--epochs", str(SUPERVISED_EPOCHS), *common]
        if self.name in ("E1", "E2"):
            crop, blur = (48, 5) if self.name == "E1" else (96, 9)
            settings = [*MOCO_RESNET18, f"augmentation.crop_size={crop}", f"augmentation.blur_kernel={blur}"]
            extra = [item for setting in settings for item in ("--set", setting)]
            return ["scarce", "pretrain", "-c", "mocov2-s3l", "--epochs", str(MOCO_EPOCHS), *common, *extra]
        if self.name == "C":
            extra = ["--set", f"schedule.warmup_epochs={VIT_WARMUP}", "--set", CENTRED]
            return ["scarce", "pretrain", "-c", "vit-cpu-96", "--epochs", str(VIT_EPOCHS), *common, *extra]
        return None

    def eval_command(self, seed: int) -> list[str] | None:
        out = str(self.run_dir(seed))
        if self.evaluates_trained_run:
            return ["scarce", "evaluate", out, "--data", DATA, "--seed", str(seed), "--no-progress"]
        if self.random_init:
            return [
                "scarce", "evaluate", "--random-init", "-c", self.encoder, "--data", DATA,
                "--seed", str(seed), "--out", out, "--no-progress",
            ]  # fmt: skip
        return None  # B: `scarce supervised` tests its best epoch itself


ARMS = {
    "A": Arm("A", "SCOTT + MIM-JEPA (batch-centred targets), frozen", PRESET, (0, 1)),
    "B": Arm("B", "supervised from scratch", PRESET, (0, 1)),
    "C": Arm("C", "ViT tokenizer + MIM-JEPA (batch-centred targets), frozen", "vit-cpu-96", (0,)),
    "D": Arm("D", "random-init encoder, frozen", PRESET, (0,)),
    "Dv": Arm("Dv", "random-init ViT-tokenizer encoder, frozen (C's floor)", "vit-cpu-96", (0,)),
    "E1": Arm("E1", "MoCo v2 (S3L), pretrained at 48 px, frozen", "resnet18", (0,)),
    "E2": Arm("E2", "MoCo v2 (S3L), pretrained at 96 px, frozen", "resnet18", (0,)),
}


def results_path(arm: Arm, seed: int) -> Path:
    """Where the arm's ``results.json`` lands: ``scarce evaluate`` writes into ``RUN/eval-context``
    (or ``--out``), ``scarce supervised`` into the run directory."""
    run_dir = arm.run_dir(seed)
    return run_dir / "eval-context" / "results.json" if arm.evaluates_trained_run else run_dir / "results.json"


def finished_epochs(run_dir: Path) -> int:
    """Last completed epoch in ``run_dir/epochs.jsonl`` (0 if none)."""
    path = run_dir / "epochs.jsonl"
    if not path.exists():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    return json.loads(lines[-1])["epoch"] if lines else 0


def shell(command: list[str]) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, cwd=ROOT, check=True)


def run_arm(arm: Arm, seed: int) -> None:
    """Train (resuming an interrupted run) and evaluate one arm and seed; skip finished steps."""
    run_dir = arm.run_dir(seed)
    train = arm.train_command(seed)
    done = results_path(arm, seed).exists()
    if train is not None and not done:
        target = int(train[train.index("--epochs") + 1])
        if (run_dir / "checkpoints" / "last.pt").exists():
            if finished_epochs(run_dir) < target or train[1] == "supervised":
                shell(["scarce", train[1], "--resume", "-o", str(run_dir), "--no-progress"])
        else:
            shell(train)
    evaluate = arm.eval_command(seed)
    if evaluate is not None and not done:
        shell(evaluate)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imagewoof96")
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="train and evaluate ARM with SEED (resumable)")
    run.add_argument("arm", choices=sorted(ARMS))
    run.add_argument("seed", type=int)
    sub.add_parser("report", help="write results/imagewoof96.{json,md,png} and the README table")
    args = parser.parse_args(argv)
    if args.action == "run":
        run_arm(ARMS[args.arm], args.seed)
        return 0
    from benchmarks.imagewoof96_report import report

    report()
    return 0


def command_text(command: list[str] | None) -> str:
    return "" if command is None else " ".join(command)


def arm_commands(arm: Arm, seed: int) -> str:
    return " && ".join(filter(None, [command_text(arm.train_command(seed)), command_text(arm.eval_command(seed))]))


if __name__ == "__main__":
    sys.exit(main())
