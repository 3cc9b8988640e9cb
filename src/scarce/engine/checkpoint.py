"""Checkpoints: atomic writes, safe and loud loads.

A checkpoint is a ``torch.save`` mapping with a format tag. It is written to a temporary file in
the same directory and renamed over the old one, so a crash while saving never damages the last
good checkpoint. Loading never runs code from the file (``torch.load(weights_only=True)``: tensors
and plain containers only), then checks the tag, the required keys and the type of every part, so a
malformed file is a one-line :class:`CheckpointError` naming the file and the problem.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from scarce.errors import CheckpointError

CHECKPOINT_FORMAT = "scarce-checkpoint-v1"
REQUIRED_KEYS = ("format", "config", "method", "optimizer", "state", "rng")
STATE_COUNTERS = ("epoch", "step", "step_in_epoch")
"""The integer counters of the training state every checkpoint holds."""
LAST_CHECKPOINT = "last.pt"
_EPOCH_CHECKPOINT = re.compile(r"epoch_(\d+)\.pt")

_FORBIDDEN_GLOBAL = re.compile(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL)\s+([\w.]+)")
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def one_line(text: str, limit: int = 400) -> str:
    """``text`` with its whitespace runs (newlines included) collapsed to one space, cut at ``limit``."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def epoch_checkpoint_name(epoch: int) -> str:
    """The file name of the numbered checkpoint written after ``epoch``."""
    return f"epoch_{epoch:04d}.pt"


def numbered_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """The numbered checkpoints (``epoch_NNNN.pt``) in ``checkpoint_dir``, newest epoch first."""
    if not checkpoint_dir.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in checkpoint_dir.iterdir()
        if (match := _EPOCH_CHECKPOINT.fullmatch(path.name))
    ]
    return [path for _, path in sorted(found, key=lambda item: item[0], reverse=True)]


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


def _describe_load_error(error: Exception) -> str:
    """One line for why ``torch.load(weights_only=True)`` failed (its own messages span many lines)."""
    message = str(error)
    if isinstance(error, pickle.UnpicklingError):
        forbidden = _FORBIDDEN_GLOBAL.search(message)
        if forbidden:
            return f"it refers to {forbidden.group(1)}, which is code, not data (only tensors and plain values load)"
        lines = [line.strip() for line in message.splitlines() if line.strip()]
        details = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)] or lines[:1]
        return f"not a torch checkpoint or damaged: {one_line(' '.join(details), 200)}"
    if isinstance(error, EOFError):
        return "the file is empty or truncated (EOFError)"
    first_sentence = re.split(r"(?<=\.)\s", message.strip(), maxsplit=1)[0]
    if "zip archive" in first_sentence:
        return f"the file is truncated or damaged ({one_line(first_sentence, 200)})"
    return f"{type(error).__name__}: {one_line(first_sentence, 200)}"


def _tensor_mapping_problem(value: object, key: str) -> str | None:
    """Why ``value`` is not a state dict (names -> tensors), or None."""
    if not isinstance(value, Mapping):
        return f"'{key}' is a {type(value).__name__}, not a mapping of names to tensors"
    for name, item in value.items():
        if not isinstance(name, str) or not isinstance(item, torch.Tensor):
            return f"'{key}' maps {one_line(repr(name), 80)} to a {type(item).__name__}, not a tensor"
    return None


def _optimizer_problem(value: object, key: str = "optimizer") -> str | None:
    """Why ``value`` is not an optimizer state dict, or None."""
    groups = value.get("param_groups") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(value.get("state"), dict) or not isinstance(groups, list):
        return f"'{key}' is not an optimizer state (a dict with 'state' and 'param_groups')"
    parameters: set[int] = set()
    for group in groups:
        ids = group.get("params") if isinstance(group, dict) else None
        if not isinstance(ids, list) or not all(isinstance(index, int) for index in ids):
            return f"'{key}.param_groups' holds a group without a list of parameter ids ('params')"
        parameters.update(ids)
    for index, entry in value["state"].items():
        if index not in parameters or not isinstance(entry, dict):
            return f"'{key}.state' holds an entry {one_line(repr(index), 80)} for no parameter of its groups"
    return None


