"""Multi-process training through ``torchrun`` (PyTorch's own launcher and DDP; no home-made layer).

``torchrun --nproc_per_node=N -m scarce pretrain ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` then joins the process group (NCCL on CUDA, gloo on CPU)
and pins each rank to its GPU. Without those variables everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from scarce.errors import ConfigError

DEFAULT_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device, timeout: timedelta = DEFAULT_TIMEOUT) -> DistInfo:
    """Join the ``torchrun`` process group if there is one; returns this process's place in it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda" and local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"torchrun started local rank {local_rank} but only {torch.cuda.device_count()} GPU(s) are visible: "
            "use --nproc_per_node equal to the number of GPUs (one process per GPU), or --device cpu"
        )
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend, timeout=timeout)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def process_device(device: torch.device, info: DistInfo) -> torch.device:
    """Each rank's own GPU (``cuda:LOCAL_RANK``) under torchrun; the device unchanged otherwise."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def all_reduce_mean(value: float, info: DistInfo, device: torch.device) -> float:
    """Mean of a Python float over the ranks (the value itself in one process)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item()) / info.world_size


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any rank (e.g. a signal arrived)."""
    if not info.enabled:
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
