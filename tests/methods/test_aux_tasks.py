"""Auxiliary self-supervised tasks: DRLoc offsets and rotation labels are exact; the losses reach
supervised training and fine-tuning, for token encoders and ResNet feature maps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from scarce.cli import main
from scarce.config import load_config
from scarce.errors import ConfigError
from scarce.methods.aux_tasks import (
    DenseRelativeLocalization,
    RotationPrediction,
    drloc_targets,
    rotate_batch,
    token_grid,
)
from scarce.methods.base import Batch
from scarce.methods.finetune import FineTune
from scarce.methods.supervised import Supervised
from scarce.models import create_encoder
from scarce.models.resnet import ResNetBackbone, ResNetConfig
from tests.helpers import needs_data

QUIET = ["--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]


def test_drloc_offsets_are_exact() -> None:
    # grid 3 rows x 4 columns, row-major: token 0 = (0, 0), token 11 = (2, 3), token 5 = (1, 1)
    first, second = torch.tensor([0, 11, 5]), torch.tensor([11, 0, 5])
    expected = torch.tensor([[-3 / 4, -2 / 3], [3 / 4, 2 / 3], [0.0, 0.0]])
    torch.testing.assert_close(drloc_targets(first, second, (3, 4)), expected)
    assert token_grid(36) == (6, 6) and token_grid(12, (3, 4)) == (3, 4)
    with pytest.raises(ValueError, match="square grid"):
        token_grid(12)


def test_drloc_loss_is_l1_between_the_mlp_and_the_offsets() -> None:
    task = DenseRelativeLocalization(dim=8, pairs=5, hidden=16)
    tokens = torch.randn(2, 16, 8)
    torch.manual_seed(3)
    loss = task(tokens, (4, 4))
    torch.manual_seed(3)
    first, second = torch.randint(0, 16, (2, 5)), torch.randint(0, 16, (2, 5))
    pairs = torch.cat([tokens[torch.arange(2)[:, None], first], tokens[torch.arange(2)[:, None], second]], dim=-1)
    expected = F.l1_loss(task.mlp(pairs), drloc_targets(first, second, (4, 4)))
    torch.testing.assert_close(loss, expected)


def test_rotation_labels_are_exact() -> None:
    images = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    torch.manual_seed(0)
    rotated, turns = rotate_batch(images)
    assert turns.min() >= 0 and turns.max() <= 3
    for image, turned, k in zip(images, rotated, turns, strict=True):
        assert torch.equal(turned, torch.rot90(image, int(k), dims=(-2, -1)))
    quarter = torch.rot90(torch.tensor([[1, 2], [3, 4]]), 1, dims=(-2, -1))
    assert quarter.tolist() == [[2, 4], [1, 3]]  # counter-clockwise
    with pytest.raises(ValueError, match="square images"):
        rotate_batch(torch.zeros(1, 3, 4, 5))
    task = RotationPrediction(dim=3)
    torch.manual_seed(1)
    loss = task(lambda x: x.flatten(2).transpose(1, 2), torch.randn(4, 3, 5, 5))
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("kind", ["drloc", "rotation"])
@pytest.mark.parametrize("backbone", ["scott", "resnet"])
def test_aux_loss_reaches_supervised_training(kind: str, backbone: str) -> None:
    config = load_config("scott-tiny", ["method=supervised", f"aux.kind={kind}", "aux.weight=0.5"])
    encoder = (
        create_encoder("scott-tiny")
        if backbone == "scott"
        else ResNetBackbone(ResNetConfig(arch="resnet18", cifar_stem=True, img_size=32))
    )
    method = Supervised(encoder, 3, "linear").with_aux_task(config).train()
    assert method.aux is not None and "aux" in method.trainable_modules()
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    output = method.training_step(Batch(views=[images], labels=torch.tensor([0, 1, 2, 0])))
    output.loss.backward()
    assert output.metrics["aux_loss"] > 0
    aux_weights = [p for p in method.aux.parameters() if p.ndim > 1]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in aux_weights)


def test_finetune_trains_the_aux_task_with_the_head_and_semisup_refuses_it() -> None:
    config = load_config("scott-tiny", ["method=finetune", "aux.kind=drloc", "finetune.layer_decay=0.5"])
    method = FineTune(create_encoder("scott-tiny"), 3, "simple", layer_decay=0.5).with_aux_task(config)
    groups = method.parameter_groups()
    aux_ids = {id(p) for p in method.aux.parameters()}  # type: ignore[union-attr]
    aux_groups = [group for group in groups if aux_ids & {id(p) for p in group["params"]}]  # type: ignore[attr-defined]
    assert aux_groups and all(group["lr_scale"] == 1.0 for group in aux_groups)  # the head's layer
    with pytest.raises(ConfigError, match="method semisup has no auxiliary task"):
        load_config("semisup-cpu", ["semisup.init=run", "aux.kind=drloc"])


@needs_data
@pytest.mark.parametrize("kind", ["drloc", "rotation"])
def test_supervised_with_an_aux_task_end_to_end(kind: str, data_spec: str, tmp_path: Path) -> None:
    out = tmp_path / kind
    arguments = ["supervised", "-c", "scott-tiny", "--data", data_spec, "-o", str(out), "--epochs", "1"]
    assert main([*arguments, "--batch-size", "16", "--set", f"aux.kind={kind}", *QUIET]) == 0
    record = json.loads((out / "epochs.jsonl").read_text().splitlines()[0])
    assert record["aux_loss"] > 0
