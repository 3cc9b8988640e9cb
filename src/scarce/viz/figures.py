"""Matplotlib figures of the arrays the other ``scarce.viz`` modules compute; ``save_png`` writes one.

Every function takes arrays (uint8 images ``[B, 3, S, S]`` as tensors, maps as numpy) and returns a
``matplotlib.figure.Figure``; nothing here computes features.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from torch import Tensor

from scarce.viz.pca import PCAMaps, upsample_map

CELL_INCHES = 1.3


def _pixels(image: Tensor) -> np.ndarray:
    return image.permute(1, 2, 0).numpy()


def _grid(rows: int, cols: int) -> tuple[Figure, np.ndarray]:
    figure, axes = plt.subplots(rows, cols, figsize=(cols * CELL_INCHES, rows * CELL_INCHES), squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    return figure, axes


def pca_figure(images: Tensor, maps: PCAMaps, title: str, columns: int = 8) -> Figure:
    """Pairs of rows: the images, then their PCA maps (same colour = same feature direction)."""
    count = len(images)
    columns = min(columns, count)
    blocks = -(-count // columns)
    figure, axes = _grid(2 * blocks, columns)
    size = images.shape[-1]
    for index in range(count):
        row, col = divmod(index, columns)
        axes[2 * row, col].imshow(_pixels(images[index]))
        axes[2 * row + 1, col].imshow(upsample_map(maps.rgb[index], size))
    explained = ", ".join(f"{100 * share:.0f}%" for share in maps.explained)
    figure.suptitle(f"{title} (variance explained by the 3 components: {explained})", fontsize=9)
    figure.tight_layout()
    return figure


def heatmap_figure(images: Tensor, maps: np.ndarray, title: str, row_labels: list[str] | None = None) -> Figure:
    """Each image, then its maps ``[B, K, H', W']`` (e.g. one per head) over the image."""
    count, kinds = maps.shape[:2]
    figure, axes = _grid(count, kinds + 1)
    size = images.shape[-1]
    for index in range(count):
        axes[index, 0].imshow(_pixels(images[index]))
        if row_labels:
            axes[index, 0].set_title(row_labels[index], fontsize=7)
        for kind in range(kinds):
            axes[index, kind + 1].imshow(_pixels(images[index]))
            axes[index, kind + 1].imshow(upsample_map(maps[index, kind], size), cmap="inferno", alpha=0.6)
            if index == 0:
                axes[index, kind + 1].set_title(f"head {kind}", fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def picture_rows_figure(columns: list[tuple[str, np.ndarray]], title: str) -> Figure:
    """Columns of pictures ``[B, S, S, 3]`` in [0, 1] (or uint8), one image per row, titled."""
    count = len(columns[0][1])
    figure, axes = _grid(count, len(columns))
    for col, (name, pictures) in enumerate(columns):
        for row in range(count):
            axes[row, col].imshow(pictures[row])
        axes[0, col].set_title(name, fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    return figure


def neighbours_figure(
    queries: Tensor, gallery: Tensor, indices: Tensor, similarities: Tensor, labels: list[str] | None = None
) -> Figure:
    """Each query, then its nearest gallery images with their cosine similarity (and labels)."""
    count, k = indices.shape
    figure, axes = _grid(count, k + 1)
    for row in range(count):
        axes[row, 0].imshow(_pixels(queries[row]))
        axes[row, 0].set_title("query", fontsize=7)
        for col in range(k):
            index = int(indices[row, col])
            axes[row, col + 1].imshow(_pixels(gallery[index]))
            label = f"{labels[index]} " if labels else ""
            axes[row, col + 1].set_title(f"{label}{float(similarities[row, col]):.2f}", fontsize=6)
    figure.suptitle("nearest neighbours (cosine, pooled features)", fontsize=9)
    figure.tight_layout()
    return figure


def embedding_figure(points: np.ndarray, labels: np.ndarray, classes: list[str], method: str) -> Figure:
    """A scatter of ``points [M, 2]`` coloured by ``labels [M]``."""
    figure, axis = plt.subplots(figsize=(6, 5))
    colours = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
    for label, name in enumerate(classes):
        chosen = labels == label
        if chosen.any():
            axis.scatter(points[chosen, 0], points[chosen, 1], s=6, color=colours(label % colours.N), label=name)
    axis.set_title(f"{method.upper()} of pooled features, coloured by label", fontsize=9)
    axis.set_xticks([]), axis.set_yticks([])
    if len(classes) <= 20:
        axis.legend(fontsize=6, markerscale=2, loc="best")
    figure.tight_layout()
    return figure


def confusion_figure(confusion: list[list[int]], classes: list[str], title: str) -> Figure:
    """A confusion matrix (rows: true class, columns: predicted), counts in the cells."""
    matrix = np.asarray(confusion)
    size = max(4.0, 0.45 * len(classes) + 1.5)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(matrix, cmap="Blues")
    ticks = range(len(classes))
    axis.set_xticks(ticks, classes, rotation=90, fontsize=7)
    axis.set_yticks(ticks, classes, fontsize=7)
    if len(classes) <= 20:
        for row in ticks:
            for col in ticks:
                colour = "white" if matrix[row, col] > matrix.max() / 2 else "black"
                axis.text(col, row, str(matrix[row, col]), ha="center", va="center", fontsize=6, color=colour)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return figure


def per_class_figure(accuracies: list[float], classes: list[str], title: str) -> Figure:
    """Per-class accuracy as horizontal bars."""
    figure, axis = plt.subplots(figsize=(6, max(2.5, 0.25 * len(classes) + 1)))
    axis.barh(range(len(classes)), [100 * value for value in accuracies], color="tab:blue")
    axis.set_yticks(range(len(classes)), classes, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlim(0, 100)
    axis.set_xlabel("accuracy %")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3, axis="x")
    figure.tight_layout()
    return figure


def save_png(figure: Figure, path: Path | None = None, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (written to ``path`` too when given); the figure is closed."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    data = buffer.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data
