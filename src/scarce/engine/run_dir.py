"""The run directory: one place for config, environment, metrics, checkpoints and weights.

```
RUN_DIR/
  config.yaml          resolved configuration
  environment.json     versions, git commit, device, data fingerprints, protocol, splits sizes
  splits.json          image ids of every split (and of the small-data subset, if any)
  metrics.jsonl        one line per iteration
  epochs.jsonl         one line per epoch (loss, diagnostics, online probe)
  tensorboard/         TensorBoard scalars
  checkpoints/         last.pt and epoch_NNNN.pt (atomic writes)
  encoder.safetensors  final weights (+ target_encoder.safetensors for EMA methods)
```
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

from scarce.engine.checkpoint import (
    LAST_CHECKPOINT,
    atomic_write,
    epoch_checkpoint_name,
    numbered_checkpoints,
    one_line,
)
from scarce.errors import CheckpointError


class RunDirectory:
    """Paths and small writers of a run directory."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    config_path = property(lambda self: self.path / "config.yaml")
    environment_path = property(lambda self: self.path / "environment.json")
    splits_path = property(lambda self: self.path / "splits.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    epochs_path = property(lambda self: self.path / "epochs.jsonl")
    checkpoints = property(lambda self: self.path / "checkpoints")
    tensorboard = property(lambda self: self.path / "tensorboard")
    last_checkpoint = property(lambda self: self.path / "checkpoints" / LAST_CHECKPOINT)
    best_checkpoint = property(lambda self: self.path / "checkpoints" / "best.pt")

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / epoch_checkpoint_name(epoch)

    def has_checkpoint(self) -> bool:
        """Whether the run holds a checkpoint to resume from: ``last.pt`` or a numbered one (resuming
        falls back to those when ``last.pt`` is missing or unreadable)."""
        return self.last_checkpoint.exists() or bool(numbered_checkpoints(self.checkpoints))

    def check(self, resume: bool) -> None:
        """New run: refuse a directory that already holds a run. Resume: require a checkpoint."""
        if resume:
            if not self.has_checkpoint():
                raise CheckpointError(f"--resume: no checkpoint at {self.last_checkpoint} (nor epoch_NNNN.pt)")
            return
        if self.config_path.exists() or self.last_checkpoint.exists():
            raise CheckpointError(f"{self.path} already holds a run; pass --resume to continue it or choose another -o")
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"{self.path} exists and is not a directory")

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    def write_json(self, path: Path, payload: Any) -> None:
        text = json.dumps(payload, indent=2, default=str) + "\n"
        atomic_write(path, lambda temporary: temporary.write_text(text))

    def write_config(self, config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False)
        atomic_write(self.config_path, lambda temporary: temporary.write_text(text))

    def read_config(self) -> dict[str, Any]:
        """The run's saved configuration (``yaml.safe_load``: plain data only); a missing, unreadable or
        malformed ``config.yaml`` is a one-line :class:`CheckpointError`."""
        if not self.config_path.is_file():
            raise CheckpointError(f"{self.path} has no config.yaml")
        try:
            raw = yaml.safe_load(self.config_path.read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            raise CheckpointError(f"cannot read {self.config_path}: {_describe_yaml_error(error)}") from None
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            raise CheckpointError(f"{self.config_path} is a {type(raw).__name__}, not a mapping of config sections")
        return raw


def _describe_yaml_error(error: Exception) -> str:
    """One line for a YAML error: the problem and where (PyYAML's own message spans several lines)."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return one_line(f"{error.context + ', ' if error.context else ''}{error.problem}{where}", 300)
    return one_line(str(error), 300)


def git_commit(path: Path | None = None) -> str:
    """The git commit of the source tree scarce runs from ("unknown" outside a checkout)."""
    where = path or Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"
