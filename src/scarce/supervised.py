"""``scarce supervised``: the supervised baseline in the same harness as the frozen probes.

Trains ``encoder -> LayerNorm -> head`` end to end (from random init, or fine-tuning a pretrained
encoder with ``supervised.init``) with the SSL crop/flip/colour augmentation, scores the
validation split every epoch, keeps the best epoch (``checkpoints/best.pt``), and evaluates the
**test split once**, with that epoch's weights. Results go to ``results.json`` / ``results.md``
in the run directory, in the same format as ``scarce evaluate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from scarce.config import ScarceConfig
from scarce.data.image_set import ImageSet
from scarce.engine.checkpoint import load_checkpoint, load_state_dict_strict
from scarce.engine.device import autocast_factory, select_device
from scarce.engine.run_dir import RunDirectory
from scarce.errors import CheckpointError
from scarce.eval.families import result_row
from scarce.eval.features import eval_view, extract
from scarce.eval.metrics import ClassificationReport, classification_report
from scarce.eval.report import write_report
from scarce.eval.results import results_payload, split_record
from scarce.methods import METHODS
from scarce.models.backbone import build_backbone
from scarce.models.classifier import CLASSIFIER_FILE, save_classifier
from scarce.pretrain import PretrainResult, labels_used, prepare_data, pretrain

SUPERVISED_RECIPE = (
    "method=supervised",
    "optim.weight_decay=0.05",
    "optim.final_weight_decay=0.05",
    "schedule.flat_fraction=0.0",
)
"""Overrides that turn a pretraining preset into the supervised recipe: AdamW with constant weight
decay 0.05, warm-up then cosine (no flat phase), label smoothing 0.1, the preset's model,
augmentation, batch size, epochs and peak LR."""


def _selected_checkpoint(run: RunDirectory) -> tuple[Path, str]:
    """The weights to test: the best validation epoch's, else (no validation split: a label budget
    without ``val_per_class``) the last epoch's; and how they were selected."""
    if run.best_checkpoint.exists():
        return run.best_checkpoint, "the epoch with the best validation top-1"
    if run.last_checkpoint.exists():
        return run.last_checkpoint, "none: fixed recipe, the last epoch (no validation split)"
    raise CheckpointError(f"{run.path} holds no checkpoint to test")


def test_classifier(config: ScarceConfig, run_dir: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the selected epoch (see :func:`_selected_checkpoint`) on val (if any) and, once, on
    test; write ``classifier.safetensors`` and the results files."""
    started = time.perf_counter()
    run = RunDirectory(run_dir)
    path, selection = _selected_checkpoint(run)
    payload = load_checkpoint(path)
    data = prepare_data(config)
    val, test = data.splits.val, data.splits.test
    if test is None or test.labels is None:
        raise CheckpointError("the test pass needs a labelled test split")
    device = select_device(config.run.device)
    num_classes = data.train.num_classes
    method_class = METHODS.get(config.method)
    method = method_class.build(config, num_classes, build_backbone(config.network_config()))  # type: ignore[attr-defined]
    load_state_dict_strict(method, payload["method"], f"checkpoint {path}")
    method.to(device).eval()
    encoder, head = method.evaluated_modules()
    options = method_class.options_of(config)  # type: ignore[attr-defined]
    epoch = int(payload["state"]["best_epoch"] if path == run.best_checkpoint else payload["state"]["epoch"])
    save_classifier(
        run.path / CLASSIFIER_FILE,
        encoder,
        head,
        head_kind=options.head,
        classes=list(data.train.classes),
        selected={"epoch": epoch, "selection": selection},
        source=str(run.path),
        method=config.method,
    )
    autocast = autocast_factory(device, config.run.precision)
    size, batch = config.model.img_size, config.run.batch_size

    def logits(images: torch.Tensor) -> torch.Tensor:
        with autocast():
            return method.logits(images.to(device)).float()

    def report(split: ImageSet) -> ClassificationReport:
        assert split.labels is not None
        return classification_report(extract(logits, eval_view(split, size), batch), split.labels, num_classes)

    named = {"train": data.train, "test": test, **({"val": val} if val is not None else {})}
    source, started_from = method_class.origin(config)  # type: ignore[attr-defined]
    what = f"{config.method} of {source}" if source else f"{config.method} from random init"
    protocol = {
        "pretraining": started_from,
        "selection": selection,
        "test": "evaluated once, by the selected epoch",
        "splits": data.splits.info,
        **split_record(named),
        "labels_used": labels_used(data),
        "label_budget": data.splits.info.get("label_budget"),
        "seed": config.run.seed,
    }
    result = results_payload(
        encoder={
            "source": f"{run.path} ({what})",
            "which": config.method,
            "config": config.network_config().model_dump(),
        },
        data=config.data.spec,
        protocol=protocol,
        rows=[result_row(config.method, options.head, {"epoch": epoch}, report(val) if val else None, report(test))],
        device=device,
        seconds=time.perf_counter() - started,  # the test pass (loading, scoring, writing the classifier)
    )
    log(write_report(run.path, result))
    return result


def train_supervised(
    config: ScarceConfig, run_dir: str | Path, *, log: Callable[[str], None] = print, **training: Any
) -> tuple[PretrainResult, dict[str, Any] | None]:
    """Train the supervised baseline (``training``: the keyword options of :func:`pretrain`); when
    training finished, test its best epoch once."""
    started = time.perf_counter()
    result = pretrain(config, run_dir, log=log, **training)
    if result.status != "finished" or not result.is_main:
        return result, None
    report = test_classifier(config, run_dir, log=log)
    report["seconds"] = time.perf_counter() - started
    return result, report
