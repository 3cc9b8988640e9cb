"""torchrun environment checks that need no second process."""

from __future__ import annotations

import pytest
import torch

from scarce.engine.distributed import DistInfo, init_distributed, process_device
from scarce.errors import ConfigError


def test_without_torchrun_there_is_one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed(torch.device("cpu"))
    assert info == DistInfo() and not info.enabled and info.is_main


def test_more_ranks_than_gpus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrun --nproc_per_node=2 on a one-GPU machine: rank 1 must say why, not fail in set_device."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"local rank 1 but only 1 GPU\(s\) are visible"):
        init_distributed(torch.device("cuda"))


def test_each_rank_gets_its_own_gpu() -> None:
    info = DistInfo(rank=3, world_size=4, local_rank=1)
    assert process_device(torch.device("cuda"), info) == torch.device("cuda", 1)
    assert process_device(torch.device("cpu"), info) == torch.device("cpu")
    assert process_device(torch.device("cuda"), DistInfo()) == torch.device("cuda")
