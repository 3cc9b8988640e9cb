"""Loading a frozen encoder from a run directory, a checkpoint or a weights file, loudly.

The official code silently evaluates a random network when its checkpoint fails to load; here a
missing or unexpected key, a wrong file or a missing run is a :class:`CheckpointError`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from scarce.config import ModelConfig
from scarce.engine.checkpoint import load_checkpoint, load_state_dict_strict
from scarce.engine.run_dir import RunDirectory
from scarce.errors import CheckpointError
from scarce.models.encoder import Encoder, EncoderConfig

WhichEncoder = Literal["context", "target"]
_WEIGHT_FILES = {"context": "encoder.safetensors", "target": "target_encoder.safetensors"}
_CHECKPOINT_PREFIX = {"context": "context_encoder.", "target": "target_encoder."}


@dataclass
class LoadedEncoder:
    encoder: Encoder
    source: str  # what was loaded, e.g. "runs/x/encoder.safetensors" or "random init (seed 0)"
    which: str  # context | target | random-init
    run_dir: Path | None  # the run it came from, if any


def _from_safetensors(path: Path, which: str, run_dir: Path | None) -> LoadedEncoder:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except Exception as error:
        raise CheckpointError(f"cannot read weights {path}: {type(error).__name__}: {error}") from None
    if "encoder_config" not in metadata:
        raise CheckpointError(f"{path} has no encoder_config in its metadata (not written by scarce)")
    encoder = Encoder(EncoderConfig(**json.loads(metadata["encoder_config"])))
    load_state_dict_strict(encoder, state, f"encoder weights {path}")
    return LoadedEncoder(encoder, str(path), which, run_dir)


def _from_checkpoint(path: Path, which: WhichEncoder, run_dir: Path | None) -> LoadedEncoder:
    payload = load_checkpoint(path)
    config = ModelConfig(**payload["config"]["model"]).encoder_config()
    prefix = _CHECKPOINT_PREFIX[which]
    state = {key[len(prefix) :]: value for key, value in payload["method"].items() if key.startswith(prefix)}
    if not state:
        raise CheckpointError(f"checkpoint {path} holds no {which} encoder (no keys starting with {prefix!r})")
    encoder = Encoder(config)
    load_state_dict_strict(encoder, state, f"{which} encoder of {path}")
    return LoadedEncoder(encoder, f"{path} ({which} encoder)", which, run_dir)


def load_encoder(source: str | Path, which: WhichEncoder = "context") -> LoadedEncoder:
    """The ``which`` encoder of a run directory (final weights, else ``checkpoints/last.pt``), of a
    checkpoint ``.pt`` or of a ``.safetensors`` weights file."""
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"no such run directory or checkpoint: {path}")
    if path.is_dir():
        run = RunDirectory(path)
        weights = path / _WEIGHT_FILES[which]
        if weights.is_file():
            return _from_safetensors(weights, which, path)
        if run.last_checkpoint.is_file():
            return _from_checkpoint(run.last_checkpoint, which, path)
        raise CheckpointError(f"{path} holds neither {_WEIGHT_FILES[which]} nor checkpoints/last.pt")
    if path.suffix == ".safetensors":
        return _from_safetensors(path, which, None)
    return _from_checkpoint(path, which, path.parent.parent if path.parent.name == "checkpoints" else None)


def random_encoder(config: EncoderConfig, seed: int = 0) -> LoadedEncoder:
    """A randomly initialised encoder of ``config``: the floor every pretrained encoder must beat."""
    torch.manual_seed(seed)
    return LoadedEncoder(Encoder(config), f"random init (seed {seed})", "random-init", None)
