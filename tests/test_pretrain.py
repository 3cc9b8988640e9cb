"""End-to-end pretraining on real images: learning, exact resume, CLI, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from scarce.cli import main
from scarce.config import load_config
from scarce.engine.loop import Trainer
from scarce.errors import CheckpointError, DataError
from scarce.pretrain import pretrain
from tests.helpers import IMAGENETTE, TINY_OVERRIDES, needs_data


def _iteration_losses(run_dir: Path) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


@needs_data
def test_two_epochs_on_real_images_loss_goes_down(tmp_path: Path) -> None:
    config = load_config("scott-tiny", TINY_OVERRIDES)
    result = pretrain(config, tmp_path / "run", show_progress=False, log=lambda _: None)
    assert result.status == "finished"
    assert result.epochs_done == 2 and result.steps_done == 2 * (256 // 16)
    losses = _iteration_losses(tmp_path / "run")
    assert len(losses) == 32
    assert np.mean(losses[-6:]) < 0.8 * np.mean(losses[:6])
    epochs = [json.loads(line) for line in (tmp_path / "run" / "epochs.jsonl").read_text().splitlines()]
    assert [record["epoch"] for record in epochs] == [1, 2]
    assert all(record["target_token_std"] > 0 and record["effective_rank"] > 1 for record in epochs)
    assert all(0.0 <= record["online_probe_val_top1"] <= 1.0 for record in epochs)
    weights = load_file(str(tmp_path / "run" / "encoder.safetensors"))
    assert "transformer.mask_token" in weights
    for name in ("config.yaml", "environment.json", "splits.json", "checkpoints/last.pt", "checkpoints/epoch_0002.pt"):
        assert (tmp_path / "run" / name).exists(), name
    environment = json.loads((tmp_path / "run" / "environment.json").read_text())
    assert environment["protocol"] == "inductive" and len(environment["pretrain_fingerprint"]) == 64


@needs_data
def test_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    """1 epoch, then --resume to 2 == 2 epochs straight (model, EMA, optimiser, RNG, data order)."""
    config = load_config("scott-tiny", TINY_OVERRIDES)
    quiet = {"show_progress": False, "log": lambda _: None}
    pretrain(config, tmp_path / "straight", **quiet)
    first = pretrain(config, tmp_path / "resumed", stop_after_epoch=1, **quiet)
    assert first.status == "stopped" and first.epochs_done == 1
    second = pretrain(config, tmp_path / "resumed", resume=True, **quiet)
    assert second.status == "finished"
    assert _iteration_losses(tmp_path / "straight") == _iteration_losses(tmp_path / "resumed")
    straight = load_file(str(tmp_path / "straight" / "target_encoder.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "target_encoder.safetensors"))
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)


@needs_data
def test_loader_workers_do_not_change_the_data(tmp_path: Path) -> None:
    overrides = [*TINY_OVERRIDES, "schedule.epochs=1", "run.online_probe=false"]
    quiet = {"show_progress": False, "log": lambda _: None}
    pretrain(load_config("scott-tiny", overrides), tmp_path / "w0", **quiet)
    pretrain(load_config("scott-tiny", [*overrides, "data.num_workers=1"]), tmp_path / "w1", **quiet)
    assert _iteration_losses(tmp_path / "w0") == _iteration_losses(tmp_path / "w1")


@needs_data
def test_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "cli-run"
    args = ["pretrain", "-c", "scott-tiny", "--data", f"npz:{IMAGENETTE}", "-o", str(run_dir), "--limit", "64"]
    args += ["--epochs", "1", "--batch-size", "16", "--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "finished" in out and "encoder.safetensors" in out
    assert (run_dir / "encoder.safetensors").exists()


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_config_key_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_error(
        ["pretrain", "-c", "scott-tiny", "--data", "npz:x", "-o", str(tmp_path / "r"), "--set", "model.dpth=3"], capsys
    )
    assert "model.dpth" in err
    assert not (tmp_path / "r").exists()


def test_missing_and_empty_data_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _cli_error(
        ["pretrain", "-c", "scott-tiny", "--data", f"folder:{tmp_path / 'nope'}", "-o", str(tmp_path / "r")], capsys
    )
    assert "nope" in err
    assert not (tmp_path / "r").exists()  # nothing written for a run that could not start
    (tmp_path / "empty").mkdir()
    err = _cli_error(
        ["pretrain", "-c", "scott-tiny", "--data", f"folder:{tmp_path / 'empty'}", "-o", str(tmp_path / "r2")], capsys
    )
    assert "empty" in err


def test_unreadable_image_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(4):
        Image.new("RGB", (40, 40), (index * 40, 0, 0)).save(folder / f"ok_{index}.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    err = _cli_error(["pretrain", "-c", "scott-tiny", "--data", f"folder:{folder}", "-o", str(tmp_path / "r")], capsys)
    assert "broken.jpg" in err


def test_fewer_images_than_one_batch(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "few"
    folder.mkdir()
    for index in range(5):
        Image.new("RGB", (32, 32), (0, index * 40, 0)).save(folder / f"{index}.png")
    config = load_config("scott-tiny", [f"data.spec=folder:{folder}", "data.num_workers=0", "run.tensorboard=false"])
    with pytest.raises(DataError, match="fewer than one batch"):
        pretrain(config, tmp_path / "r", show_progress=False, log=lambda _: None)


@needs_data
def test_resume_refuses_changed_model_and_existing_dir(tmp_path: Path) -> None:
    config = load_config("scott-tiny", [*TINY_OVERRIDES, "data.subset_total=32", "schedule.epochs=1"])
    quiet = {"show_progress": False, "log": lambda _: None}
    pretrain(config, tmp_path / "run", **quiet)
    checkpoint_bytes = (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a run"):
        pretrain(config, tmp_path / "run", **quiet)
    changed = load_config("scott-tiny", [*TINY_OVERRIDES, "data.subset_total=32", "schedule.epochs=1", "model.depth=3"])
    with pytest.raises(CheckpointError, match=r"model.depth: 2 -> 3"):
        pretrain(changed, tmp_path / "run", resume=True, **quiet)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").read_bytes() == checkpoint_bytes


def test_resume_without_checkpoint(tmp_path: Path) -> None:
    config = load_config("scott-tiny", ["data.spec=npz:x"])
    with pytest.raises(CheckpointError, match="no checkpoint"):
        pretrain(config, tmp_path / "nothing", resume=True)


def test_ctrl_c_and_sigterm_share_one_stop_handler() -> None:
    """Ctrl-C (SIGINT) and SIGTERM install the same handler, which only records the signal (the loop
    checkpoints at the next step); the real-signal test below sends SIGTERM."""
    trainer = SimpleNamespace(_stop_signal=None)
    previous = Trainer._install_signal_handlers(trainer)  # type: ignore[arg-type]
    try:
        interrupt, terminate = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
        assert callable(interrupt) and interrupt is terminate
        interrupt(signal.SIGINT, None)
        assert trainer._stop_signal == signal.SIGINT
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert set(previous) == {signal.SIGINT, signal.SIGTERM}


@needs_data
def test_signal_saves_checkpoint_and_exits(tmp_path: Path) -> None:
    """A real SIGTERM in the middle of training: checkpoint written, clean exit, resumable."""
    signum = signal.SIGTERM
    run_dir = tmp_path / "sig"
    command = [sys.executable, "-m", "scarce", "pretrain", "-c", "scott-tiny", "--data", f"npz:{IMAGENETTE}"]
    command += [
        "-o",
        str(run_dir),
        "--epochs",
        "200",
        "--limit",
        "256",
        "--workers",
        "0",
        "--no-progress",
        "--set",
        "run.tensorboard=false",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.2)
    process.send_signal(signum)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 128 + int(signal.SIGINT), err[-2000:]
    assert "continue with --resume" in out + err
    assert "Traceback" not in err
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["state"]
    assert state["step"] >= 3
    resumed = subprocess.run(
        [*command, "--resume", "--stop-after-epoch", str(state["epoch"] + 1)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "stopped" in resumed.stdout


def _nan_after(calls: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make MIM-JEPA's loss NaN from the ``calls``-th training step on."""
    from scarce.methods.mimjepa import MIMJEPA

    original = MIMJEPA.training_step
    counter = {"calls": 0}

    def poisoned(self: MIMJEPA, batch: object) -> object:
        output = original(self, batch)  # type: ignore[arg-type]
        counter["calls"] += 1
        if counter["calls"] >= calls:
            output.loss = output.loss * float("nan")
        return output

    monkeypatch.setattr(MIMJEPA, "training_step", poisoned)


