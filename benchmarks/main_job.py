"""The README's main job, timed, with its per-epoch record: does the default CPU recipe learn
without collapsing?

    python -m benchmarks.main_job                      # the README command on the npz copy of Imagenette
    python -m benchmarks.main_job --data imagenette:data/imagenette --download

Runs ``scarce pretrain -c scott-cpu-96 --epochs 30`` in a fresh run directory (outside the
repository: ``$SCARCE_BENCHMARK_RUNS``, default ``/work/runs``) and writes
``results/imagenette_main_job.{json,md}``: the command, wall-clock, every epoch's summary, and the
collapse check: the effective rank of the last epoch against epoch 1's (the loop warns below 25 %).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from benchmarks.common import IMAGENETTE, run_header, write_results

RUNS = Path(os.environ.get("SCARCE_BENCHMARK_RUNS", "/work/runs"))
KEPT_FRACTION = 0.5  # "does not collapse": the last epoch keeps at least half of epoch 1's effective rank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"npz:{IMAGENETTE}")
    parser.add_argument("--download", action="store_true")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--preset", default="scott-cpu-96")
    args = parser.parse_args()
    run_dir = RUNS / "main-job"
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(RUNS / "main-job-eval", ignore_errors=True)  # benchmarks.visualize_report's, of the old run
    command = ["scarce", "pretrain", "-c", args.preset, "--data", args.data, "-o", str(run_dir)]
    command += ["--epochs", str(args.epochs), "--no-progress", *(["--download"] if args.download else [])]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    seconds = time.perf_counter() - started
    epochs = [json.loads(line) for line in (run_dir / "epochs.jsonl").read_text().splitlines()]
    first, last = epochs[0]["effective_rank"], epochs[-1]["effective_rank"]
    lowest = min(record["effective_rank"] for record in epochs)
    collapsed = last < KEPT_FRACTION * first
    payload = {
        **run_header(),
        "scarce_command": " ".join(command),
        "wall_seconds": seconds,
        "effective_rank": {"epoch_1": first, "lowest": lowest, "last": last},
        "collapsed": collapsed,
        "epochs": epochs,
    }
    columns = ("loss", "target_token_std", "effective_rank", "online_probe_val_top1", "images_per_second")
    lines = [
        f"The README's main job: `{' '.join(command)}`; wall-clock {seconds / 60:.1f} min.",
        "",
        f"Effective rank: epoch 1 {first:.1f}, lowest {lowest:.1f}, last {last:.1f} "
        f"({'COLLAPSED' if collapsed else 'no collapse'}: the last epoch keeps "
        f"{last / first:.0%} of epoch 1's; the criterion is at least {KEPT_FRACTION:.0%}).",
        "",
        "| epoch | " + " | ".join(columns) + " |",
        "|---:|" + "---:|" * len(columns),
    ]
    for record in epochs:
        cells = [f"{record[key]:.4g}" if key in record else "–" for key in columns]
        lines.append(f"| {record['epoch']} | " + " | ".join(cells) + " |")
    write_results("imagenette_main_job", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
