"""``scarce.evaluate``: frozen-feature evaluation of an encoder under one honest protocol.

Probe families, each with its configuration selected on the **validation** split carved from the
training data, then scored **once** on the test split:

- ``attentive``: the paper's simple, multi-head and cross attentive probes trained side by side
  (spec sec. 5); the family's selection is the (probe, epoch) with the best validation top-1;
- ``linear``: a linear probe on mean-pooled tokens (optionally the last n blocks concatenated),
  (lr, weight decay, epoch) selected on validation;
- ``knn``: weighted kNN (cosine, T = 0.07), k in {10, 20, 100} selected on validation;
- ``fewshot``: n in {1, 5, 10} labelled training images per class, several seeded draws, kNN and
  logistic regression, mean ± std on the test split (a protocol, not a selection).

The headline is the family with the best validation top-1. Results: ``results.json`` and
``results.md`` (and a printed table).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from scarce.config import ScarceConfig, build_config
from scarce.data.datasets import DataSplits, fingerprint, load_data
from scarce.data.transforms import PhotometricConfig, SingleViewTransform
from scarce.engine.loop import autocast_factory, select_device
from scarce.engine.run_dir import RunDirectory, git_commit
from scarce.errors import ConfigError, DataError
from scarce.eval.attentive import ProbeRecipe, probe_logits, restore_probe, train_attentive_probes
from scarce.eval.encoders import LoadedEncoder
from scarce.eval.features import FrozenEncoder, eval_view, extract
from scarce.eval.fewshot import few_shot_eval
from scarce.eval.knn import knn_sweep
from scarce.eval.linear import train_linear_probe
from scarce.eval.metrics import classification_report
from scarce.eval.report import write_report
from scarce.runtime import environment_info

ProbeFamily = Literal["attentive", "linear", "knn", "fewshot"]


class EvaluationConfig(BaseModel):
    """Settings of ``scarce evaluate`` (defaults: the paper's probe recipe)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probes: tuple[ProbeFamily, ...] = ("attentive", "linear", "knn", "fewshot")
    attentive_kinds: tuple[Literal["simple", "multihead", "cross"], ...] = ("simple", "multihead", "cross")
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(64, ge=1)
    warmup_epochs: float = Field(20, ge=0)
    augment: bool = Field(True, description="probe training view: the SSL crop/flip/colour transform")
    linear_last_blocks: int = Field(1, ge=1)
    knn_ks: tuple[int, ...] = (10, 20, 100)
    fewshot_shots: tuple[int, ...] = (1, 5, 10)
    fewshot_draws: int = Field(5, ge=1)
    seed: int = Field(0, ge=0)
    val_fraction: float = Field(0.1, ge=0, lt=1)
    test_fraction: float = Field(0.2, ge=0, lt=1)
    split_seed: int = Field(0, ge=0)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32",
        description="frozen-encoder forward precision. fp32 by default even on CUDA: pooled features of a weakly "
        "trained encoder can differ between images by less than bf16's rounding (benchmarks/results/"
        "eval_precision_h100.md)",
    )
    num_workers: int = Field(0, ge=0)


@dataclass
class EvaluationResult:
    rows: list[dict[str, Any]]
    fewshot: list[dict[str, Any]]
    headline: dict[str, Any] | None
    payload: dict[str, Any] = field(default_factory=dict)


def splits_for(spec: str, settings: EvaluationConfig, run_config: ScarceConfig | None) -> DataSplits:
    """Load labelled splits; a run's own split settings win so that its validation split (carved from
    the same training images it was pretrained on) is reproduced exactly."""
    if run_config is not None and run_config.data.spec is not None:
        val_fraction, test_fraction = run_config.data.val_fraction, run_config.data.test_fraction
        split_seed = run_config.data.split_seed
    else:
        val_fraction, test_fraction, split_seed = settings.val_fraction, settings.test_fraction, settings.split_seed
    splits = load_data(spec, val_fraction=val_fraction, test_fraction=test_fraction, seed=split_seed)
    for name, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)):
        if split is None or not split.is_labelled:
            raise DataError(f"evaluation needs labelled train, val and test splits; {name} is missing or unlabelled")
    return splits


def run_config_of(loaded: LoadedEncoder) -> ScarceConfig | None:
    if loaded.run_dir is None or not (loaded.run_dir / "config.yaml").exists():
        return None
    return build_config(RunDirectory(loaded.run_dir).read_config())


def _row(family: str, probe: str, selected: dict[str, Any], val: Any, test: Any | None) -> dict[str, Any]:
    return {
        "family": family,
        "probe": probe,
        "selected": selected,
        "val": val.to_dict(),
        "test": None if test is None else test.to_dict(),
    }


