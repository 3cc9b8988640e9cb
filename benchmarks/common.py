"""Helpers shared by the benchmark scripts (and the tests, which may import from ``benchmarks``; benchmarks
never import from ``tests``): the shared dataset paths, timing, the matmul reference rate, result files."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from scarce.runtime import environment_info

RESULTS_DIR = Path(__file__).resolve().parent / "results"
# The real datasets, next to the checkout (``../shared/datasets``): one place for benchmarks and tests.
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
IMAGENETTE = DATASETS / "imagenette"
IMAGEWOOF = DATASETS / "imagewoof"
FULL_CONTEXT_RECIPE = ("mimjepa.context=full", "schedule.ema_start=0.996", "schedule.ema_end=1.0")
"""The ``scott-cpu-*`` presets' MIM-JEPA context and target EMA before the MIM-JEPA study's winner became
their default (``docs/mimjepa-study.md``): benchmarks run before that, or compared with the reference
SCOTT code (which runs the context encoder over every token), pin them."""


def median_seconds(step: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``step()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(
    size: int = 2048, repeats: int = 10, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> float:
    """Achieved GFLOP/s of a ``size x size`` matmul in ``dtype``: the machine's reference rate
    (on a GPU each timing waits for the product to finish)."""
    left = torch.randn(size, size, device=device, dtype=dtype)
    right = torch.randn(size, size, device=device, dtype=dtype)

    def product() -> None:
        left @ right
        if left.is_cuda:
            torch.cuda.synchronize(left.device)

    seconds = median_seconds(product, repeats, warmup=2)
    return 2 * size**3 / seconds / 1e9


def run_timed(command: list[str], log: Path | None = None, record_in: Path | None = None) -> tuple[float, float]:
    """Run ``command`` (its output appended to ``log``, else to this process's); return its
    ``(wall seconds, CPU seconds)``, CPU being user + system time of the finished child processes.
    With ``record_in`` the call is also added to that run's ``benchmark_timing.json`` (:func:`add_timing`),
    even when the command fails or is interrupted (Ctrl-C), so a resumed run counts every call."""

    def child_cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    wall, cpu = time.perf_counter(), child_cpu_seconds()
    try:
        with contextlib.ExitStack() as stack:
            stream = None if log is None else stack.enter_context(log.open("a"))
            process = subprocess.Popen(command, stdout=stream, stderr=None if log is None else subprocess.STDOUT)
            try:
                returncode = process.wait()
            except KeyboardInterrupt:  # not subprocess.run: it kills the child unreaped, losing its CPU time
                _reap(process)
                raise
        if returncode:
            raise subprocess.CalledProcessError(returncode, command)
    finally:
        wall, cpu = time.perf_counter() - wall, child_cpu_seconds() - cpu
        if record_in is not None and record_in.exists():
            add_timing(record_in, wall, cpu)
    return wall, cpu


def _reap(process: subprocess.Popen, grace_seconds: float = 120.0) -> None:
    """Wait for an interrupted child (Ctrl-C reaches its process group too: it checkpoints and exits),
    killing it after ``grace_seconds``, so that ``RUSAGE_CHILDREN`` counts its CPU time."""
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def commit_results(paths: list[Path], message: str) -> None:
    """``git commit`` exactly ``paths`` (results files) with ``message``, so a long benchmark's finished parts
    outlive a session that stops without warning; nothing else staged is committed."""
    added = subprocess.run(["git", "add", "--", *map(str, paths)], cwd=RESULTS_DIR)
    committed = added.returncode == 0 and (
        subprocess.run(["git", "commit", "-q", "-m", message, "--", *map(str, paths)], cwd=RESULTS_DIR).returncode == 0
    )
    if not committed:  # the benchmark goes on: its results file is written, only the commit is left to do
        print(f"warning: could not commit {', '.join(map(str, paths))}; commit it by hand", flush=True)


def add_timing(run_dir: Path, wall: float, cpu: float) -> dict[str, Any]:
    """Add one call's ``(wall, cpu)`` seconds to ``run_dir/benchmark_timing.json`` (a resumed run is
    timed over all its calls) and return the record."""
    path = run_dir / "benchmark_timing.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    timing = {
        "wall_seconds": previous.get("wall_seconds", 0.0) + wall,
        "cpu_seconds": previous.get("cpu_seconds", 0.0) + cpu,
        "calls": previous.get("calls", 0) + 1,
        "load_average_end": list(os.getloadavg()),
    }
    path.write_text(json.dumps(timing, indent=2) + "\n")
    return timing


def tested_top1(run: Path) -> float:
    """The test top-1 of a finished ``scarce`` run's tested row (its ``results.json``)."""
    rows = json.loads((run / "results.json").read_text())["results"]
    return float(next(row["test"]["top1"] for row in rows if row.get("test")))


def run_header() -> dict[str, Any]:
    """Machine, software and command of this benchmark run."""
    return {
        "command": "python -m benchmarks."
        + Path(sys.argv[0]).stem
        + "".join(" " + shlex.quote(a) for a in sys.argv[1:]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": environment_info(),
    }


def write_results(name: str, payload: dict[str, Any], markdown: str) -> None:
    """Write ``results/NAME.json`` and ``results/NAME.md`` (machine and command on top)."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    env = payload["environment"]
    header = (
        f"Command: `{payload['command']}`  \n"
        f"Date: {payload['date']}  \n"
        f"Machine: {env['processor']}, {env['cpu_count']} CPUs, {env['torch_threads']} torch threads, "
        f"device {env['device']}; torch {env['torch']}, scarce {env['scarce']}\n\n"
    )
    (RESULTS_DIR / f"{name}.md").write_text(header + markdown)
    print(header + markdown)


def spread_text(values: list[float]) -> str:
    """``min / mean / max`` of ``values`` with signs, e.g. ``+0.070 / +0.082 / +0.095``."""
    return f"{min(values):+.3f} / {statistics.mean(values):+.3f} / {max(values):+.3f}"


def label_axis(axis: Any, *, xlabel: str, ylabel: str, title: str, legend_outside: bool = False) -> None:
    """Label, grid and legend one matplotlib ``axis`` the way every benchmark plot does; ``legend_outside``
    puts the legend right of the axes, where it covers no line (plots with many lines)."""
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    placement = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0)} if legend_outside else {}
    axis.legend(fontsize=7, **placement)


def finish_plot(
    figure: Any, axis: Any, name: str, *, xlabel: str, ylabel: str, title: str, legend_outside: bool = False
) -> None:
    """Label ``axis`` (:func:`label_axis`), then write ``results/NAME.png`` and close ``figure`` (matplotlib)."""
    import matplotlib.pyplot as plt

    label_axis(axis, xlabel=xlabel, ylabel=ylabel, title=title, legend_outside=legend_outside)
    figure.tight_layout()
    figure.savefig(RESULTS_DIR / f"{name}.png", dpi=90, bbox_inches="tight" if legend_outside else None)
    plt.close(figure)
