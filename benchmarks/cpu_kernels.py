"""The two CPU fixes behind the encoder's speed, measured: glibc allocator tuning and the
separable 2x2 max-pool of the SCOTT stem.

    python -m benchmarks.cpu_kernels

Each allocator case runs in its own process (the tuning is process-wide). Shapes are those of the
scott-cpu-96 stem at batch 64 (64 x 64 x 48 x 48 after the first convolution).
"""

from __future__ import annotations

import json
import subprocess
import sys

import torch
import torch.nn.functional as F

from benchmarks.common import median_seconds, run_header, write_results
from scarce.models.tokenizers import max_pool_2x2_stride1
from scarce.runtime import tune_cpu_allocator

SHAPE = (64, 64, 48, 48)


def elementwise_ms() -> float:
    """Median ms of ``relu(x)`` on a fresh output tensor (allocation included)."""
    x = torch.randn(SHAPE)
    return 1e3 * median_seconds(lambda: torch.relu(x), repeats=20, warmup=3)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--elementwise":
        if sys.argv[2] == "tuned":
            tune_cpu_allocator()
        print(json.dumps({"ms": elementwise_ms()}))
        return
    rows = {}
    for mode in ("default", "tuned"):
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.cpu_kernels", "--elementwise", mode],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows[f"relu_{mode}_allocator_ms"] = round(json.loads(out)["ms"], 2)
    tune_cpu_allocator()
    x = torch.relu(torch.randn(SHAPE))
    x_last = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        rows["maxpool_aten_nchw_ms"] = round(1e3 * median_seconds(lambda: F.max_pool2d(x, 2, 1), 10, 2), 2)
        rows["maxpool_aten_channels_last_ms"] = round(
            1e3 * median_seconds(lambda: F.max_pool2d(x_last, 2, 1), 10, 2), 2
        )
        rows["maxpool_separable_channels_last_ms"] = round(
            1e3 * median_seconds(lambda: max_pool_2x2_stride1(x_last), 10, 2), 2
        )
    lines = [
        f"Tensor {list(SHAPE)} fp32 (the scott-cpu-96 stem at batch 64); median of repeated calls.\n",
        "| kernel | ms |",
        "|---|---:|",
    ] + [f"| {key} | {value} |" for key, value in rows.items()]
    write_results("cpu_kernels", {**run_header(), "rows": rows}, "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
