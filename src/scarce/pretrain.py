"""``scarce.pretrain``: everything ``scarce pretrain`` does, as one Python call.

>>> from scarce.config import load_config
>>> from scarce.pretrain import pretrain
>>> config = load_config("scott-cpu-96", ["data.spec=npz:../shared/datasets/imagenette", "schedule.epochs=2"])
>>> result = pretrain(config, "runs/demo")              # doctest: +SKIP
>>> result.encoder_path                                  # doctest: +SKIP
PosixPath('runs/demo/encoder.safetensors')
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from scarce.builders import build_method, build_transform
from scarce.config import ScarceConfig, build_config, config_differences
from scarce.data.budget import load_budgeted
from scarce.data.datasets import DataSplits, ImageSet, concat, fingerprint
from scarce.data.loader import AugmentedViews
from scarce.data.splits import take_subset
from scarce.engine.checkpoint import atomic_write, load_resume_checkpoint, load_state_dict_strict
from scarce.engine.device import select_device
from scarce.engine.distributed import DistInfo, barrier, init_distributed, process_device
from scarce.engine.loop import Trainer
from scarce.engine.run_dir import RunDirectory, git_commit
from scarce.errors import CheckpointError, ConfigError, DataError
from scarce.eval.features import eval_view
from scarce.eval.results import labels_used as count_labels
from scarce.flops import forward_flops_per_image
from scarce.methods import METHODS, Method
from scarce.models.backbone import backbone_metadata, build_backbone
from scarce.runtime import environment_info

FROZEN_SECTIONS = ("method", "model", "backbone", "masking", "data", "augmentation", "contrastive", "stages")
"""Sections a resumed run may not change: they define what is being trained."""


@dataclass
class PretrainResult:
    status: str  # finished | stopped | interrupted
    run_dir: Path  # with stages: the top-level run directory
    epochs_done: int
    steps_done: int
    seconds: float
    encoder_path: Path | None
    is_main: bool = True  # False on ranks other than 0 under torchrun
    checkpoint: Path | None = None  # the last checkpoint written (with stages: the current stage's)


@dataclass
class PretrainData:
    """The images pretraining uses and the labelled ones the online probe may use."""

    splits: DataSplits
    train: ImageSet  # labelled training split (after the small-data subset)
    pretrain_images: ImageSet  # what the SSL objective sees (protocol-dependent)
    subset_ids: list[str] | None


def prepare_data(config: ScarceConfig) -> PretrainData:
    data = config.data
    if not data.spec:
        raise ConfigError("no data: pass --data SPEC (e.g. npz:PATH or folder:PATH) or set data.spec")
    splits = load_budgeted(
        data.spec,
        data.budget,
        val_fraction=data.val_fraction,
        test_fraction=data.test_fraction,
        seed=data.split_seed,
        cache_short_side=data.cache_short_side,
        download=data.download,
    )
    train = splits.train
    subset_ids = None
    if data.subset_per_class is not None or data.subset_total is not None:
        indices = take_subset(
            train.labels, per_class=data.subset_per_class, total=data.subset_total, seed=data.split_seed
        )
        train = train.subset(indices)
        subset_ids = list(train.ids)
    # the SSL objective sees every training image: labelled, and under a budget the unlabelled rest
    pretrain_images = train if splits.unlabelled is None else concat([train, splits.unlabelled])
    if data.protocol == "transductive":
        # the paper's setting: the SSL objective also sees val and test images, never their labels
        others = [split for split in (splits.val, splits.test) if split is not None]
        pretrain_images = concat([pretrain_images, *[_unlabelled(split) for split in others]])
    return PretrainData(splits=splits, train=train, pretrain_images=pretrain_images, subset_ids=subset_ids)


def _unlabelled(images: ImageSet) -> ImageSet:
    """The same images with their labels hidden."""
    return ImageSet(images=images.images, labels=None, ids=images.ids, classes=[])


def _check_resumable(run_dir: RunDirectory, config: ScarceConfig, log: Callable[[str], None]) -> None:
    saved = run_dir.read_config()
    new = config.to_dict()
    frozen = [
        line
        for section in FROZEN_SECTIONS
        for line in config_differences({section: saved.get(section)}, {section: new.get(section)})
    ]
    if saved.get("optim", {}).get("name", "adamw") != config.optim.name:
        frozen.append(f"optim.name: {saved.get('optim', {}).get('name', 'adamw')!r} -> {config.optim.name!r}")
    if frozen:
        raise CheckpointError("--resume: the run was started with a different setup: " + "; ".join(frozen))
    other = config_differences(saved, new)
    if other:
        log("resuming with changed settings: " + "; ".join(other))


def _write_run_records(run_dir: RunDirectory, config: ScarceConfig, data: PretrainData, device: torch.device) -> None:
    splits = data.splits
    environment: dict[str, Any] = {
        **environment_info(),
        "git_commit": git_commit(),
        "training_device": str(device),
        "command": os.environ.get("SCARCE_COMMAND", ""),
        "protocol": config.data.protocol,
        "data": splits.info,
        "pretrain_images": len(data.pretrain_images),
        "pretrain_fingerprint": fingerprint(data.pretrain_images),
        "labelled_train_images": len(data.train),
        "labels_used": labels_used(data),
        "cost": backbone_cost(config),
    }
    run_dir.write_config(config.to_dict())
    run_dir.write_json(run_dir.environment_path, environment)
    split_ids = {
        "train": list(data.train.ids),
        "val": [] if splits.val is None else list(splits.val.ids),
        "test": [] if splits.test is None else list(splits.test.ids),
        "subset": data.subset_ids,
        "labelled": list(data.train.ids),
        "unlabelled": [] if splits.unlabelled is None else list(splits.unlabelled.ids),
        "label_budget": splits.info.get("label_budget"),
    }
    run_dir.write_json(run_dir.splits_path, split_ids)


def labels_used(data: PretrainData) -> dict[str, int]:
    """Labels the run may see: its labelled training images and its validation split's labels."""
    return count_labels({"train": data.train, "val": data.splits.val})


