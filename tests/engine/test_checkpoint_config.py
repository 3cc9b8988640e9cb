"""Checkpoint files and configuration: atomic writes, loud loads, validated configs."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from scarce.config import config_differences, list_config_presets, load_config
from scarce.engine.checkpoint import load_checkpoint, load_state_dict_strict, save_checkpoint
from scarce.errors import CheckpointError, ConfigError

PAYLOAD = {
    "config": {},
    "method": {"w": torch.ones(2)},
    "optimizer": {"state": {}, "param_groups": []},
    "state": {"epoch": 0, "step": 0, "step_in_epoch": 0},
    "rng": {"torch": torch.get_rng_state()},
}


def test_checkpoint_round_trip_and_no_temporary_left(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(path, PAYLOAD)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["method"]["w"], torch.ones(2))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


def test_failed_write_keeps_previous_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    save_checkpoint(path, PAYLOAD)
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        save_checkpoint(path, {**PAYLOAD, "method": {"bad": lambda: None}})  # not picklable
    assert torch.equal(load_checkpoint(path)["method"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_load_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a scarce checkpoint"):
        load_checkpoint(foreign)


def test_strict_state_dict_loading_names_keys() -> None:
    module = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match=r"missing 1 keys.*bias"):
        load_state_dict_strict(module, {"weight": torch.zeros(2, 2)}, "encoder")
    with pytest.raises(CheckpointError, match=r"unexpected 1 keys.*extra"):
        load_state_dict_strict(module, {**module.state_dict(), "extra": torch.zeros(1)}, "encoder")


def test_every_preset_loads() -> None:
    names = list_config_presets()
    assert {"scott-paper", "vit-paper", "scott-cpu-96", "vit-cpu-96", "scott-cpu-32", "scott-cpu-64"} <= set(names)
    for name in names:
        config = load_config(name)
        assert config.model.img_size % config.model.stride == 0


def test_paper_preset_is_the_spec_recipe() -> None:
    config = load_config("scott-paper")
    assert (config.model.embed_dim, config.model.depth, config.model.num_heads, config.model.img_size) == (
        384,
        12,
        4,
        224,
    )
    assert (config.model.dropout_rate, config.model.attention_dropout, config.model.stochastic_depth_rate) == (
        0.2,
        0.1,
        0.1,
    )
    assert (config.optim.lr, config.optim.start_lr, config.optim.final_lr) == (5e-4, 1e-6, 1e-5)
    assert (config.optim.weight_decay, config.optim.final_weight_decay) == (0.04, 0.4)
    assert (config.schedule.epochs, config.schedule.warmup_epochs, config.schedule.flat_fraction) == (300, 40, 0.72)
    assert (config.schedule.ema_start, config.schedule.ema_end) == (0.996, 1.0)
    assert (config.run.batch_size, config.run.seed, config.masking.ratio) == (64, 47, 0.6)


def test_unknown_keys_are_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown key 'masking.ratoi'"):
        load_config("scott-tiny", ["masking.ratoi=0.5"])
    with pytest.raises(ConfigError, match=r"unknown key 'modle'"):
        load_config("scott-tiny", ["modle.depth=3"])
    with pytest.raises(ConfigError, match=r"masking.ratio"):
        load_config("scott-tiny", ["masking.ratio=1.5"])
    with pytest.raises(ConfigError, match=r"section.key=value"):
        load_config("scott-tiny", ["depth"])


def test_unknown_key_in_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  embed_dim: 64\n  num_heads: 2\n  dpeth: 3\n")
    with pytest.raises(ConfigError, match=r"unknown key 'model.dpeth'"):
        load_config(str(path))
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="unknown config"):
        load_config("scott-hueg")


def test_overrides_parse_yaml_values() -> None:
    config = load_config("scott-tiny", ["optim.betas=[0.8, 0.9]", "run.compile=true", "model.depth=1"])
    assert config.optim.betas == (0.8, 0.9) and config.run.compile and config.model.depth == 1


def test_config_differences() -> None:
    old = load_config("scott-tiny").to_dict()
    new = load_config("scott-tiny", ["model.depth=3"]).to_dict()
    assert config_differences(old, new) == ["model.depth: 2 -> 3"]
