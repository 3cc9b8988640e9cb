"""Checkpoints: atomic writes, loud loads.

A checkpoint is a ``torch.save`` mapping with a format tag. It is written to a temporary file in
the same directory and renamed over the old one, so a crash while saving never damages the last
good checkpoint. Loading checks the tag and the required keys and names what is missing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from scarce.errors import CheckpointError

CHECKPOINT_FORMAT = "scarce-checkpoint-v1"
REQUIRED_KEYS = ("format", "config", "method", "optimizer", "state", "rng")


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(temporary_path)`` then atomically rename the file to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Atomically save ``payload`` (must hold :data:`REQUIRED_KEYS` except ``format``)."""
    missing = [key for key in REQUIRED_KEYS if key != "format" and key not in payload]
    if missing:
        raise ValueError(f"checkpoint payload misses {missing}")
    atomic_write(path, lambda temporary: torch.save({"format": CHECKPOINT_FORMAT, **payload}, temporary))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load and validate a checkpoint; :class:`CheckpointError` names the problem."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # corrupt or truncated file, wrong format
        raise CheckpointError(f"cannot read checkpoint {path}: {type(error).__name__}: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a scarce checkpoint (format tag {CHECKPOINT_FORMAT!r} missing)")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} misses keys: {', '.join(missing)}")
    return payload


def load_state_dict_strict(module: torch.nn.Module, state_dict: dict[str, Any], what: str) -> None:
    """``load_state_dict(strict=True)`` that reports missing/unexpected keys as a one-line error."""
    result = module.load_state_dict(state_dict, strict=False)
    problems = []
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} keys (e.g. {', '.join(result.missing_keys[:3])})")
    if result.unexpected_keys:
        problems.append(f"unexpected {len(result.unexpected_keys)} keys (e.g. {', '.join(result.unexpected_keys[:3])})")
    if problems:
        raise CheckpointError(f"{what}: {'; '.join(problems)}")
