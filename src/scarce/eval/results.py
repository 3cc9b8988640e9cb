"""The results record every evaluating command writes (``results.json`` / ``results.md``):
``scarce evaluate`` (frozen probes) and the classifier runs (``scarce supervised``) build it here."""

from __future__ import annotations

from typing import Any

import torch

from scarce.data.image_set import ImageSet, fingerprint
from scarce.engine.run_dir import git_commit
from scarce.runtime import environment_info


def split_record(splits: dict[str, ImageSet]) -> dict[str, Any]:
    """Sizes and content fingerprints of the named splits (what was trained, selected and tested on)."""
    return {
        "split_sizes": {name: len(split) for name, split in splits.items()},
        "fingerprints": {name: fingerprint(split) for name, split in splits.items()},
    }


def labels_used(splits: dict[str, ImageSet | None]) -> dict[str, int]:
    """Labels a run or an evaluation saw: of its training split and of its validation split (every
    label counts under a label budget, validation labels included)."""

    def count(name: str) -> int:
        split = splits.get(name)
        return 0 if split is None or split.labels is None else int((split.labels >= 0).sum())

    return {"train": count("train"), "val": count("val")}


def headline_row(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The row with the best validation top-1 among those scored on test (each family's selection)."""
    selectable = [row for row in rows if row["test"] is not None]
    if selectable and any(row["val"] is None for row in selectable):
        return selectable[0]  # no validation split: the first family scored, a fixed choice
    return max(selectable, key=lambda row: row["val"]["top1"]) if selectable else None


def results_payload(
    *,
    encoder: dict[str, Any],
    data: str | None,
    protocol: dict[str, Any],
    rows: list[dict[str, Any]],
    device: torch.device,
    seconds: float,
    fewshot: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The JSON-serialisable results record.

    Args:
        encoder: ``source``, ``which`` and ``config`` of the evaluated network.
        data: the dataset spec.
        protocol: how the splits were made and used (``pretraining``, ``selection``, ``test``,
            ``splits``, ``split_sizes``, ``fingerprints``, ``seed``, ...).
        rows: result rows (:func:`scarce.eval.families.result_row`); the headline is chosen here.
    """
    headline = headline_row(rows)
    payload: dict[str, Any] = {
        "encoder": encoder,
        "data": data,
        "protocol": protocol,
        "results": rows,
        "fewshot": fewshot or [],
        "headline": None if headline is None else {"family": headline["family"], "probe": headline["probe"]},
        "seconds": seconds,
        "environment": {**environment_info(), "git_commit": git_commit(), "device": str(device)},
    }
    if settings is not None:
        payload["settings"] = settings
    if timings is not None:
        payload["timings"] = timings
    return payload
