"""Metric sinks: JSON lines (always) and TensorBoard (optional)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


class JsonlLog:
    """Append-only JSON lines; on resume, lines past the checkpoint are dropped first."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        clean = {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in record.items()
        }
        self.handle.write(json.dumps(clean) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()

    @staticmethod
    def truncate(path: Path, key: str, last_kept: int) -> None:
        """Keep only the records whose ``key`` is ``<= last_kept``; a line that is not a JSON record
        (the partial last line of a crash) is dropped."""
        if not path.exists():
            return
        kept = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get(key, 0) <= last_kept:
                kept.append(line)
        path.write_text("".join(line + "\n" for line in kept))


class MetricsLogger:
    """Per-iteration and per-epoch records to JSONL files and TensorBoard scalars."""

    def __init__(self, iterations: Path, epochs: Path, tensorboard_dir: Path | None) -> None:
        self.iterations = JsonlLog(iterations)
        self.epochs = JsonlLog(epochs)
        self.writer = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(tensorboard_dir))

    def _scalars(self, prefix: str, record: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for key, value in record.items():
            if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                self.writer.add_scalar(f"{prefix}/{key}", value, step)

    def log_iteration(self, record: dict[str, Any]) -> None:
        self.iterations.write(record)
        self._scalars("train", record, int(record["step"]))

    def log_epoch(self, record: dict[str, Any]) -> None:
        self.epochs.write(record)
        self._scalars("epoch", record, int(record["epoch"]))

    def close(self) -> None:
        self.iterations.close()
        self.epochs.close()
        if self.writer is not None:
            self.writer.close()
