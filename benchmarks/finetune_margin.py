"""Calibration of the fine-tuning learning test (``tests/test_finetune.py``): with 10 labels per
class, fine-tuning a pretrained encoder beats fine-tuning the same architecture from random init
with the same recipe, measured on the same test images.

    python -m benchmarks.finetune_margin            # seeds 0-2 -> results/finetune_margin.{json,md}

The encoder is scott-tiny at stride 8 (32 px, 4x4 tokens, 2 blocks) pretrained **with labels** on
1,000 Imagenette training images for 15 epochs: the quickest pretraining that learns class-level
features within a test's budget on 2 CPU cores (self-supervised pretraining needs longer runs before
it beats random init at class level: ``results/evaluation_margin.md``; the few-label benchmark
``results/few_labels.md`` fine-tunes a self-supervised encoder). Both arms then fine-tune on the same
10 labels per class (label seed = the seed) with one recipe (the ``finetune-cpu`` preset with LP-FT:
10 epochs of a linear head on the frozen encoder, then 10 of everything; LR 2e-3, no MixUp / CutMix),
and are tested once on Imagenette's official val split (500 images). The test imports :func:`finetuned_pair` from here,
so the margin is measured on exactly what is tested.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import IMAGENETTE, run_header, write_results
from scarce.cli import main as scarce

COMMON = ["--data", f"npz:{IMAGENETTE}", "--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]
PRETRAIN = ["supervised", "-c", "scott-tiny", "--limit", "1000", "--epochs", "15", "--batch-size", "64"]
# stride 8 (4x4 tokens): the SCOTT stem at stride 4 makes a step about 7x slower on a CPU
PRETRAIN += ["--set", "model.stride=8", "--set", "augmentation.photometric_p=0"]
FINETUNE = ["--labels-per-class", "10", "--epochs", "20", "--batch-size", "25", "--set", "optim.lr=2e-3"]
FINETUNE += ["--set", "finetune.head=linear", "--set", "finetune.head_only_epochs=10"]  # LP-FT on a linear head
FINETUNE += ["--set", "schedule.warmup_epochs=0", "--set", "finetune.mixup_alpha=0", "--set", "finetune.cutmix_alpha=0"]


def finetuned_pair(seed: int, workdir: Path) -> tuple[float, float]:
    """Test top-1 of ``(fine-tuned from the pretrained encoder, fine-tuned from random init)``."""
    pretrained = workdir / "pretrained"
    if scarce([*PRETRAIN, *COMMON, "--seed", str(seed), "-o", str(pretrained)]) != 0:
        raise RuntimeError("pretraining failed")
    top1 = []
    for arm, extra in (("finetuned", []), ("scratch", ["--random-init"])):
        out = workdir / arm
        arguments = ["finetune", str(pretrained), *FINETUNE, *COMMON, "--seed", str(seed), "--label-seed", str(seed)]
        if scarce([*arguments, *extra, "-o", str(out)]) != 0:
            raise RuntimeError(f"fine-tuning ({arm}) failed")
        top1.append(json.loads((out / "results.json").read_text())["results"][0]["test"]["top1"])
    return top1[0], top1[1]


def main() -> None:
    rows = []
    for seed in range(3):
        with tempfile.TemporaryDirectory() as workdir:
            finetuned, scratch = finetuned_pair(seed, Path(workdir))
        rows.append({"seed": seed, "finetuned": finetuned, "scratch": scratch, "difference": finetuned - scratch})
    differences = [row["difference"] for row in rows]
    payload = {**run_header(), "rows": rows, "min": min(differences), "mean": statistics.mean(differences)}
    lines = ["| seed | fine-tuned | random init | difference |", "|---:|---:|---:|---:|"]
    lines += [
        f"| {row['seed']} | {row['finetuned']:.3f} | {row['scratch']:.3f} | {row['difference']:+.3f} |" for row in rows
    ]
    lines += ["", f"Smallest difference {min(differences):+.3f}, mean {statistics.mean(differences):+.3f}."]
    write_results("finetune_margin", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
