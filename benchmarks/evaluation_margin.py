"""Calibrate the end-to-end evaluation test: short pretraining vs random init, several seeds.

    python -m benchmarks.evaluation_margin

The evaluation suite's end-to-end test (``tests/eval/test_evaluation_end_to_end.py``) pretrains a
tiny encoder briefly, evaluates it with the frozen probes of ``scarce evaluate`` and asks it to beat
the same architecture at its random initialisation by a stated margin. This script measures, for
several seeds, the trained-minus-random differences that margin must sit well below: it runs the
test's exact configuration (``benchmarks.evaluation_margin_settings``, which the test imports) for each
seed and writes the kNN and linear top-1 on the validation and test splits of both encoders.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import run_header, spread_text, write_results
from benchmarks.evaluation_margin_settings import EVALUATION, VARIANTS, VIEW_EVALUATION, write_view_dataset
from scarce.config import load_config
from scarce.eval.encoders import LoadedEncoder, load_encoder, random_encoder
from scarce.evaluate import EvaluationConfig, evaluate
from scarce.pretrain import pretrain
from scarce.runtime import tune_cpu_allocator

SEEDS = (0, 1, 2)
ONLY = tuple(sys.argv[1:])  # optional: variant names to run


def scores(loaded: LoadedEncoder, tasks: dict[str, tuple[str, EvaluationConfig]], seed: int) -> dict[str, float]:
    """``{task/family/split: top-1}`` of the frozen linear probe and kNN on each task."""
    values = {}
    for task, (data, settings) in tasks.items():
        result = evaluate(loaded, data, settings.model_copy(update={"seed": seed}), None, log=lambda _: None)
        for row in result.rows:
            for split in ("val", "test"):
                values[f"{task}/{row['family']}/{split}"] = round(row[split]["top1"], 3)
    return values


def main() -> None:
    tune_cpu_allocator()
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    scratch = Path(tempfile.mkdtemp())
    views = write_view_dataset(scratch / "views")
    for variant, (preset, settings) in VARIANTS.items():
        if ONLY and variant not in ONLY:
            continue
        for seed in SEEDS:
            config = load_config(preset, [*settings, f"run.seed={seed}"])
            out = scratch / f"{variant}-{seed}"
            pretrain(config, out, show_progress=False, log=lambda _: None)
            tasks = {"classes": (config.data.spec, EVALUATION), "views": (views, VIEW_EVALUATION)}
            trained = scores(load_encoder(out, "context"), tasks, seed)
            floor = scores(random_encoder(config.network_config(), seed), tasks, seed)
            row = {"variant": variant, "seed": seed, "trained": trained, "random_init": floor}
            row["difference"] = {key: round(trained[key] - floor[key], 3) for key in trained}
            rows.append(row)
            print(row, flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    minutes = round((time.perf_counter() - start) / 60, 1)
    keys = sorted(rows[0]["trained"])
    lines = [
        f"Wall-clock: {minutes} min for {len(rows)} runs (pretraining + both tasks' probes of trained and "
        "random-init encoders).\n",
        "Settings: `benchmarks/evaluation_margin_settings.py` (tiny ViT-tokenizer encoder, 32 px, 3 epochs on "
        "Imagenette); context / online encoder; frozen probes of `scarce evaluate` (val: carved from train, test: "
        "the official val images); random init: the same architecture and seed. Task `classes`: Imagenette's 10 "
        "classes; task `views`: instance-level, each of 100 unseen images is a class (`write_view_dataset`).\n",
        "| variant | seed | " + " | ".join(f"{key} trained / random / diff" for key in keys) + " |",
        "|---|---:|" + "---|" * len(keys),
    ]
    for row in rows:
        cells = [f"{row['trained'][k]:.3f} / {row['random_init'][k]:.3f} / {row['difference'][k]:+.3f}" for k in keys]
        lines.append(f"| {row['variant']} | {row['seed']} | " + " | ".join(cells) + " |")
    lines.append("\nDifference (trained - random init), min / mean / max over seeds:\n")
    for variant in dict.fromkeys(row["variant"] for row in rows):
        for key in keys:
            diffs = [row["difference"][key] for row in rows if row["variant"] == variant]
            lines.append(f"- {variant}, {key}: {spread_text(diffs)}")
    payload = {**run_header(), "wall_clock_minutes": minutes, "rows": rows}
    write_results("evaluation_margin", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
