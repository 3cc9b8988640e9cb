"""Shared test fixtures: deterministic seeds, the real datasets. Shared constants and helpers are in
``tests/helpers.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from scarce.cli import main
from scarce.config import load_config
from scarce.data.datasets import load_data
from scarce.pretrain import pretrain
from tests.helpers import IMAGENETTE, TINY_OVERRIDES, require_dataset

QUIET = ["--workers", "0", "--no-progress", "--set", "run.tensorboard=false"]


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def imagenette() -> Path:
    """The real Imagenette directory (``../shared/datasets/imagenette``); skips without it, fails under
    ``CI=true``. Tests that only need it present use ``@needs_data`` (``tests.helpers``)."""
    return require_dataset(IMAGENETTE)


def _small_imagenette(folder: Path, train_per_class: int = 20, test_per_class: int = 5) -> str:
    """Real Imagenette images, few of them: ``train_per_class`` and ``test_per_class`` per class, 32 px."""
    data = load_data(f"npz:{IMAGENETTE}")
    folder.mkdir(parents=True)
    for name, split, count in (("small_train", data.train, train_per_class), ("small_val", data.test, test_per_class)):
        assert split is not None and split.labels is not None
        chosen = [index for label in range(10) for index in split.labels.eq(label).nonzero().flatten()[:count].tolist()]
        images = torch.nn.functional.interpolate(split.subset(chosen).images.float(), size=32, mode="area")  # type: ignore[arg-type]
        pixels = images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        np.savez(folder / f"{name}.npz", x=pixels, y=split.labels[chosen].numpy(), classes=np.array(data.train.classes))
    return f"npz:{folder}"


@pytest.fixture(scope="session")
def data_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small real dataset (npz dir): 20 training and 5 test Imagenette images per class at 32 px."""
    require_dataset(IMAGENETTE)
    return _small_imagenette(tmp_path_factory.mktemp("data") / "small")


@pytest.fixture(scope="session")
def classifier_run(data_spec: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A classifier run on ``data_spec``: scott-tiny pretrained one epoch on 256 Imagenette images,
    then fine-tuned on 3 labels per class (the rest of its 200 training images unlabelled)."""
    root = tmp_path_factory.mktemp("semisup")
    config = load_config("scott-tiny", [*TINY_OVERRIDES, "schedule.epochs=1"])
    pretrain(config, root / "ssl", show_progress=False, log=lambda _: None)
    arguments = ["finetune", str(root / "ssl"), "--data", data_spec, "-o", str(root / "ft"), "--labels-per-class", "3"]
    assert main([*arguments, "--epochs", "2", "--batch-size", "10", *QUIET]) == 0
    return root / "ft"


@pytest.fixture(scope="session")
def digits_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of :mod:`benchmarks.digits` shared by the fine-tuning and self-training
    learning tests (seed 0): the encoder and the fine-tuned classifier are trained once."""
    return tmp_path_factory.mktemp("digits")
