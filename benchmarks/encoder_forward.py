"""Encoder throughput on this machine: forward and forward+backward images/s, achieved GFLOP/s,
and the ratio to the fp32 2048x2048 matmul rate measured in the same run.

    python benchmarks/encoder_forward.py                       # all default presets
    python benchmarks/encoder_forward.py --presets scott-cpu-96 --batch-size 64

Forward: eval mode, no gradient, no mask (target encoder / feature extraction).
Forward+backward: train mode (dropout on), a blockwise keep mask with r = 0.6 (context encoder),
loss = mean of squared tokens. FLOPs: ``scarce.flops.count_flops`` (``FlopCounterMode`` + CPU attention).
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import matmul_gflops, median_seconds, run_header, write_results
from scarce.flops import count_flops
from scarce.masking import make_mask_generator
from scarce.models import count_parameters, create_encoder
from scarce.runtime import tune_cpu_allocator

DEFAULT_PRESETS = ["scott-cpu-32", "scott-cpu-64", "scott-cpu-96", "vit-cpu-96", "scott-paper", "vit-paper"]


def measure(preset: str, batch_size: int, repeats: int, reference_gflops: float) -> dict[str, object]:
    torch.manual_seed(0)
    encoder = create_encoder(preset)
    size = encoder.config.img_size
    images = torch.randn(batch_size, 3, size, size)
    keep_mask = make_mask_generator("blockwise", encoder.grid_size, 0.6)(batch_size, torch.Generator().manual_seed(0))

    def forward() -> None:
        with torch.no_grad():
            encoder(images)

    def forward_backward() -> None:
        encoder.zero_grad(set_to_none=True)
        encoder(images, keep_mask).square().mean().backward()

    row: dict[str, object] = {"preset": preset, "batch_size": batch_size, "params": count_parameters(encoder)}
    for name, step, train in (("forward", forward, False), ("forward_backward", forward_backward, True)):
        encoder.train(train)
        flops = count_flops(step)
        seconds = median_seconds(step, repeats)
        gflops = flops / seconds / 1e9
        row[f"{name}_img_per_s"] = round(batch_size / seconds, 1)
        row[f"{name}_gflop_per_img"] = round(flops / batch_size / 1e9, 3)
        row[f"{name}_gflop_per_s"] = round(gflops, 1)
        row[f"{name}_matmul_ratio"] = round(gflops / reference_gflops, 3)
        print(f"{preset} {name}: {batch_size / seconds:.1f} img/s, {gflops:.0f} GFLOP/s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=DEFAULT_PRESETS)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 64 (CPU presets), 16 (224 px)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--name", default="encoder_forward", help="results file stem")
    args = parser.parse_args()
    tune_cpu_allocator()
    reference = matmul_gflops()
    print(f"fp32 2048x2048 matmul: {reference:.0f} GFLOP/s", flush=True)
    rows = []
    for preset in args.presets:
        batch = args.batch_size or (16 if create_encoder(preset, depth=0).config.img_size >= 224 else 64)
        rows.append(measure(preset, batch, args.repeats, reference))
    lines = [
        f"fp32 2048x2048 matmul reference: **{reference:.0f} GFLOP/s**\n",
        "| preset | batch | params | fwd img/s | fwd GFLOP/img | fwd GFLOP/s | fwd / matmul "
        "| fwd+bwd img/s | fwd+bwd GFLOP/img | fwd+bwd GFLOP/s | fwd+bwd / matmul |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['preset']} | {row['batch_size']} | {row['params']:,} | {row['forward_img_per_s']} "
            f"| {row['forward_gflop_per_img']} | {row['forward_gflop_per_s']} | {row['forward_matmul_ratio']} "
            f"| {row['forward_backward_img_per_s']} | {row['forward_backward_gflop_per_img']} "
            f"| {row['forward_backward_gflop_per_s']} | {row['forward_backward_matmul_ratio']} |"
        )
    payload = {**run_header(), "matmul_gflop_per_s": round(reference, 1), "rows": rows}
    write_results(args.name, payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
