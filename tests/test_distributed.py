"""Multi-process training with torchrun + gloo on CPU: equivalence, single writer, resume, crashes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import IMAGENETTE, needs_data

pytestmark = [needs_data, pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")]

# Dropout and drop path off: with them, ranks draw different random masks than one process would.
# Adam's eps raised to 1: Adam's first steps turn float round-off in near-zero gradients into
# +-lr updates (sign-like), which would hide a real difference; with eps=1 the update is linear in
# the gradient and the two setups must agree to float tolerance.
DETERMINISTIC = ["model.dropout_rate=0", "model.attention_dropout=0", "model.stochastic_depth_rate=0", "optim.eps=1.0"]


def _args(run_dir: Path, *extra: str, limit: int = 64) -> list[str]:
    args = ["pretrain", "-c", "scott-tiny", "--data", f"npz:{IMAGENETTE}", "-o", str(run_dir), "--limit", str(limit)]
    args += ["--batch-size", "16", "--workers", "0", "--device", "cpu", "--no-progress"]  # gloo, also on a GPU machine
    for override in [*DETERMINISTIC, "run.tensorboard=false", "run.online_probe=false"]:
        args += ["--set", override]
    return args + list(extra)


def _run(args: list[str], processes: int, timeout: int = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, "-m", "scarce", *args]
    else:
        command = ["torchrun", "--standalone", f"--nproc_per_node={processes}", "-m", "scarce", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def _losses(run_dir: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _assert_same_losses(first: Path, second: Path, rel: float = 1e-5) -> None:
    """Equal up to float reduction order."""
    for a, b in zip(_losses(first), _losses(second), strict=True):
        assert a == pytest.approx(b, rel=rel)


def _assert_same_weights(first: Path, second: Path, atol: float = 1e-5) -> None:
    for name in ("encoder.safetensors", "target_encoder.safetensors"):
        a, b = load_file(str(first / name)), load_file(str(second / name))
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=atol, msg=f"{name}:{key}")


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs in one process: the reference the multi-rank and resumed runs must match."""
    run_dir = tmp_path_factory.mktemp("one") / "run"
    one = _run(_args(run_dir, "--epochs", "2"), processes=1)
    assert one.returncode == 0, one.stderr[-3000:]
    return run_dir


def test_one_step_of_two_ranks_equals_one_process_with_the_same_samples(tmp_path: Path) -> None:
    """One optimiser step: 2 ranks x 8 images == 1 process x 16 images, updated weights (context
    encoder and EMA target) equal to float tolerance."""
    one = _run(_args(tmp_path / "one", "--epochs", "1", limit=16), processes=1)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(_args(tmp_path / "two", "--epochs", "1", limit=16), processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert len(_losses(tmp_path / "two")) == 1
    _assert_same_weights(tmp_path / "one", tmp_path / "two", atol=1e-6)


def test_two_ranks_train_like_one_process_and_write_files_once(one_process_run: Path, tmp_path: Path) -> None:
    two = _run(_args(tmp_path / "two", "--epochs", "2"), processes=2)
    assert two.returncode == 0, two.stderr[-3000:]
    assert len(_losses(tmp_path / "two")) == len(_losses(one_process_run)) == 8  # one line per step, not per rank
    _assert_same_losses(one_process_run, tmp_path / "two")
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == [
        "epoch_0001.pt",
        "epoch_0002.pt",
        "last.pt",
    ]
    assert two.stdout.count("epoch 2/2") == 1  # rank 0 alone reports


@pytest.mark.parametrize(("first", "second"), [(2, 1), (1, 2)])
def test_resume_under_another_world_size(one_process_run: Path, tmp_path: Path, first: int, second: int) -> None:
    start = _run(_args(tmp_path / "run", "--epochs", "2", "--stop-after-epoch", "1"), processes=first)
    assert start.returncode == 0, start.stderr[-3000:]
    resumed = _run(_args(tmp_path / "run", "--epochs", "2", "--resume"), processes=second)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_losses(one_process_run, tmp_path / "run")


def test_a_crashed_rank_fails_the_job_without_hanging(tmp_path: Path) -> None:
    script = (
        "import os, sys\n"
        "from scarce.methods.mimjepa import MIMJEPA\n"
        "original = MIMJEPA.training_step\n"
        "calls = []\n"
        "def crash(self, batch):\n"
        "    calls.append(1)\n"
        "    if os.environ['RANK'] == '1' and len(calls) == 2:\n"
        "        raise RuntimeError('rank 1 crashed on purpose')\n"
        "    return original(self, batch)\n"
        "MIMJEPA.training_step = crash\n"
        "from scarce.cli import main\n"
        f"sys.exit(main({_args(tmp_path / 'crash', '--epochs', '2')!r}))\n"
    )
    (tmp_path / "crash.py").write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node=2", str(tmp_path / "crash.py")],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert result.returncode != 0
    assert "rank 1 crashed on purpose" in result.stdout + result.stderr


def test_moco_queue_takes_the_keys_of_every_rank(tmp_path: Path) -> None:
    """Under 2 ranks the queue advances by the global batch per step (keys gathered). (SimCLR's
    negatives gathered across ranks: ``test_nt_xent_gathered_over_two_ranks_equals_one_process``.)"""
    from scarce.engine.checkpoint import load_checkpoint

    common = ["--data", f"npz:{IMAGENETTE}", "--limit", "64", "--batch-size", "16", "--workers", "0", "--no-progress"]
    small = ["backbone.kind=resnet18", "model.img_size=32", "augmentation.blur_kernel=3", "run.tensorboard=false"]
    small += ["run.online_probe=false", "contrastive.projection_hidden=32", "contrastive.projection_dim=16"]
    overrides = [item for override in [*small, "contrastive.queue_size=40"] for item in ("--set", override)]
    moco = _run(["pretrain", "-c", "mocov2-s3l", "-o", str(tmp_path / "moco"), "--epochs", "1", *common, *overrides], 2)
    assert moco.returncode == 0, moco.stderr[-3000:]
    state = load_checkpoint(tmp_path / "moco" / "checkpoints" / "last.pt")["method"]
    assert int(state["queue_pointer"]) == (4 * 16) % 40  # 4 steps x 16 keys (8 per rank)
    assert len(_losses(tmp_path / "moco")) == 4  # one line per step, written by rank 0 alone
