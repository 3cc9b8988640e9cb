"""Safe loading: no file scarce reads runs code, and every malformed checkpoint, weights file or run
configuration is a one-line :class:`CheckpointError` (exit code 2 on the command line)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from scarce.cli import main
from scarce.config import load_config
from scarce.engine.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    load_optimizer_state,
    load_resume_checkpoint,
    load_state_dict_strict,
    save_checkpoint,
)
from scarce.engine.run_dir import RunDirectory
from scarce.errors import CheckpointError
from scarce.eval.encoders import load_encoder
from scarce.models.backbone import backbone_metadata, build_backbone
from scarce.pretrain import pretrain
from tests.helpers import IMAGENETTE, TINY_OVERRIDES, needs_data


class _RunsCommand:
    """Unpickling this runs ``touch marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], int], tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _payload(**changes: Any) -> dict[str, Any]:
    """A small well-formed checkpoint payload (without the format tag), with ``changes`` applied."""
    payload: dict[str, Any] = {
        "config": {},
        "method": {"encoder.w": torch.ones(2)},
        "optimizer": {"state": {0: {"step": torch.tensor(1.0)}}, "param_groups": [{"params": [0], "lr": 0.1}]},
        "probe": None,
        "state": {"epoch": 1, "step": 2, "step_in_epoch": 0, "best_val_top1": -1.0, "first_effective_rank": None},
        "rng": {"torch": torch.get_rng_state()},
    }
    return {**payload, **changes}


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint with the right format tag whose weights would run ``touch marker`` when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": CHECKPOINT_FORMAT, **_payload(method={"encoder.w": _RunsCommand(marker)})}, path)
    return path


def _one_line_error(call: Callable[[], object], *fragments: str) -> str:
    """The message of the :class:`CheckpointError` ``call`` raises: one line holding every fragment."""
    with pytest.raises(CheckpointError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and len(message) < 1000, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def _cli_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in-process: exit code 2 and exactly one line on stderr, returned."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def _snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# ---------------------------------------------------------------- files that would run code


def test_checkpoint_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _malicious_checkpoint(tmp_path / "evil.pt", marker)
    _one_line_error(lambda: load_checkpoint(path), str(path), "system", "not data")
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the file really is dangerous: an unsafe load runs the command
    assert marker.exists()


@pytest.mark.parametrize("as_run_dir", [False, True], ids=["checkpoint", "run-dir"])
def test_evaluate_refuses_a_checkpoint_that_runs_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_run_dir: bool
) -> None:
    marker = tmp_path / "pwned"
    path = _malicious_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", marker)
    source = tmp_path / "run" if as_run_dir else path
    err = _cli_error(["evaluate", str(source), "--data", "npz:unused", "--out", str(tmp_path / "out")], capsys)
    assert "cannot read checkpoint" in err and str(path) in err
    assert not marker.exists()


@needs_data
def test_supervised_init_refuses_a_checkpoint_that_runs_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    path = _malicious_checkpoint(tmp_path / "evil.pt", marker)
    args = ["supervised", "-c", "scott-tiny", "--data", f"npz:{IMAGENETTE}", "-o", str(tmp_path / "ft")]
    args += ["--limit", "32", "--workers", "0", "--no-progress", "--set", "run.tensorboard=false", "--init", str(path)]
    err = _cli_error(args, capsys)
    assert "cannot read checkpoint" in err and str(path) in err
    assert not marker.exists()


def test_run_config_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run = RunDirectory(tmp_path / "run")
    run.create()
    run.config_path.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    _one_line_error(run.read_config, "cannot read", str(run.config_path))
    assert not marker.exists()


# ---------------------------------------------------------------- damaged files


def _truncated(path: Path) -> None:
    save_checkpoint(path, _payload())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _plain_pickle_running_code(path: Path) -> None:
    import pickle

    path.write_bytes(pickle.dumps(_RunsCommand(path.parent / "pwned")))