def backbone_cost(config: ScarceConfig) -> dict[str, Any]:
    """FLOPs of one backbone forward per image at the training and the evaluation resolution, and
    the parameter count (S3L reports cost next to accuracy; wall-clock is in ``epochs.jsonl``)."""
    state = torch.get_rng_state()
    backbone = build_backbone(config.network_config())
    torch.set_rng_state(state)
    return {
        "backbone_parameters": sum(p.numel() for p in backbone.parameters()),
        "train_resolution": config.crop_size,
        "eval_resolution": config.model.img_size,
        "forward_flops_per_image_train": forward_flops_per_image(backbone, config.crop_size),
        "forward_flops_per_image_eval": forward_flops_per_image(backbone, config.model.img_size),
    }


def export_weights(method: Method, run_dir: RunDirectory) -> Path:
    """Write each exported encoder as ``NAME.safetensors`` with its config in the metadata."""
    first: Path | None = None
    for name, module in method.export_encoders().items():
        path = run_dir.path / f"{name}.safetensors"
        metadata = backbone_metadata(module)
        tensors = {key: value.detach().cpu().contiguous() for key, value in module.state_dict().items()}
        atomic_write(
            path,
            lambda temporary, tensors=tensors, metadata=metadata: save_file(tensors, str(temporary), metadata=metadata),
        )
        first = first or path
    assert first is not None
    return first


def default_workers(device: torch.device) -> int:
    return 1 if device.type == "cpu" else min(8, os.cpu_count() or 1)


def build_trainer(
    config: ScarceConfig,
    run: RunDirectory,
    data: PretrainData,
    device: torch.device,
    *,
    show_progress: bool | None = None,
    log: Callable[[str], None] = print,
    dist_info: DistInfo | None = None,
) -> Trainer:
    """Method, mask generator, augmented dataset, online-probe data and the :class:`Trainer`."""
    method_class = METHODS.get(config.method)
    labelled_only = method_class.needs_labels
    if labelled_only and not data.train.is_labelled:
        raise DataError(f"{config.method} training needs labelled images; {config.data.spec} has none")
    images = data.train if labelled_only else data.pretrain_images
    method = build_method(config, data.train.num_classes, train_size=len(images), log=log)
    if dist_info is not None and dist_info.enabled and method_class.changes_trainable_parameters(config):
        raise ConfigError(f"{config.method}: a warm-up that freezes layers runs on one process (not under torchrun)")
    dataset = method.train_dataset(config, data)
    if dataset is None:
        dataset = AugmentedViews(images, build_transform(config), method.mask_generator(config), config.run.seed)
    val = data.splits.val
    val_labelled = val is not None and val.is_labelled
    probe_ready = data.train.is_labelled and val_labelled and config.run.online_probe and method_class.pretraining
    needs_val = probe_ready or (labelled_only and val_labelled)
    return Trainer(
        method,
        config,
        run,
        dataset,
        val_images=eval_view(val, config.model.img_size) if needs_val and val is not None else None,
        val_labels=val.labels if needs_val and val is not None else None,
        num_classes=data.train.num_classes if probe_ready else 0,
        device=device,
        num_workers=config.data.num_workers if config.data.num_workers is not None else default_workers(device),
        show_progress=show_progress,
        log=log,
        dist_info=dist_info,
    )