def _probe_problem(value: object) -> str | None:
    """Why ``value`` is not the online probe's state (its weights and its optimizer's), or None."""
    if not isinstance(value, dict):
        return f"'probe' is a {type(value).__name__}, not a dict"
    return _tensor_mapping_problem(value.get("probe"), "probe.probe") or _optimizer_problem(
        value.get("optimizer"), "probe.optimizer"
    )


def _state_problem(value: object) -> str | None:
    """Why ``value`` is not a training state (counters and plain numbers), or None."""
    if not isinstance(value, dict):
        return f"'state' is a {type(value).__name__}, not a dict"
    for key in STATE_COUNTERS:
        if key not in value:
            return f"'state' misses '{key}'"
        counter = value[key]
        if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
            return f"'state.{key}' is {one_line(repr(counter), 80)}, not a count"
    for key, item in value.items():
        if not isinstance(key, str) or not (item is None or isinstance(item, int | float)) or isinstance(item, bool):
            return f"'state.{one_line(str(key), 80)}' is a {type(item).__name__}, not a number"
    return None


def _rng_problem(value: object) -> str | None:
    """Why ``value`` is not the random generators' state, or None."""
    if not isinstance(value, dict) or not isinstance(value.get("torch"), torch.Tensor):
        return "'rng' holds no 'torch' generator state"
    expected = torch.get_rng_state()
    state = value["torch"]
    if state.dtype != torch.uint8 or state.shape != expected.shape:
        return (
            f"'rng.torch' is a {state.dtype} tensor of shape {list(state.shape)}, "
            f"not the CPU generator state (uint8, {expected.numel()} bytes)"
        )
    cuda = value.get("cuda")
    if cuda is not None and (
        not isinstance(cuda, list | tuple)
        or not all(isinstance(item, torch.Tensor) and item.dtype == torch.uint8 for item in cuda)
    ):
        return "'rng.cuda' is not a list of uint8 generator states"
    return None


def _payload_problem(payload: dict[str, Any]) -> str | None:
    """The first structural problem of a tagged payload with every required key, or None."""
    if not isinstance(payload["config"], dict):
        return f"'config' is a {type(payload['config']).__name__}, not a dict"
    probe = payload.get("probe")
    return (
        _tensor_mapping_problem(payload["method"], "method")
        or _optimizer_problem(payload["optimizer"])
        or (None if probe is None else _probe_problem(probe))
        or _state_problem(payload["state"])
        or _rng_problem(payload["rng"])
    )


def validate_payload(payload: object, path: Path) -> dict[str, Any]:
    """``payload`` if it is a well-formed scarce checkpoint: the format tag, the required keys and
    their types (``config`` a dict; ``method`` a state dict of tensors; ``optimizer`` an optimizer
    state; ``probe`` None or the online probe's weights and optimizer state; ``state`` the integer
    counters and plain numbers; ``rng`` the CPU generator's uint8 state). Otherwise a one-line
    :class:`CheckpointError` naming ``path`` and the key."""
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a scarce checkpoint (format tag {CHECKPOINT_FORMAT!r} missing)")
    missing = [key for key in REQUIRED_KEYS if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} misses keys: {', '.join(missing)}")
    problem = _payload_problem(payload)
    if problem:
        raise CheckpointError(f"checkpoint {path} is malformed: {problem}")
    return payload


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load and validate a checkpoint without running any code from the file; a missing, damaged,
    foreign or malformed file is a one-line :class:`CheckpointError` naming the problem."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol warning: the error below says it all
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a forbidden global, a corrupt or truncated file, another format
        raise CheckpointError(f"cannot read checkpoint {path}: {_describe_load_error(error)}") from None
    return validate_payload(payload, path)