DAMAGES: dict[str, Callable[[Path], object]] = {
    "truncated": _truncated,
    "random-bytes": lambda path: path.write_bytes(bytes(range(256)) * 20),
    "empty": lambda path: path.write_bytes(b""),
    "text": lambda path: path.write_text("not a checkpoint\n"),
    "plain-pickle-running-code": _plain_pickle_running_code,
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_damaged_checkpoint_is_one_line_error(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "last.pt"
    DAMAGES[damage](path)
    _one_line_error(lambda: load_checkpoint(path), "cannot read checkpoint", str(path))
    assert not (tmp_path / "pwned").exists()


WRONG_CONTENTS: dict[str, tuple[dict[str, Any], str]] = {
    "config-list": ({"config": [1, 2]}, "'config'"),
    "method-list": ({"method": [torch.ones(2)]}, "'method'"),
    "method-not-tensor": ({"method": {"encoder.w": [1.0, 2.0]}}, "'method' maps 'encoder.w'"),
    "probe-list": ({"probe": [torch.ones(1)]}, "'probe'"),
    "probe-weights-list": ({"probe": {"probe": [1], "optimizer": {"state": {}, "param_groups": []}}}, "'probe.probe'"),
    "probe-no-optimizer": ({"probe": {"probe": {"w": torch.ones(1)}}}, "'probe.optimizer'"),
    "optimizer-no-groups": ({"optimizer": {"state": {}}}, "'optimizer'"),
    "optimizer-bad-group": ({"optimizer": {"state": {}, "param_groups": [{"lr": 1.0}]}}, "'optimizer.param_groups'"),
    "optimizer-orphan-state": (
        {"optimizer": {"state": {7: {}}, "param_groups": [{"params": [0]}]}},
        "'optimizer.state'",
    ),
    "state-no-epoch": ({"state": {"step": 2, "step_in_epoch": 0}}, "'state' misses 'epoch'"),
    "state-epoch-text": ({"state": {"epoch": "1", "step": 2, "step_in_epoch": 0}}, "'state.epoch'"),
    "state-negative-step": ({"state": {"epoch": 1, "step": -2, "step_in_epoch": 0}}, "'state.step'"),
    "state-tensor-value": (
        {"state": {"epoch": 1, "step": 2, "step_in_epoch": 0, "best_val_top1": torch.ones(1)}},
        "'state.best_val_top1'",
    ),
    "rng-missing-torch": ({"rng": {}}, "'rng'"),
    "rng-float": ({"rng": {"torch": torch.zeros(5056)}}, "'rng.torch'"),
    "rng-short": ({"rng": {"torch": torch.zeros(8, dtype=torch.uint8)}}, "'rng.torch'"),
    "rng-cuda-text": ({"rng": {"torch": torch.get_rng_state(), "cuda": "x"}}, "'rng.cuda'"),
}


@pytest.mark.parametrize("case", WRONG_CONTENTS, ids=list(WRONG_CONTENTS))
def test_right_tag_wrong_contents_names_the_key(tmp_path: Path, case: str) -> None:
    changes, key = WRONG_CONTENTS[case]
    path = tmp_path / "last.pt"
    torch.save({"format": CHECKPOINT_FORMAT, **_payload(**changes)}, path)
    _one_line_error(lambda: load_checkpoint(path), str(path), "malformed", key)


def test_missing_keys_and_foreign_payloads(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "config": {}}, path)
    _one_line_error(lambda: load_checkpoint(path), "misses keys", "method", "rng")
    torch.save([1, 2, 3], path)
    _one_line_error(lambda: load_checkpoint(path), "not a scarce checkpoint")


def test_well_formed_payload_loads(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    probe = {"probe": {"weight": torch.zeros(2, 2)}, "optimizer": {"state": {}, "param_groups": [{"params": [0]}]}}
    save_checkpoint(path, _payload(probe=probe))
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["method"]["encoder.w"], torch.ones(2)) and loaded["state"]["step"] == 2


def test_tensors_of_the_wrong_shape_are_one_line_errors() -> None:
    module = torch.nn.Linear(2, 2)
    _one_line_error(
        lambda: load_state_dict_strict(module, {"weight": torch.zeros(3, 2), "bias": torch.zeros(2)}, "encoder"),
        "encoder",
        "size mismatch for weight",
    )
    optimizer = torch.optim.AdamW(module.parameters())
    saved = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3, 2)), torch.nn.Parameter(torch.zeros(2))])
    for parameter in saved.param_groups[0]["params"]:
        parameter.grad = torch.ones_like(parameter)
    saved.step()
    _one_line_error(lambda: load_optimizer_state(optimizer, saved.state_dict(), "optimizer"), "'exp_avg'", "[3, 2]")
    fewer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2, 2))]).state_dict()
    _one_line_error(lambda: load_optimizer_state(optimizer, fewer, "optimizer"), "1 parameters", "optimizer 2")


