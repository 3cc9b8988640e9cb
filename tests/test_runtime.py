"""Process-level helpers."""

from __future__ import annotations

import sys

import pytest

from scarce.runtime import environment_info, tune_cpu_allocator


def test_environment_info_has_versions() -> None:
    info = environment_info()
    for key in ("scarce", "torch", "python", "device", "torch_threads", "processor"):
        assert info[key]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_allocator_tuning_applies_and_can_be_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tune_cpu_allocator() is True
    monkeypatch.setenv("SCARCE_NO_MALLOC_TUNING", "1")
    assert tune_cpu_allocator() is False
