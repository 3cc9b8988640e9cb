"""Fine-tuning: layer-wise LR decay gives each layer exactly its documented LR, LP-FT freezes the
encoder, the EMA of the weights is what is evaluated, and only the weights come from the pretrained run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from scarce.config import load_config
from scarce.engine.optim import Schedules, build_optimizer
from scarce.errors import ConfigError
from scarce.methods.base import Batch
from scarce.methods.finetune import FineTune, layer_scales
from scarce.methods.supervised import initial_backbone
from scarce.models.backbone import build_backbone
from scarce.models.encoder import EncoderConfig
from scarce.models.resnet import ResNetConfig

TINY = EncoderConfig(img_size=32, stride=8, embed_dim=32, depth=3, num_heads=2)


def _lr_of_each_parameter(method: FineTune, lr: float) -> dict[int, float]:
    config = load_config("scott-tiny", ["method=finetune", f"optim.lr={lr}", "schedule.warmup_epochs=0"])
    optimizer = build_optimizer(method, config)
    Schedules.from_config(config, steps_per_epoch=10).apply(optimizer, step=0)
    return {id(param): group["lr"] for group in optimizer.param_groups for param in group["params"]}


def test_layer_decay_gives_each_block_exactly_its_documented_lr() -> None:
    method = FineTune(build_backbone(TINY), 4, "simple", layer_decay=0.5)
    lrs = _lr_of_each_parameter(method, lr=0.1)
    encoder = method.encoder
    assert encoder.num_layers == 4  # tokenizer + 3 blocks; the head is layer 4
    for name, param in encoder.named_parameters():
        block = int(name.split(".")[2]) if name.startswith("transformer.blocks.") else -1
        expected = 0.1 * 0.5 ** (4 - (block + 1))  # block i is layer i + 1; the tokenizer layer 0
        assert lrs[id(param)] == pytest.approx(expected), name
    assert all(lrs[id(param)] == pytest.approx(0.1) for param in method.head.parameters())
    assert layer_scales(2, 0.5) == [0.25, 0.5, 1.0]


def test_layer_decay_is_per_stage_for_a_resnet() -> None:
    method = FineTune(build_backbone(ResNetConfig(img_size=32)), 3, "linear", layer_decay=0.5)
    lrs = _lr_of_each_parameter(method, lr=1.0)
    backbone = method.encoder
    assert lrs[id(backbone.stem.conv1.weight)] == pytest.approx(0.5**5)
    for stage in range(1, 5):
        for param in getattr(backbone, f"layer{stage}").parameters():
            assert lrs[id(param)] == pytest.approx(0.5 ** (5 - stage))


def test_weight_decay_spares_biases_and_one_dimensional_parameters() -> None:
    method = FineTune(build_backbone(TINY), 4, "simple", layer_decay=0.7)
    for group in method.parameter_groups():
        if group["wd_scale"] == 0.0:
            assert all(param.ndim == 1 for param in group["params"])  # type: ignore[attr-defined]


def test_head_only_epochs_freeze_the_encoder_in_eval_mode_then_release_it() -> None:
    torch.manual_seed(0)
    method = FineTune(build_backbone(TINY), 3, "simple", head_only_epochs=1)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    method.begin_epoch(0)
    method.train()
    assert not method.encoder.training and method.head.training
    method(Batch(views=[images], labels=labels)).loss.backward()
    assert all(param.grad is None for param in method.encoder.parameters())
    assert all(param.grad is not None for param in method.head.parameters())
    method.begin_epoch(1)
    method.train()
    assert method.encoder.training and all(param.requires_grad for param in method.encoder.parameters())


def test_the_ema_of_the_weights_is_what_is_evaluated() -> None:
    torch.manual_seed(0)
    method = FineTune(build_backbone(ResNetConfig(img_size=32)), 3, "linear", weight_ema=True)
    encoder, head = method.evaluated_modules()
    assert encoder is method.ema_encoder and head is method.ema_head
    before = [param.detach().clone() for param in encoder.parameters()]
    with torch.no_grad():
        for param in method.encoder.parameters():
            param.add_(1.0)
        method.encoder.layer1[0].bn1.running_mean.fill_(3.0)  # type: ignore[index]
    method.update_ema(0.9)
    for old, new, online in zip(before, encoder.parameters(), method.encoder.parameters(), strict=True):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * online.detach())
    assert float(encoder.layer1[0].bn1.running_mean.mean()) == 3.0  # type: ignore[index]  # statistics copied
    method.eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    from scarce.models.classifier import Classifier

    torch.testing.assert_close(method.classify(images), Classifier(encoder, head).eval().logits(images))


def test_config_rejects_head_only_epochs_that_leave_no_fine_tuning() -> None:
    with pytest.raises(ConfigError, match=r"head_only_epochs 5 must be fewer than schedule\.epochs 5"):
        load_config("scott-tiny", ["method=finetune", "finetune.head_only_epochs=5", "schedule.epochs=5"])


def test_only_the_weights_come_from_the_pretrained_run(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from scarce.models.backbone import backbone_metadata

    torch.manual_seed(0)
    pretrained = build_backbone(TINY)
    path = tmp_path / "encoder.safetensors"
    save_file({k: v.contiguous() for k, v in pretrained.state_dict().items()}, str(path), backbone_metadata(pretrained))
    fields = [f"model.{key}={value}" for key, value in TINY.model_dump().items() if key != "tokenizer"]
    config = load_config("scott-tiny", ["method=finetune", *fields, "model.stochastic_depth_rate=0.3"])
    backbone = initial_backbone(config, str(path), "context")
    for (name, mine), theirs in zip(backbone.state_dict().items(), pretrained.state_dict().values(), strict=True):
        torch.testing.assert_close(mine, theirs, msg=name)
    assert backbone.config.stochastic_depth_rate == 0.3  # type: ignore[union-attr]
    deeper = load_config("scott-tiny", ["method=finetune", *fields, "model.depth=4"])
    with pytest.raises(ConfigError, match="depth: 3 -> 4"):
        initial_backbone(deeper, str(path), "context")
