"""Loading a frozen encoder from a run directory, a checkpoint or a weights file, loudly.

The official code silently evaluates a random network when its checkpoint fails to load; here a
missing or unexpected key, a wrong file or a missing run is a :class:`CheckpointError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel
from safetensors import safe_open
from safetensors.torch import load_file

from scarce.config import build_config
from scarce.engine.checkpoint import load_checkpoint, load_state_dict_strict, one_line
from scarce.engine.run_dir import RunDirectory
from scarce.errors import CheckpointError, ScarceError
from scarce.models.backbone import BackboneConfig, build_backbone, config_from_metadata
from scarce.models.encoder import Encoder
from scarce.models.resnet import ResNetBackbone

WhichEncoder = Literal["context", "target"]
_WEIGHT_FILES = {"context": "encoder.safetensors", "target": "target_encoder.safetensors"}
# MIM-JEPA names its encoders context_encoder / target_encoder; the other methods encoder /
# target_encoder (MoCo's key encoder, BYOL's target network).
_CHECKPOINT_PREFIXES = {"context": ("context_encoder.", "encoder."), "target": ("target_encoder.",)}


@dataclass
class LoadedEncoder:
    encoder: Encoder | ResNetBackbone
    source: str  # what was loaded, e.g. "runs/x/encoder.safetensors" or "random init (seed 0)"
    which: str  # context | target | random-init
    run_dir: Path | None  # the run it came from, if any


def _from_safetensors(path: Path, which: str, run_dir: Path | None) -> LoadedEncoder:
    """A weights file (safetensors holds tensors and string metadata only: nothing in it runs)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except Exception as error:  # a damaged header, a truncated file, not safetensors at all
        raise CheckpointError(
            f"cannot read weights {path}: {type(error).__name__}: {one_line(str(error), 300)}"
        ) from None
    try:
        config = config_from_metadata(metadata)
    except (ValueError, TypeError) as error:  # the stored config is not JSON, or not a valid config
        raise CheckpointError(f"weights {path}: {one_line(str(error), 300)}") from None
    if config is None:
        raise CheckpointError(f"{path} has no encoder_config in its metadata (not written by scarce)")
    return LoadedEncoder(_build(config, f"encoder weights {path}", state), str(path), which, run_dir)


def _build(config: BaseModel, what: str, state: dict[str, torch.Tensor] | None = None) -> Encoder | ResNetBackbone:
    """The backbone of ``config``, with ``state`` (if given) loaded strictly; a config no encoder
    can be built from is a one-line :class:`CheckpointError` naming ``what``."""
    try:
        encoder = build_backbone(config)
    except (ScarceError, ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"{what}: cannot build its backbone: {one_line(str(error), 300)}") from None
    if not isinstance(encoder, Encoder | ResNetBackbone):
        raise CheckpointError(f"{what}: its config builds a {type(encoder).__name__}, not an encoder")
    if state is not None:
        load_state_dict_strict(encoder, state, what)
    return encoder


def _from_checkpoint(path: Path, which: WhichEncoder, run_dir: Path | None) -> LoadedEncoder:
    payload = load_checkpoint(path)  # safe (no code runs) and validated: "method" maps names to tensors
    try:
        config = build_config(payload["config"]).network_config()
    except (ScarceError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"checkpoint {path}: its config is unreadable: {one_line(str(error), 300)}") from None
    state: dict[str, torch.Tensor] = {}
    for prefix in _CHECKPOINT_PREFIXES[which]:
        state = {key[len(prefix) :]: value for key, value in payload["method"].items() if key.startswith(prefix)}
        if state:
            break
    if not state:
        wanted = " or ".join(repr(prefix) for prefix in _CHECKPOINT_PREFIXES[which])
        raise CheckpointError(f"checkpoint {path} holds no {which} encoder (no keys starting with {wanted})")
    encoder = _build(config, f"{which} encoder of {path}", state)
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


def random_encoder(config: BackboneConfig, seed: int = 0) -> LoadedEncoder:
    """A randomly initialised backbone of ``config``: the floor every pretrained encoder must beat."""
    torch.manual_seed(seed)
    return LoadedEncoder(_build(config, "random init"), f"random init (seed {seed})", "random-init", None)
