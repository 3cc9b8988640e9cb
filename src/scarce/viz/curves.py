"""Training curves of one or several runs on shared axes, collapse warnings marked.

Per-epoch records come from ``epochs.jsonl`` (loss, token statistics, effective rank, online
probe, accuracies: every numeric key), per-step learning rate and EMA momentum from
``metrics.jsonl``. An epoch whose effective rank is below :data:`scarce.engine.loop.COLLAPSE_RANK_FRACTION`
of epoch 1's (the loop's own warning) is marked with a red cross.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from scarce.engine.loop import COLLAPSE_RANK_FRACTION
from scarce.errors import CheckpointError
from scarce.viz.figures import plt

SKIPPED_KEYS = {"epoch", "step", "seconds"}
STEP_KEYS = ("lr", "momentum")
"""Per-step schedules drawn from ``metrics.jsonl`` (momentum = the EMA coefficient)."""


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON-lines file; a missing file or a bad line is a one-line CheckpointError."""
    if not path.exists():
        raise CheckpointError(f"{path.parent} has no {path.name}: is it a scarce run directory?")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            raise CheckpointError(f"{path}:{number} is not JSON ({error.msg})") from None
    return records


def collapsed_epochs(epochs: list[dict[str, Any]]) -> list[int]:
    """Epochs whose effective rank fell below the loop's collapse threshold (vs epoch 1)."""
    ranks = [(record["epoch"], record["effective_rank"]) for record in epochs if "effective_rank" in record]
    if not ranks:
        return []
    first = ranks[0][1]
    return [epoch for epoch, rank in ranks if rank < COLLAPSE_RANK_FRACTION * first]


def curve_keys(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """Numeric per-epoch keys present in any run, in first-seen order."""
    keys: list[str] = []
    for epochs in runs.values():
        for record in epochs:
            for key, value in record.items():
                if key not in SKIPPED_KEYS and isinstance(value, int | float) and key not in keys:
                    keys.append(key)
    return keys


def curves_figure(runs: dict[str, list[dict[str, Any]]], steps: dict[str, list[dict[str, Any]]]) -> Figure:
    """Small multiples: one panel per metric, one line per run (shared axes across runs)."""
    epoch_keys = curve_keys(runs)
    step_keys = [key for key in STEP_KEYS if any(key in record for records in steps.values() for record in records[:1])]
    panels = len(epoch_keys) + len(step_keys)
    columns = min(3, max(panels, 1))
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for axis in axes.flat[panels:]:
        axis.set_axis_off()
    for axis, key in zip(axes.flat, epoch_keys, strict=False):
        for name, epochs in runs.items():
            points = [(record["epoch"], record[key]) for record in epochs if isinstance(record.get(key), int | float)]
            if points:
                axis.plot(*zip(*points, strict=True), label=name, marker="." if len(points) < 30 else None)
            if key == "effective_rank":
                collapsed = set(collapsed_epochs(epochs))
                marked = [(epoch, value) for epoch, value in points if epoch in collapsed]
                if marked:
                    axis.plot(*zip(*marked, strict=True), "x", color="red", markersize=8, label=f"{name}: collapse")
        axis.set_title(key, fontsize=9)
        axis.set_xlabel("epoch", fontsize=8)
        axis.grid(alpha=0.3)
    for axis, key in zip(axes.flat[len(epoch_keys) :], step_keys, strict=False):
        for name, records in steps.items():
            values = [(record["step"], record[key]) for record in records if key in record]
            if values:
                stride = max(1, len(values) // 500)
                axis.plot(*zip(*values[::stride], strict=True), label=name)
        axis.set_title(f"{key} (per step)", fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.grid(alpha=0.3)
    if len(runs) > 1 or any(collapsed_epochs(epochs) for epochs in runs.values()):
        axes.flat[0].legend(fontsize=7)
    figure.tight_layout()
    return figure
