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

On a GPU (``--device cuda``) each case runs once per ``--variants`` entry (``fp32``, ``bf16``,
``bf16-compile``: the ``run.precision`` and ``run.compile`` settings), the clock waits for the GPU
(``torch.cuda.synchronize``), MFU is over the dense bf16 8192³ matmul rate measured in the same
run, and memory is the peak the CUDA allocator held:

    python -m benchmarks.pretrain_throughput --device cuda --cases paper-224 cpu-96 \
        --variants fp32 bf16 bf16-compile --batch 64 --name pretrain_throughput_h100
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

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


def _variant_settings(variant: str) -> tuple[str, bool]:
    """``"bf16-compile"`` -> ``("bf16", True)``; ``"fp32"`` -> ``("fp32", False)``."""
    precision, _, suffix = variant.partition("-")
    if precision not in ("fp32", "bf16") or suffix not in ("", "compile"):
        raise SystemExit(f"unknown variant {variant!r}: expected fp32, bf16, fp32-compile or bf16-compile")
    return precision, suffix == "compile"


def _timed(step: Callable[[], object], steps: int, device: torch.device) -> float:
    """Seconds per call of ``step`` over ``steps`` calls, waiting for the GPU at both ends."""

    def wait() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    wait()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    wait()
    return (time.perf_counter() - start) / steps


def measure_case(name: str, steps: int, options: argparse.Namespace) -> dict[str, Any]:
    case = CASES[name]
    precision, compiled = _variant_settings(options.variant)
    overrides = [
        f"data.spec={case['data']}",
        f"run.batch_size={options.batch or case['batch']}",
        f"run.device={options.device}",
        f"run.precision={precision}",
        f"run.compile={str(compiled).lower()}",
        "run.online_probe=false",
        "run.tensorboard=false",
        *case.get("overrides", []),
    ]
    if options.workers is not None:
        overrides.append(f"data.num_workers={options.workers}")
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
        compile_start = time.perf_counter()
        for _ in range(3 if compiled else 1):  # warm-up: allocator, oneDNN primitives, compilation
            trainer.train_step(fixed)
        warmup_seconds = time.perf_counter() - compile_start
        with torch.compiler.set_stance("force_eager"):  # the same operations, counted eagerly
            flops = count_flops(lambda: trainer.train_step(fixed)) / batch
        compute_seconds = _timed(lambda: trainer.train_step(fixed), steps, device)

        def batches() -> Any:
            epoch = 0
            while True:
                trainer.sampler.set_epoch(epoch)
                yield from trainer.loader
                epoch += 1

        stream = batches()
        trainer.train_step(next(stream))  # the loader's workers are warm from here on
        end_to_end_seconds = _timed(lambda: trainer.train_step(next(stream)), steps, device)
        workers_used = trainer.loader.num_workers
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_gpu_mib = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return {
        "case": name,
        "variant": options.variant,
        "preset": case["preset"],
        "overrides": case.get("overrides", []),
        "img_size": config.model.img_size,
        "tokens": trainer.method.export_encoders()["encoder"].num_tokens,  # type: ignore[union-attr]
        "embed_dim": config.model.embed_dim,
        "depth": config.model.depth,
        "batch": batch,
        "loader_workers": workers_used,
        "steps": steps,
        "warmup_seconds": round(warmup_seconds, 1),
        "gflop_per_image_step": round(flops / 1e9, 3),
        "compute_img_per_s": round(batch / compute_seconds, 2),
        "end_to_end_img_per_s": round(batch / end_to_end_seconds, 2),
        "peak_rss_mib": round(peak_rss_mib),
        "peak_gpu_mib": None if peak_gpu_mib is None else round(peak_gpu_mib),
        "reference_img_per_s": case["reference"] if device.type == "cpu" else None,
    }


def _reference_rate(device: str) -> tuple[float, str]:
    """The machine's achievable dense matmul rate (GFLOP/s) and what it is."""
    if device.startswith("cuda"):
        return matmul_gflops(8192, device=device, dtype=torch.bfloat16), "bf16 8192x8192 matmul"
    return matmul_gflops(), "fp32 2048x2048 matmul"


def _markdown(rows: list[dict[str, Any]], reference: float, reference_name: str) -> str:
    gpu = any(row["peak_gpu_mib"] is not None for row in rows)
    memory = "peak GPU MiB" if gpu else "peak RSS MiB"
    lines = [
        f"{reference_name} reference: **{reference:.0f} GFLOP/s**. Batch as listed.\n",
        "| case | variant | px | tokens | D | depth | batch | GFLOP / img-step | compute img/s | compute MFU "
        f"| end-to-end img/s | end-to-end MFU | e2e / compute | workers | {memory} | reference img/s | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['case']} | {row['variant']} | {row['img_size']} | {row['tokens']} | {row['embed_dim']} "
            f"| {row['depth']} | {row['batch']} "
            f"| {row['gflop_per_image_step']} | {row['compute_img_per_s']} | {row['compute_mfu']} "
            f"| {row['end_to_end_img_per_s']} | {row['end_to_end_mfu']} | {row['end_to_end_vs_compute']} "
            f"| {row['loader_workers']} | {row['peak_gpu_mib'] if gpu else row['peak_rss_mib']} "
            f"| {row['reference_img_per_s'] or '–'} | {row.get('speedup_vs_reference', '–')} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 40; 6 at 224 px)")
    parser.add_argument("--workers", type=int, default=None, help="loader workers (default: the product's default)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--variants", nargs="+", default=["fp32"], help="fp32, bf16, fp32-compile, bf16-compile")
    parser.add_argument("--batch", type=int, default=None, help="global batch for every case (default: per case)")
    parser.add_argument("--name", default="pretrain_throughput", help="results file stem under benchmarks/results")
    parser.add_argument("--single", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for variant in args.variants:
        _variant_settings(variant)
    tune_cpu_allocator()
    if args.single:
        slow = CASES[args.single]["preset"] == "scott-paper" and args.device == "cpu"
        steps = args.steps or (6 if slow else 40)
        print(json.dumps(measure_case(args.single, steps, args)))
        return
    reference, reference_name = _reference_rate(args.device)
    print(f"{reference_name}: {reference:.0f} GFLOP/s", flush=True)
    rows = []
    for name in args.cases:
        for variant in args.variants:
            command = [sys.executable, "-m", "benchmarks.pretrain_throughput", "--single", name]
            command += ["--device", args.device, "--variant", variant]
            for flag, value in (("--steps", args.steps), ("--workers", args.workers), ("--batch", args.batch)):
                if value is not None:
                    command += [flag, str(value)]
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                print(f"{name} {variant} failed:\n{result.stderr[-4000:]}", flush=True)
                continue
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
    payload = {**run_header(), "matmul_gflop_per_s": round(reference, 1), "reference": reference_name, "rows": rows}
    write_results(args.name, payload, _markdown(rows, reference, reference_name))


if __name__ == "__main__":
    main()