# ---------------------------------------------------------------- weights files and run configs


def _weights_file(path: Path, metadata_change: Callable[[dict[str, str]], None] | None = None) -> Path:
    """A real tiny encoder's weights file, its metadata changed by ``metadata_change``."""
    encoder = build_backbone(load_config("scott-tiny").network_config())
    metadata = backbone_metadata(encoder)
    if metadata_change is not None:
        metadata_change(metadata)
    save_file({key: value.contiguous() for key, value in encoder.state_dict().items()}, str(path), metadata)
    return path


def _config_key(metadata: dict[str, str]) -> str:
    return next(key for key in metadata if key != "format")


def test_weights_file_loads(tmp_path: Path) -> None:
    loaded = load_encoder(_weights_file(tmp_path / "encoder.safetensors"))
    assert loaded.which == "context"


METADATA_DAMAGES: dict[str, Callable[[dict[str, str]], None]] = {
    "not-json": lambda metadata: metadata.update({_config_key(metadata): "{not json"}),
    "json-list": lambda metadata: metadata.update({_config_key(metadata): "[1, 2]"}),
    "invalid-config": lambda metadata: metadata.update({_config_key(metadata): '{"embed_dim": "wide"}'}),
}


@pytest.mark.parametrize("damage", METADATA_DAMAGES, ids=list(METADATA_DAMAGES))
def test_weights_with_bad_metadata_are_one_line_errors(tmp_path: Path, damage: str) -> None:
    path = _weights_file(tmp_path / "encoder.safetensors", METADATA_DAMAGES[damage])
    _one_line_error(lambda: load_encoder(path), str(path))


def test_damaged_weights_header_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _weights_file(tmp_path / "encoder.safetensors")
    data = path.read_bytes()
    path.write_bytes((10**6).to_bytes(8, "little") + data[8:])  # a header length past the end of the file
    _one_line_error(lambda: load_encoder(path), "cannot read weights", str(path))
    path.write_bytes(b"\x00" * 3)
    err = _cli_error(["evaluate", str(path), "--data", "npz:unused", "--out", str(tmp_path / "out")], capsys)
    assert "cannot read weights" in err


def test_checkpoint_with_an_invalid_config_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, _payload(config={"model": {"depth": "deep"}}))
    _one_line_error(lambda: load_encoder(path), str(path), "config is unreadable", "model.depth")
    save_checkpoint(path, _payload(config=load_config("scott-tiny").to_dict()))  # "encoder.w" is no backbone
    _one_line_error(lambda: load_encoder(path), "context encoder of", "missing", "unexpected 1 keys (e.g. w)")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("model: [unclosed\n  depth: 2\n", "cannot read"), ("- just\n- a list\n", "not a mapping")],
    ids=["malformed-yaml", "yaml-list"],
)
def test_malformed_run_config_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fragment: str
) -> None:
    run = RunDirectory(tmp_path / "run")
    run.create()
    run.config_path.write_text(text)
    _one_line_error(run.read_config, fragment, str(run.config_path))
    err = _cli_error(["pretrain", "-o", str(run.path), "--resume"], capsys)
    assert fragment in err


# ---------------------------------------------------------------- resume falls back to numbered checkpoints


def _checkpoint_dir(tmp_path: Path) -> Path:
    """last.pt (epoch 3), epoch_0002.pt and epoch_0001.pt, all well-formed."""
    directory = tmp_path / "checkpoints"
    for name, epoch in (("last.pt", 3), ("epoch_0001.pt", 1), ("epoch_0002.pt", 2)):
        save_checkpoint(directory / name, _payload(state={"epoch": epoch, "step": 2 * epoch, "step_in_epoch": 0}))
    return directory


def test_resume_prefers_last_and_logs_nothing(tmp_path: Path) -> None:
    directory = _checkpoint_dir(tmp_path)
    lines: list[str] = []
    path, payload = load_resume_checkpoint(directory, lines.append)
    assert path == directory / "last.pt" and payload["state"]["epoch"] == 3 and lines == []


