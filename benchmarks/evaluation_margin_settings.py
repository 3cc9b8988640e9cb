"""The configuration of the evaluation suite's end-to-end test (``tests/eval/test_evaluation_end_to_end.py``),
owned by its calibration script (``python -m benchmarks.evaluation_margin``) and imported by the test, so the
margin is measured on exactly what is tested (benchmarks never import from ``tests``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmarks.common import IMAGENETTE
from scarce.data.formats import read_npz
from scarce.data.transforms import PhotometricConfig, SingleViewTransform
from scarce.evaluate import EvaluationConfig

COMMON = [
    f"data.spec=npz:{IMAGENETTE}",
    "data.num_workers=0",
    "run.tensorboard=false",
    "run.online_probe=false",
    "schedule.warmup_epochs=0.5",
    "schedule.epochs=3",
]
# The ViT tokenizer: its random-init features are a weak floor (a random SCOTT stem is a strong one,
# benchmarks/results/short_pretraining_vs_random.md), so a short pretraining can clear it measurably.
TINY_VIT = ["model.tokenizer=vit", "model.img_size=32", "model.stride=4", "model.embed_dim=64", "model.depth=2"]
CONTRASTIVE = [
    *TINY_VIT,
    "model.num_heads=2",
    "backbone.kind=encoder",
    "backbone.drop_last_stage=false",
    "augmentation.crop_size=32",
    "augmentation.blur_kernel=3",
    "optim.name=adamw",
    "optim.lr=1e-3",
    "optim.start_lr=1e-5",
    "optim.final_lr=1e-5",
    "optim.weight_decay=0.05",
    "optim.final_weight_decay=0.05",
    "run.batch_size=64",
    "contrastive.projection_hidden=256",
    "contrastive.projection_dim=64",
]
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "MIM-JEPA paper recipe": ("scott-tiny", [*COMMON, "model.tokenizer=vit"]),
    "MIM-JEPA batch-centred targets": (
        "scott-tiny",
        [*COMMON, "model.tokenizer=vit", "mimjepa.target_centering=batch"],
    ),
    "SimCLR": ("simclr-s3l", [*COMMON, *CONTRASTIVE]),
    "BYOL": ("byol-s3l", [*COMMON, *CONTRASTIVE, "contrastive.prediction_hidden=256"]),
}
EVALUATION = EvaluationConfig(probes=("linear", "knn"), epochs=30, warmup_epochs=3)

VIEW_SOURCES = 100  # unseen images (the official val split), one class each
VIEW_SPLITS = {"train": 6, "val": 1, "test": 2}  # views per image and split


def view_source_images() -> torch.Tensor:
    """The ``VIEW_SOURCES`` images the view task is cut from, uint8 ``[N, 3, H, W]``."""
    source = read_npz(IMAGENETTE / "imagenette_96_val.npz").subset(range(VIEW_SOURCES))
    return torch.stack([source.image(index) for index in range(VIEW_SOURCES)])


def write_view_dataset(directory: Path, size: int = 32, seed: int = 0) -> str:
    """An instance-level task on real images, in the npz format ``scarce evaluate`` reads: each of the
    first ``VIEW_SOURCES`` official val images of Imagenette (never seen by pretraining) is a class;
    its randomly cropped (area 0.35-1) and flipped ``size``-px views are split into train / val / test
    images (``VIEW_SPLITS``). The views are written as the transform returns them (uint8 ``[3, size,
    size]`` -> ``x`` uint8 ``[N, size, size, 3]``). Returns the data spec ``npz:DIR``."""
    sources = view_source_images()
    view = SingleViewTransform(size, scale=(0.35, 1.0), photometric=PhotometricConfig(p=0.0))
    generator = torch.Generator().manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    classes = np.array([f"image{index:03d}" for index in range(VIEW_SOURCES)])
    for split, count in VIEW_SPLITS.items():
        views = torch.stack([view(image, generator) for image in sources for _ in range(count)])
        assert views.dtype == torch.uint8, views.dtype  # SingleViewTransform keeps the pixels in 0-255
        pixels = views.permute(0, 2, 3, 1).contiguous()
        labels = np.repeat(np.arange(VIEW_SOURCES), count)
        np.savez(directory / f"views_{split}.npz", x=pixels.numpy(), y=labels, classes=classes)
    return f"npz:{directory}"


VIEW_EVALUATION = EVALUATION.model_copy(update={"knn_ks": (1, 10), "augment": False})
