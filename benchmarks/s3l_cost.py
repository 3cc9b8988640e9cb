"""Cost of the S3L axes: backbone parameters and forward FLOPs per image for ResNet-18/50, with and
without the last stage, at 224 / 112 / 56 px (spec s3l.md: ResNet-50 MACs 1.00 : 0.263 : 0.073 for
224 : 112 : 56; no last stage: -20 % MACs, -64 % parameters at 224).

    python -m benchmarks.s3l_cost   # -> results/s3l_cost.{json,md}
"""

from __future__ import annotations

import torch

from benchmarks.common import run_header, write_results
from scarce.flops import forward_flops_per_image
from scarce.models.backbone import build_backbone
from scarce.models.resnet import ResNetConfig

SIZES = (224, 112, 56)


def main() -> None:
    torch.manual_seed(0)
    rows = []
    for arch in ("resnet18", "resnet50"):
        full = None
        for drop in (False, True):
            backbone = build_backbone(ResNetConfig(arch=arch, drop_last_stage=drop))
            parameters = sum(p.numel() for p in backbone.parameters())
            flops = {size: forward_flops_per_image(backbone, size) for size in SIZES}
            full = full or (parameters, flops[224])
            rows.append(
                {
                    "arch": arch,
                    "drop_last_stage": drop,
                    "features": backbone.embed_dim,
                    "parameters": parameters,
                    "gflops": {size: flops[size] / 1e9 for size in SIZES},
                    "flops_vs_224": {size: flops[size] / flops[224] for size in SIZES},
                    "parameters_vs_full": parameters / full[0],
                    "flops_vs_full_at_224": flops[224] / full[1],
                }
            )
    lines = [
        "| backbone | last stage | features | parameters (vs full) | GFLOPs 224 / 112 / 56 | ratio to 224 | "
        "FLOPs at 224 vs full |",
        "|---|---|---:|---:|---|---|---:|",
    ]
    for row in rows:
        gflops = " / ".join(f"{row['gflops'][size]:.3f}" for size in SIZES)
        ratios = " : ".join(f"{row['flops_vs_224'][size]:.3f}" for size in SIZES)
        lines.append(
            f"| {row['arch']} | {'no' if row['drop_last_stage'] else 'yes'} | {row['features']} | "
            f"{row['parameters'] / 1e6:.2f} M ({row['parameters_vs_full']:.3f}) | {gflops} | {ratios} | "
            f"{row['flops_vs_full_at_224']:.3f} |"
        )
    lines.append("")
    lines.append("FLOPs: one forward pass of the backbone (no head), 2 per multiply-accumulate, counted by")
    lines.append("`torch.utils.flop_counter` (convolutions and matmuls).")
    payload = {**run_header(), "rows": rows}
    write_results("s3l_cost", payload, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
