"""The ``scarce`` command line: help, info, models, console script."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from scarce.cli import main


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "info" in out and "models" in out


def test_info_prints_versions(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert torch.__version__ in out
    assert "torch_threads" in out and "device" in out


def test_models_lists_presets_with_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "scott-paper" in out and "22,447,680" in out


def test_unknown_command_exits_nonzero() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrainn"])
    assert exit_info.value.code == 2


def test_console_script_and_module_entry_points() -> None:
    script = shutil.which("scarce")
    assert script is not None, "console script 'scarce' is not installed"
    for command in ([script, "info"], [sys.executable, "-m", "scarce", "--version"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert result.returncode == 0, result.stderr
        assert "scarce" in result.stdout


def test_presets_name_method_backbone_and_resolutions(capsys: pytest.CaptureFixture[str]) -> None:
    from scarce.cli import main

    assert main(["presets"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["mocov2-s3l"].split()[1:4] == ["mocov2", "resnet50", "-layer4"]
    assert "112/224 px" in lines["mocov2-s3l"]
    assert lines["scott-cpu-96"].split()[1:3] == ["mimjepa", "scott"]