def load_resume_checkpoint(checkpoint_dir: Path, log: Callable[[str], None]) -> tuple[Path, dict[str, Any]]:
    """The newest readable checkpoint of ``checkpoint_dir`` to resume from, and its payload.

    ``last.pt`` first; if it is missing, damaged or malformed (or its training state is not one this
    version can restore), the numbered ``epoch_NNNN.pt`` files newest first, with one logged line
    naming what was skipped and what is resumed from. None readable: a one-line
    :class:`CheckpointError` listing what was tried. Nothing is deleted."""
    from dataclasses import fields

    from scarce.engine.loop import TrainState  # the loop imports this module

    known = {field.name for field in fields(TrainState)}
    last = checkpoint_dir / LAST_CHECKPOINT
    candidates = ([last] if last.exists() else []) + numbered_checkpoints(checkpoint_dir)
    if not candidates:
        raise CheckpointError(f"--resume: no checkpoint in {checkpoint_dir} ({LAST_CHECKPOINT} or epoch_NNNN.pt)")
    skipped: list[str] = []
    for path in candidates:
        try:
            payload = load_checkpoint(path)
            unknown = sorted(set(payload["state"]) - known)
            if unknown:
                raise CheckpointError(f"checkpoint {path} is malformed: 'state' holds unknown keys {unknown}")
        except CheckpointError as error:
            skipped.append(str(error))
            continue
        if skipped or path != last:
            missing = [] if last.exists() else [f"{last} is missing"]
            log(f"warning: {'; '.join(missing + skipped)}; resuming from {path}")
        return path, payload
    raise CheckpointError(f"--resume: no readable checkpoint in {checkpoint_dir}: {'; '.join(skipped)}")


def load_optimizer_state(optimizer: torch.optim.Optimizer, state_dict: dict[str, Any], what: str) -> None:
    """``optimizer.load_state_dict`` that refuses, as a one-line :class:`CheckpointError`, a state whose
    groups or per-parameter tensors do not fit the optimizer's parameters (torch would only fail at
    the next step, or with a multi-line error)."""
    parameters = [parameter for group in optimizer.param_groups for parameter in group["params"]]
    saved = [index for group in state_dict["param_groups"] for index in group["params"]]
    if len(saved) != len(parameters):
        raise CheckpointError(f"{what}: it has {len(saved)} parameters, the optimizer {len(parameters)}")
    for index, parameter in zip(saved, parameters, strict=True):
        for name, value in state_dict["state"].get(index, {}).items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != parameter.shape:
                raise CheckpointError(
                    f"{what}: '{name}' of parameter {index} has shape {list(value.shape)}, "
                    f"the parameter {list(parameter.shape)}"
                )
    try:
        optimizer.load_state_dict(state_dict)
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{what}: {one_line(str(error), 300)}") from None


def load_state_dict_strict(module: torch.nn.Module, state_dict: Mapping[str, Any], what: str) -> None:
    """``load_state_dict(strict=True)`` that reports missing/unexpected keys and tensors of the
    wrong shape as a one-line :class:`CheckpointError`."""
    try:
        result = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # size mismatches: "Error(s) in loading state_dict for X:\n\tsize mismatch..."
        lines = [line.strip().rstrip(".") for line in str(error).splitlines()[1:] if line.strip()] or [str(error)]
        raise CheckpointError(
            one_line(f"{what}: {len(lines)} tensors do not fit (e.g. {'; '.join(lines[:2])})", 600)
        ) from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} keys (e.g. {', '.join(result.missing_keys[:3])})")
    if result.unexpected_keys:
        problems.append(f"unexpected {len(result.unexpected_keys)} keys (e.g. {', '.join(result.unexpected_keys[:3])})")
    if problems:
        raise CheckpointError(f"{what}: {'; '.join(problems)}")