def test_resume_falls_back_to_the_newest_readable_epoch(tmp_path: Path) -> None:
    directory = _checkpoint_dir(tmp_path)
    _truncated(directory / "last.pt")
    torch.save({"format": CHECKPOINT_FORMAT, **_payload(state={"step": 1})}, directory / "epoch_0002.pt")
    before = _snapshot(directory)
    lines: list[str] = []
    path, payload = load_resume_checkpoint(directory, lines.append)
    assert path == directory / "epoch_0001.pt" and payload["state"]["epoch"] == 1
    assert len(lines) == 1 and "\n" not in lines[0]
    assert "last.pt" in lines[0] and "epoch_0002.pt" in lines[0] and f"resuming from {path}" in lines[0]
    (directory / "last.pt").unlink()
    lines.clear()
    path, _ = load_resume_checkpoint(directory, lines.append)
    assert path == directory / "epoch_0001.pt" and "missing" in lines[0]
    assert set(before) - set(_snapshot(directory)) == {"last.pt"}  # only what the test removed


def test_resume_skips_a_state_this_version_cannot_restore(tmp_path: Path) -> None:
    directory = _checkpoint_dir(tmp_path)
    save_checkpoint(directory / "last.pt", _payload(state={"epoch": 3, "step": 6, "step_in_epoch": 0, "x": 1}))
    lines: list[str] = []
    path, _ = load_resume_checkpoint(directory, lines.append)
    assert path == directory / "epoch_0002.pt" and "unknown keys ['x']" in lines[0]


def test_resume_with_nothing_readable_lists_what_it_tried(tmp_path: Path) -> None:
    directory = _checkpoint_dir(tmp_path)
    for path in directory.iterdir():
        path.write_bytes(b"junk")
    before = _snapshot(directory)
    _one_line_error(lambda: load_resume_checkpoint(directory, print), "last.pt", "epoch_0002.pt", "epoch_0001.pt")
    assert _snapshot(directory) == before
    _one_line_error(lambda: load_resume_checkpoint(tmp_path / "empty", print), "no checkpoint")


@pytest.fixture(scope="module")
def two_epoch_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run stopped after epoch 2 of 3 (32 Imagenette images, 2 steps an epoch): checkpoints
    last.pt, epoch_0001.pt and epoch_0002.pt."""
    if not IMAGENETTE.exists():
        pytest.skip(f"real data not found at {IMAGENETTE}")
    run_dir = tmp_path_factory.mktemp("run") / "run"
    overrides = [*TINY_OVERRIDES, "data.subset_total=32", "schedule.epochs=3", "run.online_probe=false"]
    pretrain(load_config("scott-tiny", overrides), run_dir, stop_after_epoch=2, show_progress=False, log=lambda _: None)
    return run_dir


def _copy(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


@needs_data
def test_cli_resume_continues_from_the_newest_epoch_file(
    two_epoch_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(two_epoch_run, tmp_path)
    checkpoints = run_dir / "checkpoints"
    assert {"last.pt", "epoch_0001.pt", "epoch_0002.pt"} <= {path.name for path in checkpoints.iterdir()}
    last = checkpoints / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    assert main(["pretrain", "-o", str(run_dir), "--resume", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"resuming from {checkpoints / 'epoch_0002.pt'}" in out and "last.pt" in out
    assert "finished" in out and "at epoch 2" in out
    assert load_checkpoint(last)["state"]["epoch"] == 3  # the next save replaced the damaged file
    assert {"epoch_0001.pt", "epoch_0002.pt", "epoch_0003.pt"} <= {path.name for path in checkpoints.iterdir()}


@needs_data
def test_cli_resume_with_every_checkpoint_damaged_deletes_nothing(
    two_epoch_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _copy(two_epoch_run, tmp_path)
    checkpoints = run_dir / "checkpoints"
    _truncated(checkpoints / "last.pt")
    (checkpoints / "epoch_0002.pt").write_bytes(os.urandom(2000))
    torch.save({"format": CHECKPOINT_FORMAT, **_payload(method=[1])}, checkpoints / "epoch_0001.pt")
    before = _snapshot(run_dir)
    err = _cli_error(["pretrain", "-o", str(run_dir), "--resume", "--no-progress"], capsys)
    assert "no readable checkpoint" in err
    assert all(name in err for name in ("last.pt", "epoch_0002.pt", "epoch_0001.pt"))
    assert _snapshot(run_dir) == before
