"""The measurement of the contrastive learning tests (``tests/methods/test_contrastive_learning.py``),
owned by its calibration script (``python -m benchmarks.contrastive_margin``) and imported by the test,
so the margin is measured on exactly what is tested (benchmarks never import from ``tests``)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.common import IMAGENETTE
from scarce.config import load_config
from scarce.data.transforms import EvalTransform, PhotometricConfig, SingleViewTransform, normalize_batch
from scarce.eval.encoders import load_encoder, random_encoder
from scarce.pretrain import prepare_data, pretrain

HELD_OUT = 128
SETTINGS = [
    f"data.spec=npz:{IMAGENETTE}",
    "data.subset_total=256",
    "data.num_workers=0",
    "run.tensorboard=false",
    "run.online_probe=false",
    "run.batch_size=32",
    "model.img_size=64",
    "augmentation.crop_size=64",  # the S3L presets pretrain at 112 px; 64 px keeps the test about 6x cheaper
    "augmentation.blur_kernel=3",
    "backbone.kind=resnet18",
    "backbone.drop_last_stage=false",
    "schedule.epochs=4",
    "contrastive.projection_hidden=256",
    "contrastive.prediction_hidden=256",
    "contrastive.queue_size=256",
]
LEARNING_RATES = {"mocov2": 0.06, "simclr": 0.3, "byol": 0.2}


def view_matching_accuracy(backbone: torch.nn.Module, first: torch.Tensor, second: torch.Tensor) -> float:
    """Fraction of images whose first view's nearest neighbour (cosine, pooled features) among all
    second views is its own (chance: 1 / number of images). BatchNorm uses the statistics of the
    batch of views (the same rule for the trained and the random backbone)."""
    backbone.train()
    with torch.no_grad():
        a = F.normalize(backbone(normalize_batch(first)).mean(1), dim=1)
        b = F.normalize(backbone(normalize_batch(second)).mean(1), dim=1)
    return (a @ b.T).argmax(dim=1).eq(torch.arange(len(first))).float().mean().item()


def trained_and_initial_matching(method: str, seed: int, run_dir: Path) -> tuple[float, float]:
    """Pretrain ``method`` with ``SETTINGS`` and seed ``seed`` into ``run_dir``; return the view-matching
    accuracy on the unseen test images of the trained backbone and of its exact initialisation."""
    config = load_config(f"{method}-s3l", [*SETTINGS, f"optim.lr={LEARNING_RATES[method]}", f"run.seed={seed}"])
    pretrain(config, run_dir, show_progress=False, log=lambda _: None)
    trained = load_encoder(run_dir).encoder
    initial = random_encoder(config.network_config(), seed=config.run.seed).encoder  # pretraining's start
    test = prepare_data(config).splits.test
    assert test is not None
    centre = EvalTransform(config.model.img_size)
    cropped = SingleViewTransform(config.model.img_size, scale=(0.5, 1.0), photometric=PhotometricConfig(p=0.0))
    generator = torch.Generator().manual_seed(0)
    first = torch.stack([centre(test.image(index)) for index in range(HELD_OUT)])
    second = torch.stack([cropped(test.image(index), generator) for index in range(HELD_OUT)])
    return view_matching_accuracy(trained, first, second), view_matching_accuracy(initial, first, second)