def evaluate(
    loaded: LoadedEncoder,
    data_spec: str,
    settings: EvaluationConfig | None = None,
    out_dir: str | Path | None = None,
    *,
    log: Callable[[str], None] = print,
    show_progress: bool | None = None,
) -> EvaluationResult:
    """Evaluate ``loaded.encoder`` frozen on ``data_spec``; write ``results.json`` / ``results.md``."""
    started = time.perf_counter()
    settings = settings or EvaluationConfig()
    if not settings.probes:
        raise ConfigError("no probe family selected")
    run_config = run_config_of(loaded)
    splits = splits_for(data_spec, settings, run_config)
    train, val, test = splits.train, splits.val, splits.test
    assert val is not None and test is not None and val.labels is not None and test.labels is not None
    assert train.labels is not None
    device = select_device(settings.device)
    frozen = FrozenEncoder(
        loaded.encoder, device, autocast_factory(device, settings.precision), settings.linear_last_blocks
    )
    size = loaded.encoder.config.img_size
    num_classes = train.num_classes
    views = {name: eval_view(split, size) for name, split in (("train", train), ("val", val), ("test", test))}
    rows: list[dict[str, Any]] = []
    timings: dict[str, float] = {}
    pooled: dict[str, torch.Tensor] = {}
    if {"linear", "knn", "fewshot"} & set(settings.probes):
        tick = time.perf_counter()
        pooled = {name: extract(frozen.pooled, images) for name, images in views.items()}
        timings["pooled_features"] = time.perf_counter() - tick

    if "attentive" in settings.probes:
        tick = time.perf_counter()
        val_tokens = extract(frozen.tokens, views["val"])
        photometric = PhotometricConfig() if settings.augment else PhotometricConfig(p=0.0)
        transform = SingleViewTransform(
            size,
            photometric=photometric,
            flip_p=0.5 if settings.augment else 0.0,
            scale=(0.2, 1.0) if settings.augment else (1.0, 1.0),
        )
        recipe = ProbeRecipe(
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            warmup_epochs=settings.warmup_epochs,
            seed=settings.seed,
        )
        selections = train_attentive_probes(
            frozen,
            train,
            val_tokens,
            val.labels,
            transform,
            settings.attentive_kinds,
            recipe,
            num_workers=settings.num_workers,
            log=log,
            show_progress=show_progress,
        )
        best_kind = max(selections.values(), key=lambda s: s.best_val_top1).kind
        test_tokens = extract(frozen.tokens, views["test"])
        for kind, selection in selections.items():
            probe = restore_probe(selection, loaded.encoder.embed_dim, num_classes, device)
            val_report = classification_report(probe_logits(probe, val_tokens, device), val.labels, num_classes)
            test_report = None
            if kind == best_kind:  # the family's selection: the only attentive probe scored on test
                test_report = classification_report(probe_logits(probe, test_tokens, device), test.labels, num_classes)
            rows.append(_row("attentive", kind, {"epoch": selection.best_epoch}, val_report, test_report))
        timings["attentive"] = time.perf_counter() - tick

    if "linear" in settings.probes:
        tick = time.perf_counter()
        linear = train_linear_probe(
            pooled["train"], train.labels, pooled["val"], val.labels, num_classes, seed=settings.seed
        )
        selected = {
            "lr": linear.lr,
            "weight_decay": linear.weight_decay,
            "epoch": linear.epoch,
            "last_blocks": settings.linear_last_blocks,
        }
        rows.append(
            _row(
                "linear",
                "linear",
                selected,
                classification_report(linear.logits(pooled["val"]), val.labels, num_classes),
                classification_report(linear.logits(pooled["test"]), test.labels, num_classes),
            )
        )
        timings["linear"] = time.perf_counter() - tick

    if "knn" in settings.probes:
        tick = time.perf_counter()
        val_scores = knn_sweep(pooled["train"], train.labels, pooled["val"], num_classes, ks=settings.knn_ks)
        val_top1 = {k: (scores.argmax(-1) == val.labels).float().mean().item() for k, scores in val_scores.items()}
        best_k = max(settings.knn_ks, key=lambda k: (val_top1[k], -k))
        test_scores = knn_sweep(pooled["train"], train.labels, pooled["test"], num_classes, ks=(best_k,))[best_k]
        rows.append(
            _row(
                "knn",
                f"knn-{best_k}",
                {"k": best_k, "val_top1_by_k": val_top1},
                classification_report(val_scores[best_k], val.labels, num_classes),
                classification_report(test_scores, test.labels, num_classes),
            )
        )
        timings["knn"] = time.perf_counter() - tick

    fewshot: list[dict[str, Any]] = []
    if "fewshot" in settings.probes:
        tick = time.perf_counter()
        results = few_shot_eval(
            pooled["train"],
            train.labels,
            pooled["test"],
            test.labels,
            num_classes,
            shots=settings.fewshot_shots,
            draws=settings.fewshot_draws,
            seed=settings.seed,
        )
        fewshot = [
            {"shots": r.shots, "method": r.method, "mean": r.mean, "std": r.std, "accuracies": r.accuracies}
            for r in results
        ]
        timings["fewshot"] = time.perf_counter() - tick

    selectable = [row for row in rows if row["test"] is not None]
    headline = max(selectable, key=lambda row: row["val"]["top1"]) if selectable else None
    protocol = {
        "pretraining": run_config.data.protocol
        if run_config is not None
        else ("none (random init)" if loaded.which == "random-init" else "unknown (not a scarce run)"),
        "selection": "per probe family: configuration with the best validation top-1; headline: best family on val",
        "test": "evaluated once per family, by its selected configuration",
        "splits": splits.info,
        "split_sizes": {"train": len(train), "val": len(val), "test": len(test)},
        "fingerprints": {"train": fingerprint(train), "val": fingerprint(val), "test": fingerprint(test)},
        "seed": settings.seed,
    }
    payload = {
        "encoder": {"source": loaded.source, "which": loaded.which, "config": loaded.encoder.config.model_dump()},
        "data": data_spec,
        "protocol": protocol,
        "settings": settings.model_dump(mode="json"),
        "results": rows,
        "fewshot": fewshot,
        "headline": None if headline is None else {"family": headline["family"], "probe": headline["probe"]},
        "seconds": time.perf_counter() - started,
        "timings": timings,
        "environment": {**environment_info(), "git_commit": git_commit(), "device": str(device)},
    }
    result = EvaluationResult(rows=rows, fewshot=fewshot, headline=headline, payload=payload)
    if out_dir is not None:
        log(write_report(Path(out_dir), payload))
    return result
