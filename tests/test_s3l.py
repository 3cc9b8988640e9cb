"""S3L end to end on real images: presets, multi-stage pretraining, last-stage warm-up, loading."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from scarce.config import load_config
from scarce.engine.checkpoint import load_checkpoint
from scarce.engine.loop import Trainer
from scarce.errors import ConfigError
from scarce.eval.encoders import load_encoder
from scarce.evaluate import EvaluationConfig, evaluate
from scarce.models.backbone import backbone_metadata, build_backbone
from scarce.models.resnet import ResNetBackbone, ResNetConfig
from scarce.pretrain import pretrain
from scarce.supervised import train_supervised
from tests.helpers import IMAGENETTE, TINY_OVERRIDES, needs_data

TINY = [
    *TINY_OVERRIDES,  # imagenette, 256 images, no workers, no tensorboard
    "data.subset_total=64",
    "run.batch_size=16",
    "model.img_size=32",
    "augmentation.blur_kernel=3",
    "backbone.kind=resnet18",
]
SMALL_HEADS = ["contrastive.projection_hidden=32", "contrastive.projection_dim=16", "contrastive.prediction_hidden=32"]


def _quiet(_: str) -> None:
    pass


@pytest.mark.parametrize("preset", ["mocov2-s3l", "simclr-s3l", "byol-s3l", "finetune-s3l"])
def test_presets_are_the_spec_settings(preset: str) -> None:
    config = load_config(preset)
    expected = {
        "mocov2-s3l": (0.03, 128, 200, 0.2),
        "simclr-s3l": (0.5, 512, 200, 0.1),
        "byol-s3l": (0.125, 128, 800, None),
        "finetune-s3l": (0.1, 64, 120, None),
    }[preset]
    lr, batch, epochs, temperature = expected
    assert (config.optim.name, config.optim.lr, config.run.batch_size, config.schedule.epochs) == (
        "sgd",
        lr,
        batch,
        epochs,
    )
    assert config.optim.momentum == 0.9
    if temperature is not None:
        assert config.contrastive.temperature == temperature
    if preset != "finetune-s3l":
        assert config.network_config() == ResNetConfig(arch="resnet50", drop_last_stage=True, img_size=224)
        assert config.crop_size == 112 and config.optim.weight_decay == config.optim.final_weight_decay == 1e-4
    else:
        assert config.supervised.mixup_alpha == 1.0 and config.optim.weight_decay == 5e-4


def test_config_refuses_impossible_combinations() -> None:
    with pytest.raises(ConfigError, match="mimjepa needs backbone"):
        load_config("scott-tiny", ["backbone.kind=resnet18"])
    with pytest.raises(ConfigError, match="token grid is fixed"):
        load_config("scott-tiny", ["augmentation.crop_size=16"])
    with pytest.raises(ConfigError, match="warmup_last_stage_epochs needs a ResNet"):
        load_config("scott-tiny", ["method=supervised", "supervised.warmup_last_stage_epochs=2"])
    with pytest.raises(ConfigError, match="stages"):
        load_config("mocov2-s3l", ["stages=[{epochs: 0}]"])
    with pytest.raises(ConfigError, match="stages are for pretraining"):
        load_config("finetune-s3l", ["stages=[{epochs: 1}]"])
    with pytest.raises(ConfigError, match="ResNet backbones only"):
        load_config("scott-tiny", ["backbone.drop_last_stage=true"])
    warm_up = ["supervised.warmup_last_stage_epochs=10"]
    with pytest.raises(ConfigError, match=r"needs supervised\.init"):
        load_config("finetune-s3l", warm_up)
    with pytest.raises(ConfigError, match=r"fewer than schedule\.epochs"):
        load_config("finetune-s3l", [*warm_up, "supervised.init=x", "schedule.epochs=10"])
    with pytest.raises(ConfigError, match="with its last stage"):
        load_config("finetune-s3l", [*warm_up, "supervised.init=x", "backbone.drop_last_stage=true"])


def test_epochs_flag_is_refused_with_stages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--epochs`` would be silently ignored by a multi-stage config: exit 2, nothing written."""
    from scarce.cli import main

    stages = "stages=[{epochs: 1, crop_size: 16}, {epochs: 1}]"
    args = ["pretrain", "-c", "mocov2-s3l", "--data", "npz:x", "-o", str(tmp_path / "run"), "--set", stages]
    assert main([*args, "--epochs", "5"]) == 2
    assert "each stage's epochs" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_supervised_command_keeps_a_supervised_preset_as_it_is() -> None:
    from scarce.commands.supervised import recipe_for
    from scarce.supervised import SUPERVISED_RECIPE

    assert recipe_for("finetune-s3l") == []  # its SGD weight decay 5e-4 stays
    assert recipe_for("scott-cpu-96") == list(SUPERVISED_RECIPE)
    assert recipe_for(None) == list(SUPERVISED_RECIPE)


