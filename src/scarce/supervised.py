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
from scarce.engine.checkpoint import load_checkpoint, load_state_dict_strict
from scarce.engine.device import autocast_factory, select_device
from scarce.engine.run_dir import RunDirectory
from scarce.errors import CheckpointError
from scarce.eval.families import result_row
from scarce.eval.features import eval_view, extract
from scarce.eval.metrics import classification_report
from scarce.eval.report import write_report
from scarce.eval.results import results_payload, split_record
from scarce.methods.supervised import Supervised
from scarce.models.backbone import build_backbone
from scarce.pretrain import PretrainResult, prepare_data, pretrain

SUPERVISED_RECIPE = (
    "method=supervised",
    "optim.weight_decay=0.05",
    "optim.final_weight_decay=0.05",
    "schedule.flat_fraction=0.0",
)
"""Overrides that turn a pretraining preset into the supervised recipe: AdamW with constant weight
decay 0.05, warm-up then cosine (no flat phase), label smoothing 0.1, the preset's model,
augmentation, batch size, epochs and peak LR."""


def test_best_epoch(config: ScarceConfig, run_dir: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Score the best-validation epoch on val and, once, on test; write the results files."""
    run = RunDirectory(run_dir)
    if not run.best_checkpoint.exists():
        raise CheckpointError(f"{run.best_checkpoint} not found: no validated epoch to test")
    payload = load_checkpoint(run.best_checkpoint)
    data = prepare_data(config)
    val, test = data.splits.val, data.splits.test
    if val is None or test is None or val.labels is None or test.labels is None:
        raise CheckpointError("the test pass needs labelled val and test splits")
    device = select_device(config.run.device)
    method = Supervised(
        build_backbone(config.network_config()),
        data.train.num_classes,
        config.supervised.head,
        config.supervised.label_smoothing,
    )
    load_state_dict_strict(method, payload["method"], f"best checkpoint {run.best_checkpoint}")
    method.to(device).eval()
    autocast = autocast_factory(device, config.run.precision)
    size, batch = config.model.img_size, config.run.batch_size

    def logits(images: torch.Tensor) -> torch.Tensor:
        with autocast():
            return method.logits(images.to(device)).float()

    num_classes = data.train.num_classes
    val_report = classification_report(extract(logits, eval_view(val, size), batch), val.labels, num_classes)
    test_report = classification_report(extract(logits, eval_view(test, size), batch), test.labels, num_classes)
    init = config.supervised.init
    protocol = {
        "pretraining": f"fine-tuned from {init}" if init else "none (supervised)",
        "selection": "the epoch with the best validation top-1",
        "test": "evaluated once, by the selected epoch",
        "splits": data.splits.info,
        **split_record({"train": data.train, "val": val, "test": test}),
        "seed": config.run.seed,
    }
    best_epoch = payload["state"]["best_epoch"]
    result = results_payload(
        encoder={
            "source": f"{run.path} ({'supervised fine-tuning of ' + init if init else 'supervised from scratch'})",
            "which": "supervised",
            "config": config.network_config().model_dump(),
        },
        data=config.data.spec,
        protocol=protocol,
        rows=[result_row("supervised", config.supervised.head, {"epoch": best_epoch}, val_report, test_report)],
        device=device,
        seconds=0.0,
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
    report = test_best_epoch(config, run_dir, log=log)
    report["seconds"] = time.perf_counter() - started
    return result, report
