"""Does bf16 autocast change frozen-probe results? The same encoders evaluated in fp32 and bf16.

    python -m benchmarks.eval_precision --device cuda --data npz:../shared/datasets/imagenette \\
        --encoders runs/paper-2ep runs/imagewoof96/A-s0/encoder.safetensors --name eval_precision_h100

For each encoder and precision: ``scarce evaluate``'s linear and kNN probes (validation selects,
test once) and the spread of the pooled features over the test images (mean over dimensions of the
per-dimension standard deviation), next to the largest difference between the fp32 and bf16
features of the same image. When the second is not far below the first, bf16 rounding is as large
as what distinguishes the images, and the probes lose accuracy: that is why ``scarce evaluate``
runs the frozen encoder in fp32 unless ``--precision bf16`` is given.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from benchmarks.common import run_header, write_results
from scarce.engine.device import autocast_factory, select_device
from scarce.eval.encoders import LoadedEncoder, load_encoder
from scarce.eval.features import FrozenEncoder, eval_view, extract
from scarce.evaluate import EvaluationConfig, evaluate, run_config_of, splits_for


def pooled_features(loaded: LoadedEncoder, data: str, device: torch.device, precision: str) -> torch.Tensor:
    """Pooled frozen features ``[M, D]`` of the test split (float32, on the CPU)."""
    settings = EvaluationConfig(probes=("knn",))
    test = splits_for(data, settings, run_config_of(loaded)).test  # the split evaluate() uses
    assert test is not None
    frozen = FrozenEncoder(loaded.encoder, device, autocast_factory(device, precision))
    return extract(frozen.pooled, eval_view(test, loaded.encoder.config.img_size))


def measure(source: str, data: str, device_name: str, probes: tuple[str, ...]) -> list[dict[str, Any]]:
    device = select_device(device_name)
    loaded = load_encoder(source)
    features = {precision: pooled_features(loaded, data, device, precision) for precision in ("fp32", "bf16")}
    spread = features["fp32"].std(dim=0).mean().item()
    rounding = (features["bf16"] - features["fp32"]).abs().max().item()
    rows = []
    for precision in ("fp32", "bf16"):
        settings = EvaluationConfig(probes=probes, device=device_name, precision=precision)  # type: ignore[arg-type]
        result = evaluate(loaded, data, settings, log=lambda _: None, show_progress=False)
        for row in result.rows:
            rows.append(
                {
                    "encoder": source,
                    "precision": precision,
                    "family": row["family"],
                    "probe": row["probe"],
                    "val_top1": round(100 * row["val"]["top1"], 1),
                    "test_top1": round(100 * row["test"]["top1"], 1),
                    "feature_spread": spread,
                    "max_bf16_difference": rounding,
                }
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoders", nargs="+", required=True, help="run directories or .safetensors files")
    parser.add_argument("--data", required=True, help="labelled dataset spec")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--probes", default="linear,knn", help="comma-separated probe families")
    parser.add_argument("--name", default="eval_precision")
    args = parser.parse_args()
    probes = tuple(args.probes.split(","))
    rows = [row for source in args.encoders for row in measure(source, args.data, args.device, probes)]
    lines = [
        f"Data: `{args.data}`. Probes as in `scarce evaluate` (validation selects, test once).\n",
        "| encoder | precision | probe | val top-1 | test top-1 | feature spread | max fp32-bf16 difference |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['encoder']} | {row['precision']} | {row['probe']} | {row['val_top1']} | {row['test_top1']} "
        f"| {row['feature_spread']:.2e} | {row['max_bf16_difference']:.2e} |"
        for row in rows
    ]
    write_results(args.name, {**run_header(), "data": args.data, "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
