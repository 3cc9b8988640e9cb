"""``visualize``: the pictures of what a run's encoder learned, as PNG files (``scarce visualize``).

For a run directory (or a weights file) and a dataset: PCA token maps of the context and the
target encoder, attention maps of one block per head (received, and from the centre token), the
run's masks and training views, nearest neighbours and a 2-D map of the embeddings coloured by
label. Pictures that do not apply (no target encoder, no mask generator, no labels, a ResNet
without tokens) are left out with a note, never drawn empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scarce.config import ScarceConfig
from scarce.data.datasets import ImageSet, load_data
from scarce.data.transforms import normalize_batch
from scarce.errors import ConfigError, DataError
from scarce.eval.encoders import LoadedEncoder, load_encoder
from scarce.eval.features import FrozenEncoder, eval_view, extract
from scarce.evaluate import run_config_of
from scarce.models.encoder import Encoder
from scarce.viz import figures
from scarce.viz.attention import attention_from, attention_received
from scarce.viz.embedding import embedding_map
from scarce.viz.masks import mask_pictures, sample_masks, training_views
from scarce.viz.neighbours import nearest_neighbours
from scarce.viz.pca import pca_token_maps


@dataclass
class Pictures:
    """What :func:`visualize` made: ``{name: png path}``, notes on what was left out, seconds."""

    files: dict[str, Path] = field(default_factory=dict)
    captions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per stage: loading the data and encoders, then each picture (features, figure, PNG)."""


def _pick_images(data: ImageSet, count: int, seed: int) -> tuple[ImageSet, list[int]]:
    """``count`` images drawn without replacement (seeded) from ``data``, in a stable order."""
    generator = torch.Generator().manual_seed(seed)
    chosen = sorted(torch.randperm(len(data), generator=generator)[: min(count, len(data))].tolist())
    return data.subset(chosen), chosen


def _check_size(data: ImageSet, img_size: int) -> None:
    smallest = min(min(data.image(index).shape[-2:]) for index in range(min(len(data), 64)))
    if smallest < img_size:
        raise DataError(
            f"the images ({smallest} px on the short side) are smaller than the encoder's input ({img_size} px); "
            "visualize them with an encoder trained at their size"
        )


