"""Weighted k-nearest-neighbour classification of frozen features (Wu et al. 2018; as in DINO).

Features are L2-normalised and compared by cosine similarity. Each query takes its ``k`` most
similar training features; neighbour ``j`` votes for its label with weight ``exp(sim_j / T)``, and
the votes are summed per class. The result is a class-score matrix ``[Q, C]`` (0 for classes no
neighbour votes for), so :func:`scarce.eval.metrics.classification_report` applies to it directly.

- **Ties are deterministic**: neighbours are ranked by similarity, then by the *lower* training
  index, so the neighbour set never depends on the order ``torch.topk`` happens to return tied
  entries in. Rows with a tie across the k-th place are re-ranked with a stable sort; the others
  use ``topk`` alone (a full sort of every row would cost ~10x more).
- ``k`` larger than the training set uses every training feature.
- Queries are processed ``chunk_size`` at a time, so memory is ``O(chunk_size · N)``.
- Computation runs on the device of ``train_features``, in float64 if either feature set is
  float64 and float32 otherwise; the scores come back on that device in that dtype.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def _check_inputs(train_features: Tensor, train_labels: Tensor, query_features: Tensor, num_classes: int) -> None:
    for name, features in (("train_features", train_features), ("query_features", query_features)):
        if features.ndim != 2 or not features.is_floating_point():
            raise ValueError(f"{name} must be a floating [N, D] tensor, got {features.dtype} {tuple(features.shape)}")
    if train_features.shape[1] != query_features.shape[1]:
        raise ValueError(
            f"train and query features differ in width: {train_features.shape[1]} vs {query_features.shape[1]}"
        )
    if train_features.shape[0] == 0:
        raise ValueError("kNN needs at least one training feature")
    if train_labels.ndim != 1 or train_labels.is_floating_point() or train_labels.dtype == torch.bool:
        raise ValueError(f"train_labels must be a 1-D integer tensor, got {train_labels.dtype}")
    if train_labels.numel() != train_features.shape[0]:
        raise ValueError(f"{train_features.shape[0]} training features but {train_labels.numel()} labels")
    if int(train_labels.min()) < 0 or int(train_labels.max()) >= num_classes:
        raise ValueError(f"train_labels must lie in [0, {num_classes})")


def top_neighbours(similarity: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` largest entries of each row of ``similarity`` ``[Q, N]``, as ``(values, indices)`` ``[Q, k]``.

    Ranked by value (descending), then by index (ascending), so ties always keep the lower indices.
    """
    values, indices = similarity.topk(k, dim=1)
    kth = values[:, -1:]
    # topk may keep any of the entries tied at the k-th value; where it had to leave some out, rank stably
    cut_ties = (similarity == kth).sum(dim=1) > (values == kth).sum(dim=1)
    if cut_ties.any():
        rows = torch.nonzero(cut_ties).flatten()
        sorted_values, sorted_indices = torch.sort(similarity[rows], dim=1, descending=True, stable=True)
        values[rows], indices[rows] = sorted_values[:, :k], sorted_indices[:, :k]
    by_index = indices.argsort(dim=1)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    by_value = values.argsort(dim=1, descending=True, stable=True)
    return values.gather(1, by_value), indices.gather(1, by_value)


def _vote(similarities: Tensor, labels: Tensor, num_classes: int, temperature: float) -> Tensor:
    """Class scores ``[Q, C]`` from neighbour similarities ``[Q, k]`` and their labels ``[Q, k]``."""
    weights = torch.exp(similarities / temperature)
    scores = torch.zeros(similarities.shape[0], num_classes, dtype=similarities.dtype, device=similarities.device)
    return scores.scatter_add_(1, labels, weights)


def knn_sweep(
    train_features: Tensor,
    train_labels: Tensor,
    query_features: Tensor,
    num_classes: int,
    ks: Sequence[int] = (10, 20, 100),
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> dict[int, Tensor]:
    """Weighted kNN class scores for several ``k`` at once: ``{k: scores [Q, C]}``.

    The neighbours are ranked once per query chunk for ``max(ks)`` and sliced for the smaller ``k``.

    Args:
        train_features: ``[N, D]`` features of the labelled set (normalised here).
        train_labels: integer ``[N]`` classes in ``[0, C)``.
        query_features: ``[Q, D]`` features to classify (normalised here).
        num_classes: C.
        ks: neighbour counts, each >= 1; a ``k`` above N uses all N.
        temperature: T of the vote weights ``exp(similarity / T)``, > 0.
        chunk_size: queries per similarity block.
    """
    _check_inputs(train_features, train_labels, query_features, num_classes)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be a non-empty sequence of integers >= 1, got {tuple(ks)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    device = train_features.device
    dtype = torch.float64 if torch.float64 in (train_features.dtype, query_features.dtype) else torch.float32
    train = F.normalize(train_features.detach().to(dtype), dim=1)
    labels = train_labels.detach().to(device=device, dtype=torch.long)
    max_k = min(max(ks), train.shape[0])
    chunks: dict[int, list[Tensor]] = {k: [] for k in ks}
    for query in query_features.detach().split(chunk_size):
        similarity = F.normalize(query.to(device=device, dtype=dtype), dim=1) @ train.T
        values, indices = top_neighbours(similarity, max_k)
        neighbour_labels = labels[indices]
        for k in chunks:
            used = min(k, max_k)
            chunks[k].append(_vote(values[:, :used], neighbour_labels[:, :used], num_classes, temperature))
    empty = torch.zeros(0, num_classes, dtype=dtype, device=device)
    return {k: torch.cat(parts) if parts else empty for k, parts in chunks.items()}


def knn_classify(
    train_features: Tensor,
    train_labels: Tensor,
    query_features: Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> Tensor:
    """Weighted kNN class scores ``[Q, C]`` of ``query_features`` ``[Q, D]`` (see :func:`knn_sweep`)."""
    return knn_sweep(train_features, train_labels, query_features, num_classes, (k,), temperature, chunk_size)[k]
