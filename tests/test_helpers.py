"""The shared test helpers: missing real data skips a test locally and fails it under CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import require_dataset


def test_an_existing_dataset_is_returned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_dataset(tmp_path) == tmp_path


def test_missing_data_skips_outside_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="real data not found"):
        require_dataset(tmp_path / "absent")


def test_missing_data_fails_under_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        require_dataset(tmp_path / "absent")