def pretrain(
    config: ScarceConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    max_minutes: float | None = None,
    show_progress: bool | None = None,
    log: Callable[[str], None] = print,
) -> PretrainResult:
    """Pretrain as ``config`` says into ``run_dir`` (new, or continued with ``resume=True``).

    With ``config.stages`` the run is multi-stage (S3L): stage ``i`` trains in ``run_dir/stage-i``
    from the previous stage's method state (encoder, momentum encoder, heads, queue) with a new
    optimiser and restarted schedules; ``stop_after_epoch`` counts epochs over all stages; the last
    stage's weights are exported into ``run_dir``."""
    started = time.perf_counter()
    run, info, device, data = _open_run(config, run_dir, resume, log)
    deadline = None if max_minutes is None else started + max_minutes * 60
    stages = stage_configs(config, run) if config.stages else [(run, config)]
    epochs_before, steps_before, carried, trainer, status = 0, 0, None, None, "finished"
    stage_run = run
    for index, (stage_run, stage_config) in enumerate(stages):
        stage_resume = resume if stage_run is run else stage_run.has_checkpoint()
        if stage_run is not run and info.is_main and not stage_resume:
            stage_run.create()
            _write_run_records(stage_run, stage_config, data, device)
        barrier(info)
        trainer = build_trainer(
            stage_config, stage_run, data, device, show_progress=show_progress, log=log, dist_info=info
        )
        _start_from(trainer, stage_run, stage_resume, carried, f"stage {index} method state", log)
        if len(stages) > 1:
            epochs, size = stage_config.schedule.epochs, stage_config.crop_size
            log(f"stage {index + 1}/{len(stages)}: {epochs} epochs at {size} px")
        stage_stop = None if stop_after_epoch is None else stop_after_epoch - epochs_before
        if stage_stop is not None and stage_stop <= trainer.state.epoch:
            status = "stopped"
            break
        remaining = None if deadline is None else max(deadline - time.perf_counter(), 0.0)
        if remaining == 0.0 and trainer.state.epoch < stage_config.schedule.epochs:
            status = "stopped"  # max_minutes ran out at the end of the previous stage
            break
        status = trainer.fit(stop_after_epoch=stage_stop, max_seconds=remaining)
        if status != "finished":
            break
        epochs_before += stage_config.schedule.epochs
        steps_before += trainer.state.step
        carried = {key: value.detach().to("cpu", copy=True) for key, value in trainer.method.state_dict().items()}
    assert trainer is not None
    encoder_path = None
    if status == "finished" and info.is_main:
        encoder_path = export_weights(trainer.method, run)
    barrier(info)
    return PretrainResult(
        status=status,
        run_dir=run.path,
        epochs_done=epochs_before if status == "finished" else epochs_before + trainer.state.epoch,
        steps_done=steps_before if status == "finished" else steps_before + trainer.state.step,
        checkpoint=stage_run.last_checkpoint,
        seconds=time.perf_counter() - started,
        encoder_path=encoder_path,
        is_main=info.is_main,
    )


def _open_run(
    config: ScarceConfig, run_dir: str | Path, resume: bool, log: Callable[[str], None]
) -> tuple[RunDirectory, DistInfo, torch.device, PretrainData]:
    """Check the run directory and the data (before anything is written), then create the run's
    records on rank 0; every rank waits."""
    device = select_device(config.run.device)
    info = init_distributed(device)
    device = process_device(device, info)
    run = RunDirectory(run_dir)
    if resume and config.stages:
        _check_staged_resume(run)
    else:
        run.check(resume)
    barrier(info)  # every rank has checked before rank 0 creates anything
    if resume:
        _check_resumable(run, config, log)
    data = prepare_data(config)  # bad data fails here, before anything is written
    if not resume and info.is_main:
        run.create()
        _write_run_records(run, config, data, device)
    barrier(info)
    return run, info, device, data


def _start_from(
    trainer: Trainer,
    run: RunDirectory,
    resume: bool,
    carried: dict[str, torch.Tensor] | None,
    what: str,
    log: Callable[[str], None],
) -> None:
    """Resume ``trainer`` from the run's newest readable checkpoint, or start it from the method
    state ``carried`` over from the previous stage (if any)."""
    if resume:
        path, payload = load_resume_checkpoint(run.checkpoints, log)
        trainer.restore(payload, str(path))
        log(f"resumed {run.path} at epoch {trainer.state.epoch}, step {trainer.state.step}")
    elif carried is not None:
        load_state_dict_strict(trainer.method, carried, what)


def _check_staged_resume(run: RunDirectory) -> None:
    if not run.config_path.exists():
        raise CheckpointError(f"--resume: {run.path} holds no run")


def stage_configs(config: ScarceConfig, run: RunDirectory) -> list[tuple[RunDirectory, ScarceConfig]]:
    """Each stage's run directory (``run/stage-i``, from 1) and single-stage config (its epochs and
    resolution; everything else as ``config``)."""
    stages = []
    for number, stage in enumerate(config.stages, start=1):
        raw = config.to_dict()
        raw["schedule"]["epochs"] = stage.epochs
        raw["augmentation"]["crop_size"] = stage.crop_size or config.augmentation.crop_size
        raw["stages"] = []
        stages.append((RunDirectory(run.path / f"stage-{number}"), build_config(raw)))
    return stages


def load_run_config(run_dir: str | Path, overrides: list[str]) -> ScarceConfig:
    """The saved configuration of a run with ``section.key=value`` overrides applied."""
    from scarce.config import apply_override

    raw = RunDirectory(run_dir).read_config()
    for override in overrides:
        apply_override(raw, override)
    return build_config(raw)


def summary_line(result: PretrainResult) -> str:
    where = f"; encoder weights: {result.encoder_path}" if result.encoder_path else ""
    return (
        f"{result.status}: {result.epochs_done} epochs, {result.steps_done} steps in {result.seconds / 60:.1f} min; "
        f"checkpoint: {result.checkpoint or result.run_dir / 'checkpoints' / 'last.pt'}{where}"
    )