@needs_data
def test_nan_loss_stops_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _nan_after(20, monkeypatch)  # epoch 1 has 16 steps: its checkpoint is written, epoch 2 diverges
    run_dir = tmp_path / "nan"
    args = ["pretrain", "-c", "scott-tiny", "--data", f"npz:{IMAGENETTE}", "-o", str(run_dir), "--limit", "256"]
    args += ["--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "loss is nan at step 19 (epoch 2)" in err and "last.pt" in err
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["state"]
    assert (state["epoch"], state["step"], state["step_in_epoch"]) == (1, 16, 0)
    assert not (run_dir / "encoder.safetensors").exists()


@needs_data
def test_accumulation_counts_optimiser_steps(tmp_path: Path) -> None:
    overrides = [*TINY_OVERRIDES, "schedule.epochs=1", "optim.accumulation_steps=2", "optim.clip_grad=1.0"]
    result = pretrain(load_config("scott-tiny", overrides), tmp_path / "acc", show_progress=False, log=lambda _: None)
    assert result.status == "finished" and result.steps_done == 256 // 16  # batch_size is the global batch
    steps = [json.loads(line)["step"] for line in (tmp_path / "acc" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [(micro + 1) // 2 for micro in range(32)]  # micro-batches of 8; a step after every 2nd


@needs_data
def test_transductive_protocol_and_subset_file_list(tmp_path: Path) -> None:
    overrides = [f"data.spec=npz:{IMAGENETTE}", "data.subset_per_class=8", "data.protocol=transductive"]
    overrides += ["data.num_workers=0", "run.tensorboard=false", "schedule.epochs=1"]
    pretrain(load_config("scott-tiny", overrides), tmp_path / "td", show_progress=False, log=lambda _: None)
    environment = json.loads((tmp_path / "td" / "environment.json").read_text())
    splits = json.loads((tmp_path / "td" / "splits.json").read_text())
    assert environment["protocol"] == "transductive"
    assert len(splits["subset"]) == 80 == environment["labelled_train_images"]
    assert environment["pretrain_images"] == 80 + len(splits["val"]) + len(splits["test"])
    assert not set(splits["subset"]) & set(splits["test"])