@needs_data
def test_online_probe_validation_leaves_the_encoder_untouched(tmp_path: Path) -> None:
    """Validation runs the monitored encoder in eval mode: its BatchNorm statistics never see
    validation images, and its training mode is restored."""
    from scarce.engine.run_dir import RunDirectory
    from scarce.pretrain import build_trainer, prepare_data

    config = load_config("simclr-s3l", [*TINY, *SMALL_HEADS])
    data = prepare_data(config)
    trainer = build_trainer(config, RunDirectory(tmp_path), data, torch.device("cpu"), log=_quiet)
    assert trainer.probe is not None
    trainer.method.train()
    before = copy.deepcopy(trainer.method.encoder.state_dict())
    accuracy = trainer._validate()
    assert accuracy is not None and 0.0 <= accuracy <= 1.0
    after = trainer.method.encoder.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert trainer.method.encoder.training


@needs_data
def test_multi_stage_carries_the_method_state_and_restarts_the_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stages = "stages=[{epochs: 1, crop_size: 16}, {epochs: 1, crop_size: 32}]"
    config = load_config("mocov2-s3l", [*TINY, *SMALL_HEADS, "contrastive.queue_size=40", stages])
    starts: list[dict[str, Any]] = []
    original_fit = Trainer.fit

    def recording_fit(self: Trainer, *args: Any, **kwargs: Any) -> str:
        starts.append(
            {
                "method": copy.deepcopy(self.method.state_dict()),
                "optimizer_state": len(self.optimizer.state),
                "crop": self.config.crop_size,
            }
        )
        return original_fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", recording_fit)
    run = tmp_path / "run"
    result = pretrain(config, run, show_progress=False, log=_quiet, stop_after_epoch=1)
    assert result.status == "stopped" and result.epochs_done == 1
    assert not (run / "encoder.safetensors").exists()
    result = pretrain(config, run, resume=True, show_progress=False, log=_quiet)
    assert result.status == "finished" and result.epochs_done == 2 and result.steps_done == 2 * (64 // 16)
    assert result.checkpoint == run / "stage-2" / "checkpoints" / "last.pt"
    assert [start["crop"] for start in starts] == [16, 16, 32]  # stage 1, stage 1 (resumed, done), stage 2
    stage_one_end = load_checkpoint(run / "stage-1" / "checkpoints" / "last.pt")["method"]
    stage_two_start = starts[-1]["method"]
    assert set(stage_two_start) == set(stage_one_end)
    for key in ("queue", "queue_pointer", "target_encoder.layer1.0.conv1.weight", "encoder.stem.bn1.running_mean"):
        torch.testing.assert_close(stage_two_start[key].cpu(), stage_one_end[key])  # checkpoints load on the CPU
    assert int(stage_one_end["queue_pointer"]) == (64 // 16 * 16) % 40  # 4 steps x 16 keys into 40 slots
    assert starts[-1]["optimizer_state"] == 0  # a new optimiser
    stage_one = [json.loads(line) for line in (run / "stage-1" / "metrics.jsonl").read_text().splitlines()]
    stage_two = [json.loads(line) for line in (run / "stage-2" / "metrics.jsonl").read_text().splitlines()]
    assert stage_two[0]["step"] == 1 and stage_two[0]["lr"] == pytest.approx(stage_one[0]["lr"])  # restarted
    assert stage_one[-1]["lr"] < 0.5 * stage_one[0]["lr"]  # ... after stage 1's cosine had decayed
    loaded = load_encoder(run)
    assert isinstance(loaded.encoder, ResNetBackbone) and loaded.encoder.config.img_size == 32
    target = load_encoder(run / "stage-2" / "checkpoints" / "last.pt", "target")
    assert isinstance(target.encoder, ResNetBackbone)
    costs = [json.loads((run / f"stage-{i}" / "environment.json").read_text())["cost"] for i in (1, 2)]
    assert [cost["train_resolution"] for cost in costs] == [16, 32]
    small, full = costs[0]["forward_flops_per_image_train"], costs[1]["forward_flops_per_image_train"]
    assert 4 * small == pytest.approx(full, rel=0.05)  # half the resolution, a quarter of the FLOPs
    assert costs[0]["forward_flops_per_image_eval"] == costs[1]["forward_flops_per_image_train"]
    # the frozen-probe suite takes a ResNet (its feature-map positions are the tokens)
    settings = EvaluationConfig(probes=("linear", "knn"), knn_ks=(5,), device="cpu")
    result = evaluate(loaded, f"npz:{IMAGENETTE}", settings, tmp_path / "eval", log=_quiet, show_progress=False)
    assert {row["family"] for row in result.rows} == {"linear", "knn"}
    assert (tmp_path / "eval" / "results.json").exists()


def _save_weights(backbone: torch.nn.Module, path: Path) -> Path:
    """``backbone`` as a scarce weights file (what ``scarce pretrain`` exports)."""
    save_file({k: v.contiguous() for k, v in backbone.state_dict().items()}, str(path), backbone_metadata(backbone))
    return path


@needs_data
def test_last_stage_warm_up_freezes_weights_and_batchnorm_statistics(tmp_path: Path) -> None:
    torch.manual_seed(3)
    pretrained = build_backbone(ResNetConfig(arch="resnet18", drop_last_stage=True, img_size=32))
    weights = _save_weights(pretrained, tmp_path / "pretrained.safetensors")
    overrides = [
        *TINY,
        f"supervised.init={weights}",
        "supervised.warmup_last_stage_epochs=1",
        "schedule.epochs=2",
    ]
    config = load_config("finetune-s3l", overrides)
    run = tmp_path / "finetune"
    result, report = train_supervised(config, run, log=_quiet, show_progress=False, stop_after_epoch=1)
    assert result.status == "stopped" and report is None
    after_warm_up = load_checkpoint(run / "checkpoints" / "last.pt")["method"]
    initial = {f"encoder.{key}": value for key, value in pretrained.state_dict().items()}
    frozen_keys = [key for key in initial if not key.startswith("encoder.layer4")]
    assert any("running_var" in key for key in frozen_keys) and any("num_batches" in key for key in frozen_keys)
    for key in frozen_keys:
        assert torch.equal(after_warm_up[key], initial[key]), key
    fresh = ResNetBackbone(ResNetConfig(arch="resnet18", img_size=32)).state_dict()
    assert any(key.startswith("encoder.layer4") for key in after_warm_up)
    assert set(after_warm_up) == {f"encoder.{k}" for k in fresh} | {k for k in after_warm_up if k.startswith("head.")}
    result, report = train_supervised(config, run, log=_quiet, show_progress=False, resume=True)
    assert result.status == "finished" and report is not None
    finished = load_checkpoint(run / "checkpoints" / "last.pt")["method"]
    changed = [key for key in frozen_keys if not torch.equal(finished[key], initial[key])]
    assert "encoder.stem.bn1.running_mean" in changed and "encoder.layer1.0.conv1.weight" in changed


def test_supervised_init_must_match_the_backbone(tmp_path: Path) -> None:
    pretrained = build_backbone(ResNetConfig(arch="resnet18", img_size=32))
    weights = _save_weights(pretrained, tmp_path / "r18.safetensors")
    from scarce.builders import build_method

    config = load_config("finetune-s3l", ["model.img_size=32", f"supervised.init={weights}"])  # resnet50
    with pytest.raises(ConfigError, match="arch"):
        build_method(config, num_classes=3)
