"""Time to draw a batch of masks (spec sec. 4.2), and the masks' statistics.

python benchmarks/mask_generation.py
"""

from __future__ import annotations

import torch

from benchmarks.common import median_seconds, run_header, write_results
from scarce.masking import make_mask_generator, mask_statistics

CASES = [
    ("blockwise", (14, 14), {}),
    ("blockwise", (14, 14), {"placement": "clipped"}),
    ("uniform", (14, 14), {}),
    ("blockwise", (6, 6), {}),
    ("blockwise", (8, 8), {}),
    ("blockwise", (32, 32), {}),
]


def main() -> None:
    batch, ratio = 256, 0.6
    rows = []
    for kind, grid, kwargs in CASES:
        generator = make_mask_generator(kind, grid, ratio, **kwargs)  # type: ignore[arg-type]
        rng = torch.Generator().manual_seed(0)
        seconds = median_seconds(lambda generator=generator, rng=rng: generator(batch, rng), repeats=20)
        stats = mask_statistics(generator, num_masks=2000)
        frequency = stats.visibility_frequency
        rows.append(
            {
                "kind": kind,
                "options": kwargs,
                "grid": list(grid),
                "mask_ratio": ratio,
                "kept": stats.kept_min,
                "batch": batch,
                "ms_per_batch": round(seconds * 1e3, 2),
                "rectangles_per_mask": round(stats.rectangles_mean, 2),
                "visible_regions_per_mask": round(stats.components_mean, 2),
                "visibility_min": round(float(frequency.min()), 3),
                "visibility_max": round(float(frequency.max()), 3),
            }
        )
    lines = [
        f"{batch} masks per batch, mask ratio {ratio}, median of 20 batches; statistics over 2000 masks.\n",
        "| generator | grid | kept | ms / 256 masks | rectangles / mask | visible regions / mask "
        "| visibility min | visibility max |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        name = row["kind"] + "".join(f" {key}={value}" for key, value in row["options"].items())
        lines.append(
            f"| {name} | {row['grid'][0]}x{row['grid'][1]} | {row['kept']} | {row['ms_per_batch']} "
            f"| {row['rectangles_per_mask']} | {row['visible_regions_per_mask']} "
            f"| {row['visibility_min']} | {row['visibility_max']} |"
        )
    write_results("mask_generation", {**run_header(), "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
