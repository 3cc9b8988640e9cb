"""Calibration of the fine-tuning learning test (``tests/test_finetune.py``): with 10 labels per
class, fine-tuning a pretrained encoder beats fine-tuning the same architecture from random init
with the same recipe, measured on the same test images.

    python -m benchmarks.finetune_margin            # seeds 0-2 -> results/finetune_margin.{json,md}

The pipeline is :mod:`benchmarks.digits`: scott-tiny at stride 8 (32 px, 4x4 tokens, 2 blocks)
trained **with labels** on half A of scikit-learn's handwritten digits, then both arms fine-tune on
the same 10 labels per class of half B (label seed = the seed) with one recipe (the ``finetune-cpu``
preset with LP-FT: 10 epochs of a linear head on the frozen encoder, then 10 of everything; LR 2e-3,
no MixUp / CutMix), and are tested once on the same 500 held-out digits. (Until commit 166e828 the
encoder learned on 1,000 Imagenette images at 32 px; the digits pipeline is shared with the
self-training test, so the suite trains one encoder for both.) The test imports
:func:`finetuned_pair` from here, so the margin is measured on exactly what is tested.
"""

from __future__ import annotations

import statistics
import tempfile
from pathlib import Path

from benchmarks.common import run_header, tested_top1, write_results
from benchmarks.digits import fine_tuned


def finetuned_pair(seed: int, workdir: Path) -> tuple[float, float]:
    """Test top-1 of ``(fine-tuned from the encoder trained on half A, fine-tuned from random init)``."""
    finetuned, _ = fine_tuned(seed, workdir)
    scratch, _ = fine_tuned(seed, workdir, random_init=True)
    return tested_top1(finetuned), tested_top1(scratch)


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
