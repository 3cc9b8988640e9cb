"""MIM-JEPA pretraining throughput on this machine: images/s compute-only and end to end.

    python -m benchmarks.pretrain_throughput            # all cases, one subprocess each
    python -m benchmarks.pretrain_throughput --cases cpu-96

Compute-only: ``Trainer.train_step`` (target forward, context forward+backward, predictor
forward+backward, AdamW step, EMA update) repeated on one pre-loaded batch. End to end: the same
step fed by the real loader (decoded uint8 images -> aligned two-view augmentation and masks in
loader workers -> collate), the way ``scarce pretrain`` runs. FLOPs per image-step are counted
with ``scarce.flops.count_flops``; MFU is achieved GFLOP/s over the fp32 2048x2048 matmul rate
measured in the same run. Peak memory is the process's peak resident set (each case runs in its
own process). The reference img/s are those of a faithful straightforward implementation of the
paper's loop on this machine, as given in the issue (fp32).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import matmul_gflops, run_header, write_results
from scarce.config import load_config
from scarce.engine.loop import select_device
from scarce.engine.run_dir import RunDirectory
from scarce.flops import count_flops
from scarce.pretrain import build_trainer, prepare_data
from scarce.runtime import tune_cpu_allocator

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"

CASES: dict[str, dict[str, Any]] = {
    "cpu-32": {"preset": "scott-cpu-32", "data": f"npz:{DATASETS / 'cifar10'}", "batch": 64, "reference": None},
    "cpu-64": {"preset": "scott-cpu-64", "data": f"npz:{DATASETS / 'imagenette'}", "batch": 64, "reference": None},
    "cpu-96": {"preset": "scott-cpu-96", "data": f"npz:{DATASETS / 'imagenette'}", "batch": 64, "reference": 35.0},
    "d384-96": {
        "preset": "scott-cpu-96",
        "overrides": ["model.embed_dim=384", "model.depth=12", "model.num_heads=4"],
        "data": f"npz:{DATASETS / 'imagenette'}",
        "batch": 64,
        "reference": 10.0,
    },
    "paper-224": {"preset": "scott-paper", "data": f"npz:{DATASETS / 'imagenette'}", "batch": 16, "reference": 1.7},
}


def measure_case(name: str, steps: int, workers: int | None) -> dict[str, Any]:
    case = CASES[name]
    overrides = [
        f"data.spec={case['data']}",
        f"run.batch_size={case['batch']}",
        "run.online_probe=false",
        "run.tensorboard=false",
        *case.get("overrides", []),
    ]
    if workers is not None:
        overrides.append(f"data.num_workers={workers}")
    config = load_config(case["preset"], overrides)
    device = select_device(config.run.device)
    data = prepare_data(config)
    with tempfile.TemporaryDirectory() as scratch:
        run = RunDirectory(scratch)
        trainer = build_trainer(config, run, data, device, show_progress=False, log=lambda _: None)
        trainer.method.train()
        trainer.sampler.set_epoch(0)
        fixed = next(iter(trainer.loader))
        batch = fixed.views[0].shape[0]
        trainer.train_step(fixed)  # warm-up (allocator, oneDNN primitives)
        flops = count_flops(lambda: trainer.train_step(fixed)) / batch
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(fixed)
        compute_seconds = (time.perf_counter() - start) / steps

        def batches() -> Any:
            epoch = 0
            while True:
                trainer.sampler.set_epoch(epoch)
                yield from trainer.loader
                epoch += 1

        stream = batches()
        trainer.train_step(next(stream))  # the loader's workers are warm from here on
        start = time.perf_counter()
        for _ in range(steps):
            trainer.train_step(next(stream))
        end_to_end_seconds = (time.perf_counter() - start) / steps
        workers_used = trainer.loader.num_workers
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "case": name,
        "preset": case["preset"],
        "overrides": case.get("overrides", []),
        "img_size": config.model.img_size,
        "tokens": trainer.method.export_encoders()["encoder"].num_tokens,  # type: ignore[union-attr]
        "embed_dim": config.model.embed_dim,
        "depth": config.model.depth,
        "batch": batch,
        "loader_workers": workers_used,
        "steps": steps,
        "gflop_per_image_step": round(flops / 1e9, 3),
        "compute_img_per_s": round(batch / compute_seconds, 2),
        "end_to_end_img_per_s": round(batch / end_to_end_seconds, 2),
        "peak_rss_mib": round(peak_rss_mib),
        "reference_img_per_s": case["reference"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 40; 6 at 224 px)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: the product's default)")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    args = parser.parse_args()
    tune_cpu_allocator()
    if args.single:
        steps = args.steps or (6 if CASES[args.single]["preset"] == "scott-paper" else 40)
        print(json.dumps(measure_case(args.single, steps, args.workers)))
        return
    reference = matmul_gflops()
    print(f"fp32 2048x2048 matmul: {reference:.0f} GFLOP/s", flush=True)
    rows = []
    for name in args.cases:
        command = [sys.executable, "-m", "benchmarks.pretrain_throughput", "--single", name]
        if args.steps:
            command += ["--steps", str(args.steps)]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        row = json.loads(result.stdout.strip().splitlines()[-1])
        for kind in ("compute", "end_to_end"):
            achieved = row[f"{kind}_img_per_s"] * row["gflop_per_image_step"]
            row[f"{kind}_gflop_per_s"] = round(achieved, 1)
            row[f"{kind}_mfu"] = round(achieved / reference, 3)
        row["end_to_end_vs_compute"] = round(row["end_to_end_img_per_s"] / row["compute_img_per_s"], 3)
        if row["reference_img_per_s"]:
            row["speedup_vs_reference"] = round(row["end_to_end_img_per_s"] / row["reference_img_per_s"], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    lines = [
        f"fp32 2048x2048 matmul reference: **{reference:.0f} GFLOP/s**. fp32, batch as listed.\n",
        "| case | px | tokens | D | depth | batch | GFLOP / img-step | compute img/s | compute MFU "
        "| end-to-end img/s | end-to-end MFU | e2e / compute | workers | peak RSS MiB | reference img/s | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['case']} | {row['img_size']} | {row['tokens']} | {row['embed_dim']} | {row['depth']} "
            f"| {row['batch']} "
            f"| {row['gflop_per_image_step']} | {row['compute_img_per_s']} | {row['compute_mfu']} "
            f"| {row['end_to_end_img_per_s']} | {row['end_to_end_mfu']} | {row['end_to_end_vs_compute']} "
            f"| {row['loader_workers']} | {row['peak_rss_mib']} | {row['reference_img_per_s'] or '–'} "
            f"| {row.get('speedup_vs_reference', '–')} |"
        )
    payload = {**run_header(), "matmul_gflop_per_s": round(reference, 1), "rows": rows}
    write_results("pretrain_throughput", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
