"""Weighted kNN: equal to a plain-Python reference, chunking-invariant, k > N, deterministic ties."""

from __future__ import annotations

import math

import pytest
import torch

from scarce.eval.knn import knn_classify, knn_sweep, top_neighbours

TEMPERATURE = 0.07


def reference_knn(
    train: list[list[float]], labels: list[int], queries: list[list[float]], num_classes: int, k: int
) -> list[list[float]]:
    """Brute force: cosine similarity, neighbours ranked by (similarity desc, index asc), exp(sim / T) votes."""

    def unit(vector: list[float]) -> list[float]:
        norm = math.sqrt(sum(value * value for value in vector))
        return [value / norm for value in vector]

    train_units = [unit(vector) for vector in train]
    scores = []
    for query in queries:
        query_unit = unit(query)
        similarities = [
            (sum(a * b for a, b in zip(query_unit, vector, strict=True)), index)
            for index, vector in enumerate(train_units)
        ]
        row = [0.0] * num_classes
        for similarity, index in sorted(similarities, key=lambda pair: (-pair[0], pair[1]))[:k]:
            row[labels[index]] += math.exp(similarity / TEMPERATURE)
        scores.append(row)
    return scores


def random_problem(seed: int = 0, num_train: int = 40, num_query: int = 15, num_classes: int = 4):
    generator = torch.Generator().manual_seed(seed)
    train = torch.randn(num_train, 8, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, num_classes, (num_train,), generator=generator)
    queries = torch.randn(num_query, 8, generator=generator, dtype=torch.float64)
    return train, labels, queries


@pytest.mark.parametrize("k", [1, 7, 40])
def test_matches_plain_python_reference(k: int) -> None:
    train, labels, queries = random_problem()
    scores = knn_classify(train, labels, queries, num_classes=4, k=k, temperature=TEMPERATURE)
    expected = torch.tensor(reference_knn(train.tolist(), labels.tolist(), queries.tolist(), 4, k), dtype=torch.float64)
    assert scores.shape == (15, 4) and scores.dtype == torch.float64
    assert torch.equal(scores.argmax(dim=1), expected.argmax(dim=1))
    torch.testing.assert_close(scores, expected, rtol=1e-9, atol=0.0)


def test_float32_features_close_to_reference() -> None:
    train, labels, queries = random_problem(seed=1)
    scores = knn_classify(train.float(), labels, queries.float(), num_classes=4, k=7)
    expected = torch.tensor(reference_knn(train.tolist(), labels.tolist(), queries.tolist(), 4, 7))
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=0.0)


def test_chunking_does_not_change_scores() -> None:
    train, labels, queries = random_problem(seed=2, num_query=23)
    whole = knn_classify(train, labels, queries, num_classes=4, k=5, chunk_size=1024)
    for chunk_size in (1, 4, 22, 23):
        chunked = knn_classify(train, labels, queries, num_classes=4, k=5, chunk_size=chunk_size)
        torch.testing.assert_close(chunked, whole, rtol=1e-12, atol=0.0)
        assert torch.equal(chunked.argmax(dim=1), whole.argmax(dim=1))


def test_k_above_training_set_uses_all_of_it() -> None:
    train, labels, queries = random_problem(seed=3)
    all_neighbours = knn_classify(train, labels, queries, num_classes=4, k=40)
    assert torch.equal(knn_classify(train, labels, queries, num_classes=4, k=1000), all_neighbours)
    # every training feature votes: the scores of a query add up to the sum of all its weights
    similarities = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(train, dim=1).T
    torch.testing.assert_close(all_neighbours.sum(dim=1), torch.exp(similarities / TEMPERATURE).sum(dim=1))


def test_sweep_equals_separate_runs() -> None:
    train, labels, queries = random_problem(seed=4)
    sweep = knn_sweep(train, labels, queries, num_classes=4, ks=(3, 10, 100), chunk_size=6)
    assert sorted(sweep) == [3, 10, 100]
    for k, scores in sweep.items():
        assert torch.equal(scores, knn_classify(train, labels, queries, num_classes=4, k=k, chunk_size=6))


def test_ties_keep_the_lowest_training_indices() -> None:
    # 50 identical training features (exact similarity 1.0) with labels 0,1,2,3,4,0,1,...; then 10 orthogonal ones
    same = torch.zeros(50, 4)
    same[:, 0] = 1.0
    other = torch.zeros(10, 4)
    other[:, 1] = 1.0
    train = torch.cat([same, other])
    labels = torch.cat([torch.arange(50) % 5, torch.full((10,), 5)])
    query = torch.tensor([[2.0, 0.0, 0.0, 0.0]])
    weight = math.exp(1.0 / TEMPERATURE)
    for chunk_size in (1, 1024):
        scores = knn_classify(train, labels, query, num_classes=6, k=7, chunk_size=chunk_size)
        # neighbours 0..6 -> labels 0, 1, 2, 3, 4, 0, 1
        torch.testing.assert_close(scores, torch.tensor([[2.0, 2.0, 1.0, 1.0, 1.0, 0.0]]) * weight)


def test_top_neighbours_ranks_by_value_then_index() -> None:
    similarity = torch.tensor([[0.5, 0.9, 0.5, 0.9, 0.5, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2, 0.2]])
    values, indices = top_neighbours(similarity, 3)
    assert indices.tolist() == [[1, 3, 0], [0, 1, 2]]
    assert torch.equal(values, torch.tensor([[0.9, 0.9, 0.5], [0.2, 0.2, 0.2]]))
    _, all_indices = top_neighbours(similarity, 6)
    assert all_indices.tolist() == [[1, 3, 0, 2, 4, 5], [0, 1, 2, 3, 4, 5]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query_features": torch.randn(3, 5)}, "width"),
        ({"train_labels": torch.zeros(9, dtype=torch.long)}, "labels"),
        ({"train_labels": torch.zeros(10)}, "integer"),
        ({"train_labels": torch.full((10,), 4)}, r"\[0, 4\)"),
        ({"train_features": torch.randn(10)}, "floating"),
        ({"k": 0}, ">= 1"),
        ({"temperature": 0.0}, "temperature"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_rejects_bad_inputs(kwargs: dict, message: str) -> None:
    arguments = {
        "train_features": torch.randn(10, 4),
        "train_labels": torch.zeros(10, dtype=torch.long),
        "query_features": torch.randn(3, 4),
        "num_classes": 4,
    }
    with pytest.raises(ValueError, match=message):
        knn_classify(**(arguments | kwargs))
