"""``scarce.evaluate``: frozen-feature evaluation of an encoder under one honest protocol.

Probe families (registered in :mod:`scarce.eval.families`), each with its configuration selected
on the **validation** split carved from the training data, then scored **once** on the test split:

- ``attentive``: the paper's simple, multi-head and cross attentive probes trained side by side
  (spec sec. 5); the family's selection is the (probe, epoch) with the best validation top-1;
- ``linear``: a linear probe on mean-pooled tokens (optionally the last n blocks concatenated),
  (lr, weight decay, epoch) selected on validation;
- ``knn``: weighted kNN (cosine, T = 0.07), k in {10, 20, 100} selected on validation;
- ``fewshot``: n in {1, 5, 10} labelled training images per class, several seeded draws, kNN and
  logistic regression, mean ± std on the test split (a protocol, not a selection).

The headline is the family with the best validation top-1. Results: ``results.json`` and
``results.md`` (and a printed table).

**Label budgets** (:mod:`scarce.data.budget`): the evaluate settings' own budget when they set one,
else the evaluated run's (``data.labels_per_class`` ...), else none. Under a budget the probes train
on the labelled images only; with ``val_per_class`` they select on the budget's small validation
split, and without it nothing is selected: every family trains one fixed configuration, keeps the
last epoch and scores test once (attentive: the first of ``attentive_kinds``; linear: the middle of
its (lr, weight decay) grid; kNN: the middle of ``knn_ks``); the headline is then the first family
of ``probes`` scored on test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from scarce.config import BudgetSection, ScarceConfig, build_config
from scarce.data.budget import LabelBudget, load_budgeted
from scarce.data.datasets import DataSplits
from scarce.engine.device import autocast_factory, select_device
from scarce.engine.run_dir import RunDirectory
from scarce.errors import ConfigError, DataError
from scarce.eval.encoders import LoadedEncoder
from scarce.eval.families import PROBE_FAMILIES, ProbeContext
from scarce.eval.features import FrozenEncoder, eval_view
from scarce.eval.report import write_report
from scarce.eval.results import headline_row, labels_used, results_payload, split_record
from scarce.models.probes import attentive_heads


class EvaluationConfig(BudgetSection):
    """Settings of ``scarce evaluate`` (defaults: the paper's probe recipe; an unset label budget
    means the evaluated run's)."""

    probes: tuple[str, ...] = Field(
        ("attentive", "linear", "knn", "fewshot"), description="registered probe families (PROBE_FAMILIES)"
    )
    attentive_kinds: tuple[str, ...] = Field(default_factory=attentive_heads, description="attentive heads to train")
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
    download: bool = Field(False, description="fetch a missing imagenette / cifar10 / flowers102 / pets37 dataset")

    @field_validator("probes")
    @classmethod
    def _known_families(cls, probes: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(PROBE_FAMILIES.validate(name) for name in probes)

    @model_validator(mode="after")
    def _seed_needs_a_budget(self) -> EvaluationConfig:
        # alone, a seed would replace the evaluated run's budget with none
        if self.label_seed is not None and self.labels_per_class is None and self.label_fraction is None:
            raise ValueError("label_seed draws a label budget: set labels_per_class or label_fraction")
        return self

    @field_validator("attentive_kinds")
    @classmethod
    def _attentive_heads(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [kind for kind in kinds if kind not in attentive_heads()]
        if unknown:
            raise ValueError(f"unknown attentive probes {unknown}; known: {', '.join(attentive_heads())}")
        return kinds


SELECTION_ON_VAL = "per probe family: configuration with the best validation top-1; headline: best family on val"
NO_SELECTION = (
    "none: fixed recipe, the last epoch (label budget without a validation split); "
    "headline: the first family of the probes scored on test"
)


@dataclass
class EvaluationResult:
    rows: list[dict[str, Any]]
    fewshot: list[dict[str, Any]]
    headline: dict[str, Any] | None
    payload: dict[str, Any] = field(default_factory=dict)


def evaluation_budget(settings: EvaluationConfig, run_config: ScarceConfig | None) -> LabelBudget:
    """The label budget of an evaluation: the settings' own when they set one, else the evaluated
    run's (so that its labelled ids are reproduced), else none (an inactive budget)."""
    if settings.sets_budget or run_config is None:
        return settings.budget
    return run_config.data.budget


def splits_for(spec: str, settings: EvaluationConfig, run_config: ScarceConfig | None) -> DataSplits:
    """Load labelled splits under the evaluation's label budget (:func:`evaluation_budget`); a run's
    own split settings win so that its validation split (carved from the same training images it was
    pretrained on) is reproduced exactly. Under a budget without ``val_per_class``, ``val`` is None."""
    if run_config is not None and run_config.data.spec is not None:
        val_fraction, test_fraction = run_config.data.val_fraction, run_config.data.test_fraction
        split_seed = run_config.data.split_seed
    else:
        val_fraction, test_fraction, split_seed = settings.val_fraction, settings.test_fraction, settings.split_seed
    budget = evaluation_budget(settings, run_config)
    splits = load_budgeted(
        spec,
        budget,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=split_seed,
        download=settings.download,
    )
    needed = {"train": splits.train, "test": splits.test}
    if not budget.active:
        needed["val"] = splits.val  # a budget without val_per_class has no validation split, by design
    for name, split in needed.items():
        if split is None or not split.is_labelled:
            raise DataError(f"evaluation needs labelled train, val and test splits; {name} is missing or unlabelled")
    return splits


def run_config_of(loaded: LoadedEncoder) -> ScarceConfig | None:
    if loaded.run_dir is None or not (loaded.run_dir / "config.yaml").exists():
        return None
    return build_config(RunDirectory(loaded.run_dir).read_config())


def evaluate(
    loaded: LoadedEncoder,
    data_spec: str,
    settings: EvaluationConfig | None = None,
    out_dir: str | Path | None = None,
    *,
    log: Callable[[str], None] = print,
    show_progress: bool | None = None,
) -> EvaluationResult:
    """Evaluate ``loaded.encoder`` frozen on ``data_spec`` with each family of ``settings.probes``
    (see :data:`scarce.eval.families.PROBE_FAMILIES`); write ``results.json`` / ``results.md``."""
    started = time.perf_counter()
    settings = settings or EvaluationConfig()
    if not settings.probes:
        raise ConfigError("no probe family selected")
    run_config = run_config_of(loaded)
    splits = splits_for(data_spec, settings, run_config)
    named = splits.named()
    device = select_device(settings.device)
    frozen = FrozenEncoder(
        loaded.encoder, device, autocast_factory(device, settings.precision), settings.linear_last_blocks
    )
    size = loaded.encoder.config.img_size
    context = ProbeContext(
        frozen=frozen,
        splits=named,
        views={name: eval_view(split, size) for name, split in named.items()},
        settings=settings,
        device=device,
        log=log,
        show_progress=show_progress,
    )
    rows: list[dict[str, Any]] = []
    fewshot: list[dict[str, Any]] = []
    for family in settings.probes:
        tick = time.perf_counter()
        outcome = PROBE_FAMILIES.get(family)(context)
        rows += outcome.rows
        fewshot += outcome.fewshot
        context.timings[family] = time.perf_counter() - tick
    protocol = {
        "pretraining": _pretraining(loaded, run_config),
        "selection": SELECTION_ON_VAL if splits.val is not None else NO_SELECTION,
        "test": "evaluated once per family, by its selected configuration",
        "splits": splits.info,
        **split_record(named),
        "labels_used": labels_used(named),
        "label_budget": splits.info.get("label_budget"),
        "seed": settings.seed,
    }
    payload = results_payload(
        encoder={"source": loaded.source, "which": loaded.which, "config": loaded.encoder.config.model_dump()},
        data=data_spec,
        protocol=protocol,
        rows=rows,
        fewshot=fewshot,
        device=device,
        seconds=time.perf_counter() - started,
        settings=settings.model_dump(mode="json"),
        timings=context.timings,
    )
    result = EvaluationResult(rows=rows, fewshot=fewshot, headline=headline_row(rows), payload=payload)
    if out_dir is not None:
        log(write_report(Path(out_dir), payload))
    return result


def _pretraining(loaded: LoadedEncoder, run_config: ScarceConfig | None) -> str:
    if run_config is not None:
        return run_config.data.protocol
    return "none (random init)" if loaded.which == "random-init" else "unknown (not a scarce run)"
