"""The small real-image pipeline of the learning tests and their calibrations: scikit-learn's
handwritten digits in two halves, an encoder trained on half A, classifiers fine-tuned on 10 labels
per class of half B.

Used by ``benchmarks.finetune_margin`` and ``benchmarks.semisup_margin`` and, through them, by
``tests/test_finetune.py`` and ``tests/test_semisup.py``. Each step reuses its run when ``workdir``
already holds it finished, so tests that share a ``workdir`` (and a seed) train the encoder and the
fine-tuned classifier once.

The digits are 1,797 real 8x8 scans (17 grey levels), upscaled to 32 px RGB: at that size a test's
budget trains classifiers confident enough for pseudo-labels (Imagenette at 32 px did not:
``benchmarks.semisup_margin``). Half A (60 images per class) trains the encoder **with labels**: the
quickest pretraining that gives class-level features in seconds (self-supervised pretraining needs
longer runs: ``results/evaluation_margin.md``). Half B (about 70 per class) is the user's data:
10 labels per class (label seed = the seed), the rest unlabelled; A's labels never reach B. Both
halves share one test split of 500 digits (50 per class).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scarce.cli import main as scarce

COMMON = ["--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]
# stride 8 (4x4 tokens at 32 px): the SCOTT stem at stride 4 makes a step about 7x slower on a CPU
PRETRAIN = ["supervised", "-c", "scott-tiny", "--epochs", "30", "--batch-size", "64"]
PRETRAIN += ["--set", "model.stride=8", "--set", "augmentation.photometric_p=0"]
FINETUNE = ["--labels-per-class", "10", "--epochs", "20", "--batch-size", "25", "--set", "optim.lr=2e-3"]
FINETUNE += ["--set", "finetune.head=linear", "--set", "finetune.head_only_epochs=10"]  # LP-FT on a linear head
FINETUNE += ["--set", "schedule.warmup_epochs=0", "--set", "finetune.mixup_alpha=0", "--set", "finetune.cutmix_alpha=0"]


def write_digits(folder: Path, size: int = 32) -> tuple[str, str]:
    """``(spec of half A, spec of half B)``, written once into ``folder``. Per class, in the stored
    order: the first 50 digits are the test split of both halves, the next 60 half A's training
    images, the rest (about 70) half B's."""
    specs = (f"npz:{folder / 'a'}", f"npz:{folder / 'b'}")
    if (folder / "b" / "b_val.npz").exists():
        return specs
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    grey = np.round(digits.images * 255.0 / 16.0).astype(np.uint8)  # [N, 8, 8]
    pixels = np.stack([np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR)) for image in grey])
    images = np.repeat(pixels[..., None], 3, axis=-1)  # [N, size, size, 3]
    labels = digits.target.astype(np.int64)
    part = np.zeros(len(labels), dtype=np.int64)  # 0: test, 1: half A, 2: half B
    for label in range(10):
        members = np.flatnonzero(labels == label)
        part[members[50:110]] = 1
        part[members[110:]] = 2
    classes = np.array([str(label) for label in range(10)])
    for name, chosen in (("a", part == 1), ("b", part == 2)):
        half = folder / name
        half.mkdir(parents=True, exist_ok=True)
        np.savez(half / f"{name}_train.npz", x=images[chosen], y=labels[chosen], classes=classes)
        np.savez(half / f"{name}_val.npz", x=images[part == 0], y=labels[part == 0], classes=classes)
    return specs


def run_or_reuse(arguments: list[str], out: Path) -> Path:
    """Run ``scarce ARGUMENTS -o OUT`` unless ``out`` holds a finished run (its results.json)."""
    if not (out / "results.json").exists() and scarce([*arguments, *COMMON, "-o", str(out)]) != 0:
        raise RuntimeError(f"scarce {arguments[0]} into {out} failed")
    return out


def fine_tuned(seed: int, workdir: Path, random_init: bool = False) -> tuple[Path, str]:
    """``(the classifier run fine-tuned on half B's 10 labels per class, half B's spec)``: from the
    encoder trained on half A, or from the same architecture at random init."""
    half_a, half_b = write_digits(workdir / "data")
    encoder = run_or_reuse([*PRETRAIN, "--data", half_a, "--seed", str(seed)], workdir / "encoder")
    arguments = ["finetune", str(encoder), "--data", half_b, *FINETUNE, "--seed", str(seed), "--label-seed", str(seed)]
    if random_init:
        return run_or_reuse([*arguments, "--random-init"], workdir / "scratch"), half_b
    return run_or_reuse(arguments, workdir / "finetuned"), half_b