def visualize(
    source: str | Path,
    data_spec: str,
    out_dir: str | Path,
    *,
    num_images: int = 16,
    block: int = -1,
    token: int | None = None,
    seed: int = 0,
    download: bool = False,
    log: Callable[[str], None] = print,
) -> Pictures:
    """Write the pictures of ``source``'s encoder(s) on ``data_spec`` into ``out_dir``.

    Images are the evaluation view (short side to ``img_size / 0.875``, centre crop), drawn from
    the test split (else val, else train); the neighbours' gallery is the training split.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pictures = Pictures()
    context = load_encoder(source, "context")
    run_config = run_config_of(context)
    data = load_data(data_spec, seed=run_config.data.split_seed if run_config else 0, download=download)
    shown_from = data.test or data.val or data.train
    img_size = context.encoder.config.img_size
    _check_size(shown_from, img_size)
    shown, _ = _pick_images(shown_from, num_images, seed)
    images = eval_view(shown, img_size)  # uint8 [B, 3, S, S]
    pictures.timings["load data and encoder"] = time.perf_counter() - started

    mark = [time.perf_counter()]

    def save(name: str, figure: object, caption: str) -> None:
        """Write one picture; its time is everything since the previous picture (features included)."""
        path = out / f"{name}.png"
        figures.save_png(figure, path)  # type: ignore[arg-type]
        pictures.files[name] = path
        pictures.captions[name] = caption
        now = time.perf_counter()
        pictures.timings[name] = now - mark[0]
        mark[0] = now

    encoders: dict[str, LoadedEncoder] = {"context": context}
    try:
        encoders["target"] = load_encoder(source, "target")
    except Exception as error:  # a weights file or a run without a target encoder (supervised, fine-tuned)
        pictures.notes.append(f"no target encoder ({str(error).splitlines()[0]}): its PCA map is left out")

    for which, loaded in encoders.items():
        encoder = loaded.encoder.eval()
        if not isinstance(encoder, Encoder):
            pictures.notes.append(f"{which} encoder is a ResNet: no token maps or attention")
            continue
        tokens = FrozenEncoder(encoder, torch.device("cpu")).tokens(images)
        maps = pca_token_maps(tokens, encoder.config.grid_size)
        save(
            f"pca_{which}",
            figures.pca_figure(images, maps, f"PCA of the {which} encoder's tokens"),
            f"First three principal components of the {which} encoder's tokens (one PCA over all "
            f"{len(images)} images) as RGB; background (first component below its mean) removed.",
        )
        if which == "context":
            num_tokens = encoder.config.grid_size[0] * encoder.config.grid_size[1]
            if token is not None and not 0 <= token < num_tokens:
                raise ConfigError(f"--token must be a token index in [0, {num_tokens}), got {token}")
            if not -encoder.depth <= block < encoder.depth:
                raise ConfigError(f"--block must be in [{-encoder.depth}, {encoder.depth}), got {block}")
            normalised = normalize_batch(images[:4])
            block_name = f"{block % encoder.depth + 1} of {encoder.depth}"
            received = attention_received(encoder, normalised, block).numpy()
            save(
                "attention_received",
                figures.heatmap_figure(images[:4], received, f"attention received, block {block_name}, per head"),
                f"Attention each token receives in block {block_name}, averaged over the queries, per head.",
            )
            grid_h, grid_w = encoder.config.grid_size
            query = (grid_h // 2) * grid_w + grid_w // 2 if token is None else token
            where = "the centre token" if token is None else f"token {token}"
            from_query = attention_from(encoder, normalised, query, block).numpy()
            save(
                "attention_from_centre" if token is None else f"attention_from_token_{token}",
                figures.heatmap_figure(images[:4], from_query, f"attention from {where}, block {block_name}"),
                f"Attention {where} (row-major index {query}) pays to every token in block {block_name}, per head.",
            )

    if run_config is not None:
        _method_pictures(run_config, context, shown, images, seed, save, pictures)
    else:
        pictures.notes.append("no run configuration: masks and training views are left out")

    frozen = FrozenEncoder(context.encoder, torch.device("cpu"))
    gallery_set = data.train
    gallery = eval_view(gallery_set, img_size)
    gallery_features = extract(frozen.pooled, gallery)
    query_features = extract(frozen.pooled, images[:6])
    similarities, indices = nearest_neighbours(query_features, gallery_features, k=6)
    labels = [gallery_set.classes[int(label)] for label in gallery_set.labels] if gallery_set.is_labelled else None
    save(
        "neighbours",
        figures.neighbours_figure(images[:6], gallery, indices, similarities, labels),
        "Six shown images and their nearest training images by cosine similarity of pooled features.",
    )
    labelled = data.test or data.val
    if labelled is not None and labelled.is_labelled:
        subset, _ = _pick_images(labelled, 500, seed)
        features = extract(frozen.pooled, eval_view(subset, img_size))
        points, method = embedding_map(features, seed=seed)
        assert subset.labels is not None
        save(
            "embedding",
            figures.embedding_figure(points, subset.labels.numpy(), subset.classes, method),
            f"{method.upper()} of the pooled features of {len(subset)} held-out images, coloured by their label.",
        )
    else:
        pictures.notes.append("no labelled held-out images: the 2-D map of the embeddings is left out")
    pictures.seconds = time.perf_counter() - started
    log(f"wrote {len(pictures.files)} pictures to {out} in {pictures.seconds:.1f} s")
    for note in pictures.notes:
        log(f"note: {note}")
    return pictures


def _method_pictures(
    config: ScarceConfig,
    loaded: LoadedEncoder,
    shown: ImageSet,
    images: Tensor,
    seed: int,
    save: Callable[[str, object, str], None],
    pictures: Pictures,
) -> None:
    """The run's training views and, for masked-image methods, its masks."""
    from scarce.builders import build_method, build_transform

    transform = build_transform(config)
    raw = torch.stack([shown.image(index) for index in range(min(4, len(shown)))])
    views = training_views(transform, raw, seed)
    columns = [
        (f"view {index + 1}", np.stack([view[index].permute(1, 2, 0).numpy() for view in views]))
        for index in range(len(views[0]))
    ]
    save(
        "views",
        figures.picture_rows_figure(columns, f"training views of {config.method}"),
        f"The views {config.method} trains on, made by the run's own transform.",
    )
    from scarce.methods import METHODS

    encoder = loaded.encoder
    # a classifier run's method would load its init / teacher run again: only pretraining methods mask tokens
    pretraining = METHODS.get(config.method).pretraining
    generator = build_method(config, log=lambda _: None).mask_generator(config) if pretraining else None
    if generator is None or not isinstance(encoder, Encoder):
        pictures.notes.append(f"method {config.method} has no token masks: the mask picture is left out")
        return
    keep, predict = sample_masks(generator, min(4, len(images)), seed)
    masked = mask_pictures(images[: len(keep)], keep, predict, encoder.config.grid_size)
    originals = images[: len(keep)].permute(0, 2, 3, 1).numpy()
    save(
        "masks",
        figures.picture_rows_figure(
            [("image", originals), ("context sees", masked.context), ("predicted", masked.predicted)],
            f"masks of {config.masking.kind}",
        ),
        f"Masks of the run's generator ({config.masking.kind}): what the context sees, and what is predicted (red).",
    )
