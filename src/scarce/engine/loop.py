"""The generic training loop: any :class:`~scarce.methods.base.Method`, any device.

It owns what every method needs and no method should rewrite: device and precision, the
optimiser with per-iteration LR / weight-decay schedules, the EMA momentum schedule, gradient
accumulation and clipping, checkpoints (atomic; exact resume of model, EMA, optimiser, schedules,
RNG and data order), SIGINT/SIGTERM handling, NaN detection, logging, progress and the online
probe. Multi-process training plugs in through the sampler's ``rank`` / ``world_size``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from scarce.config import ScarceConfig
from scarce.data.loader import AugmentedViews, EpochBatchSampler, make_train_loader
from scarce.engine.checkpoint import load_state_dict_strict, save_checkpoint
from scarce.engine.diagnostics import effective_rank, token_std_across_batch
from scarce.engine.distributed import DistInfo, all_reduce_mean, any_rank, barrier
from scarce.engine.metrics_log import JsonlLog, MetricsLogger
from scarce.engine.online_probe import OnlineProbe
from scarce.engine.run_dir import RunDirectory
from scarce.engine.schedules import Cosine, Linear, WarmupFlatCosine
from scarce.errors import ConfigError, DataError, ScarceError
from scarce.eval.features import extract
from scarce.methods.base import Batch, Method

MAX_RANK_FEATURES = 2048
WORKER_NICENESS = 10
COLLAPSE_RANK_FRACTION = 0.25


class TrainingDivergedError(ScarceError):
    """The loss became NaN or infinite."""


def select_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if available, else Apple MPS, else CPU; otherwise the named device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ScarceError(f"unknown device {name!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScarceError(f"device {name!r} requested but CUDA is not available")
    return device


def autocast_factory(device: torch.device, precision: str) -> Callable[[], AbstractContextManager[Any]]:
    """A context-manager factory: bf16 autocast on CUDA by default (or when asked), else nothing."""
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@dataclass
class TrainState:
    """Where the run is: epochs completed, optimiser steps done, optimiser steps into this epoch."""

    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    best_val_top1: float = -1.0  # methods that classify: best validation top-1 so far, and its epoch
    best_epoch: int = 0
    first_effective_rank: float | None = None  # the collapse warning compares against epoch 1


@dataclass
class Schedules:
    lr: WarmupFlatCosine
    weight_decay: Linear
    momentum: Linear | Cosine

    @classmethod
    def from_config(cls, config: ScarceConfig, steps_per_epoch: int) -> Schedules:
        total = config.schedule.epochs * steps_per_epoch
        optim, schedule = config.optim, config.schedule
        momentum_cls = Linear if schedule.ema_schedule == "linear" else Cosine
        return cls(
            lr=WarmupFlatCosine(
                start=optim.scaled(optim.start_lr, config.run.batch_size),
                peak=optim.scaled(optim.lr, config.run.batch_size),
                final=optim.scaled(optim.final_lr, config.run.batch_size),
                total_steps=total,
                warmup_steps=round(schedule.warmup_epochs * steps_per_epoch),
                flat_fraction=schedule.flat_fraction,
            ),
            weight_decay=Linear(optim.weight_decay, optim.final_weight_decay, total),
            momentum=momentum_cls(schedule.ema_start, schedule.ema_end, total),
        )


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def build_optimizer(method: Method, config: ScarceConfig) -> torch.optim.Optimizer:
    """AdamW (MIM-JEPA, spec sec. 4.7) or SGD with momentum (S3L) over the method's parameter
    groups; the loop sets each group's LR and weight decay every step from the schedules."""
    optim = config.optim
    groups = method.parameter_groups()
    if optim.name == "sgd":
        return torch.optim.SGD(groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay)  # type: ignore[arg-type]
    return torch.optim.AdamW(
        groups,  # type: ignore[arg-type]
        lr=optim.lr,
        betas=optim.betas,
        eps=optim.eps,
        weight_decay=optim.weight_decay,
    )


class NullLogger:
    """The metric sink of ranks other than 0."""

    def log_iteration(self, record: dict[str, Any]) -> None:
        del record

    def log_epoch(self, record: dict[str, Any]) -> None:
        del record

    def close(self) -> None:
        pass


def _init_worker(worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process (which checkpoints and exits) and run at a
    lower priority, so that on a small CPU they fill idle time instead of stalling the compute
    threads at their synchronisation points."""
    del worker_id
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        os.nice(WORKER_NICENESS)


class Trainer:
    """Runs ``method`` on ``dataset`` as ``config`` says, writing into ``run_dir``.

    Args:
        method: the method (modules already built).
        config: the resolved configuration.
        run_dir: a prepared :class:`RunDirectory`.
        dataset: per-sample augmented views of the training images.
        val_images, val_labels: eval-transformed uint8 validation images ``[M, 3, S, S]`` and
            labels for the online probe (None: no probe).
        num_classes: classes of the labelled training data (0: unlabelled).
        device: where to train.
        dist_info: this process's place under ``torchrun`` (one process by default). With more than
            one, the method is wrapped in ``DistributedDataParallel``, every rank trains on its
            slice of each global batch, and rank 0 alone logs, evaluates and writes files.
    """

    def __init__(
        self,
        method: Method,
        config: ScarceConfig,
        run_dir: RunDirectory,
        dataset: AugmentedViews,
        *,
        val_images: Tensor | None = None,
        val_labels: Tensor | None = None,
        num_classes: int = 0,
        device: torch.device,
        num_workers: int = 0,
        dist_info: DistInfo | None = None,
        show_progress: bool | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.run_dir = run_dir
        self.device = device
        self.dist = dist_info or DistInfo()
        self.log = log if self.dist.is_main else (lambda _: None)
        self.show_progress = show_progress if self.dist.is_main else False
        self.method = method.to(device)
        run = config.run
        self.accumulation = config.optim.accumulation_steps
        try:
            self.sampler = EpochBatchSampler(
                len(dataset),
                run.batch_size,
                run.seed,
                run.drop_last,
                self.dist.rank,
                self.dist.world_size,
                self.accumulation,
            )
        except ValueError as error:
            raise ConfigError(f"run.batch_size is the global batch: {error}") from None
        self.steps_per_epoch = self.sampler.steps_per_epoch
        if self.steps_per_epoch < 1:
            raise DataError(
                f"{len(dataset)} training images are fewer than one batch of {run.batch_size}; "
                "lower --batch-size or add images"
            )
        self.model: torch.nn.Module = method
        if self.dist.enabled:
            device_ids = [device.index] if device.type == "cuda" else None
            self.model = DistributedDataParallel(method, device_ids=device_ids, static_graph=True)
        self.loader = make_train_loader(
            dataset,
            self.sampler,
            num_workers,
            pin_memory=device.type == "cuda",
            worker_init_fn=_init_worker,
            seed=run.seed,
        )
        self.schedules = Schedules.from_config(config, self.steps_per_epoch)
        self.total_steps = config.schedule.epochs * self.steps_per_epoch
        self.optimizer = build_optimizer(method, config)
        self.autocast = autocast_factory(device, run.precision)
        self.state = TrainState()
        self.val_images, self.val_labels = val_images, val_labels
        self.probe: OnlineProbe | None = None
        wants_probe = run.online_probe and num_classes > 0 and val_images is not None and val_labels is not None
        if wants_probe and self.dist.is_main:  # monitoring only: rank 0 trains it on its own slices
            embed_dim = next(iter(method.export_encoders().values())).embed_dim  # type: ignore[union-attr]
            self.probe = OnlineProbe(int(embed_dim), num_classes, run.probe_lr, run.probe_weight_decay, device)
        self._stop_signal: int | None = None
        if run.compile:
            for module in method.trainable_modules().values():
                module.compile()

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_payload(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "method": self.method.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "probe": None if self.probe is None else self.probe.state_dict(),
            "state": asdict(self.state),
            "rng": rng_state(),
        }

    def save(self, numbered: bool = False) -> None:
        """Rank 0 writes ``last.pt`` (and a numbered copy); every rank waits for it."""
        if self.dist.is_main:
            payload = self.checkpoint_payload()
            save_checkpoint(self.run_dir.last_checkpoint, payload)
            if numbered:
                save_checkpoint(self.run_dir.epoch_checkpoint(self.state.epoch), payload)
        barrier(self.dist)

    def restore(self, payload: dict[str, Any]) -> None:
        """Continue exactly from a checkpoint written by :meth:`save`."""
        load_state_dict_strict(self.method, payload["method"], "checkpoint model weights")
        self.optimizer.load_state_dict(payload["optimizer"])
        if self.probe is not None and payload.get("probe") is not None:
            self.probe.load_state_dict(payload["probe"])
        self.state = TrainState(**payload["state"])
        set_rng_state(payload["rng"])
        JsonlLog.truncate(self.run_dir.metrics_path, "step", self.state.step)
        JsonlLog.truncate(self.run_dir.epochs_path, "epoch", self.state.epoch)

    # ------------------------------------------------------------------ one step
    def _set_schedules(self) -> tuple[float, float, float]:
        step = self.state.step
        lr, weight_decay = self.schedules.lr(step), self.schedules.weight_decay(step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
            group["weight_decay"] = weight_decay * group.get("wd_scale", 1.0)
        return lr, weight_decay, self.schedules.momentum(step)

    def train_step(
        self, batch: Batch, boundary: bool = True, momentum: float | None = None
    ) -> tuple[float, Tensor | None, dict[str, float]]:
        """One micro-batch: forward, loss check, backward; at an accumulation ``boundary`` also
        clipping, the optimiser step and the EMA update (``momentum``: default, the schedule's).
        Returns the loss (mean over ranks), the method's probe tokens and its other scalars."""
        if momentum is None:
            momentum = self.schedules.momentum(self.state.step)
        batch = batch.to(self.device, non_blocking=True)
        sync = contextlib.nullcontext() if boundary or not self.dist.enabled else self.model.no_sync()  # type: ignore[operator]
        with sync:
            with self.autocast():
                output = self.model(batch)  # Method.forward is its training step; DDP syncs the gradients
            (output.loss / self.accumulation).backward()
        loss_value = all_reduce_mean(output.loss.item(), self.dist, self.device)
        if not math.isfinite(loss_value):
            raise TrainingDivergedError(
                f"loss is {loss_value} at step {self.state.step} (epoch {self.state.epoch + 1}); stopped. "
                f"The last good checkpoint is {self.run_dir.last_checkpoint}"
            )
        if boundary:
            if self.config.optim.clip_grad is not None:
                parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
                torch.nn.utils.clip_grad_norm_(parameters, self.config.optim.clip_grad)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.method.update_ema(momentum)
        if self.probe is not None and output.probe_tokens is not None and batch.labels is not None:
            self.probe.train_step(output.probe_tokens, batch.labels)
        extras = {key: float(value) for key, value in output.metrics.items() if key != "loss"}
        return loss_value, output.probe_tokens, extras

    # ------------------------------------------------------------------ epochs
    def _epoch_batches(self) -> Iterator[Batch]:
        self.sampler.set_epoch(self.state.epoch, self.state.step_in_epoch)
        yield from self.loader

    def _validate(self) -> float | None:
        if self.probe is None or self.val_images is None or self.val_labels is None:
            return None
        encoder = self.method.monitor_encoder()
        from scarce.data.transforms import normalize_batch
        from scarce.methods.mimjepa import target_layer_norm

        def features(images: Tensor) -> Tensor:
            return target_layer_norm(encoder(normalize_batch(images)))

        was_training = encoder.training
        encoder.eval()  # no dropout, and BatchNorm statistics never see validation images
        try:
            return self.probe.evaluate(
                features, self.val_images, self.val_labels, self.config.run.batch_size, self.autocast
            )
        finally:
            encoder.train(was_training)

    def _warn_on_collapse(self, rank: float) -> None:
        """Say so when the effective rank of the features fell below a quarter of epoch 1's."""
        if self.state.first_effective_rank is None:
            self.state.first_effective_rank = rank
        elif rank < COLLAPSE_RANK_FRACTION * self.state.first_effective_rank:
            self.log(
                f"warning: representation collapse suspected: effective rank {rank:.1f} "
                f"(epoch 1: {self.state.first_effective_rank:.1f}); compare with scarce evaluate --random-init, "
                "and for MIM-JEPA try --set mimjepa.target_centering=batch"
            )

    @torch.no_grad()
    def _validate_classifier(self) -> float | None:
        """Validation top-1 of a method that classifies (see ``Method.classify``), else None."""
        if self.val_images is None or self.val_labels is None or type(self.method).classify is Method.classify:
            return None
        self.method.eval()

        def predictions(images: Tensor) -> Tensor:
            with self.autocast():
                logits = self.method.classify(images.to(self.device))
            assert logits is not None
            return logits.argmax(-1)

        correct = int((extract(predictions, self.val_images, self.config.run.batch_size) == self.val_labels).sum())
        self.method.train()
        return correct / len(self.val_images)

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: object) -> None:
            del frame
            self._stop_signal = signum

        with contextlib.suppress(ValueError):  # not in the main thread: no handlers
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, handler)
        return previous

    def fit(self, stop_after_epoch: int | None = None, max_seconds: float | None = None) -> str:
        """Train until the configured epochs end (``"finished"``), ``stop_after_epoch`` epochs are
        complete or ``max_seconds`` passed (``"stopped"``), or a signal arrives (``"interrupted"``).
        A checkpoint is written in every case; :class:`TrainingDivergedError` leaves the last good one."""
        epochs = self.config.schedule.epochs
        batches_per_epoch = self.steps_per_epoch * self.accumulation
        logger: MetricsLogger | NullLogger = NullLogger()
        if self.dist.is_main:
            logger = MetricsLogger(
                self.run_dir.metrics_path,
                self.run_dir.epochs_path,
                self.run_dir.tensorboard if self.config.run.tensorboard else None,
            )
        previous_handlers = self._install_signal_handlers()
        started = time.perf_counter()
        progress = tqdm(
            total=epochs * batches_per_epoch,
            initial=self.state.epoch * batches_per_epoch + self.state.step_in_epoch * self.accumulation,
            disable=not self.show_progress if self.show_progress is not None else None,
            unit="batch",
            dynamic_ncols=True,
        )
        status = "finished"
        try:
            while self.state.epoch < epochs:
                status = self._run_epoch(logger, progress, batches_per_epoch)
                if status == "interrupted":
                    break
                if stop_after_epoch is not None and self.state.epoch >= stop_after_epoch:
                    status = "stopped" if self.state.epoch < epochs else "finished"
                    break
                if max_seconds is not None and time.perf_counter() - started > max_seconds:
                    status = "stopped" if self.state.epoch < epochs else "finished"
                    break
            if status == "running":
                status = "finished"
        finally:
            progress.close()
            logger.close()
            for signum, previous in previous_handlers.items():
                signal.signal(signum, previous)
        return status

    def _run_epoch(self, logger: MetricsLogger | NullLogger, progress: tqdm, batches_per_epoch: int) -> str:
        self.method.begin_epoch(self.state.epoch)
        self.method.train()
        epoch_start = time.perf_counter()
        losses: list[float] = []
        pooled: list[Tensor] = []
        last_tokens: Tensor | None = None
        images_seen = 0
        tick = time.perf_counter()
        for micro, batch in enumerate(self._epoch_batches(), start=1):
            boundary = micro % self.accumulation == 0
            lr, weight_decay, momentum = self._set_schedules()
            loss, tokens, extras = self.train_step(batch, boundary, momentum)
            losses.append(loss)
            batch_images = batch.views[0].shape[0]
            images_seen += batch_images
            if tokens is not None:
                last_tokens = tokens
                if sum(len(chunk) for chunk in pooled) < MAX_RANK_FEATURES:
                    pooled.append(tokens.float().mean(dim=1).cpu())
            now = time.perf_counter()
            images_per_second = batch_images / max(now - tick, 1e-9)
            tick = now
            record = {
                "step": self.state.step + int(boundary),
                "epoch": self.state.epoch + 1,
                "loss": loss,
                "lr": lr,
                "weight_decay": weight_decay,
                "momentum": momentum,
                "images_per_second": images_per_second,
                **extras,
            }
            logger.log_iteration(record)
            progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", img_s=f"{images_per_second:.0f}")
            progress.update(1)
            if boundary:
                self.state.step += 1
                self.state.step_in_epoch += 1
                if any_rank(self._stop_signal is not None, self.dist, self.device):
                    self.save()
                    name = signal.Signals(self._stop_signal or signal.SIGTERM).name
                    self.log(f"{name}: checkpoint saved at step {self.state.step}; continue with --resume")
                    return "interrupted"
        self.state.epoch += 1
        self.state.step_in_epoch = 0
        seconds = time.perf_counter() - epoch_start
        summary: dict[str, Any] = {
            "epoch": self.state.epoch,
            "step": self.state.step,
            "loss": sum(losses) / max(len(losses), 1),
            "seconds": seconds,
            "images_per_second": images_seen / max(seconds, 1e-9),
        }
        summary.update(extras if losses else {})
        if last_tokens is not None:
            summary["target_token_std"] = token_std_across_batch(last_tokens)
            summary["effective_rank"] = effective_rank(torch.cat(pooled)[:MAX_RANK_FEATURES])
            self._warn_on_collapse(summary["effective_rank"])
        probe_accuracy = self._validate()
        if probe_accuracy is not None:
            summary["online_probe_val_top1"] = probe_accuracy
        val_top1 = self._validate_classifier() if self.dist.is_main else None
        if val_top1 is not None:
            summary["val_top1"] = val_top1
            if val_top1 > self.state.best_val_top1:
                self.state.best_val_top1, self.state.best_epoch = val_top1, self.state.epoch
                save_checkpoint(self.run_dir.best_checkpoint, self.checkpoint_payload())
        logger.log_epoch(summary)
        numbered = (
            self.state.epoch % self.config.run.checkpoint_every == 0 or self.state.epoch == self.config.schedule.epochs
        )
        self.save(numbered=numbered)
        shown = ", ".join(f"{key} {value:.4g}" for key, value in summary.items() if key not in ("epoch", "step"))
        self.log(f"epoch {self.state.epoch}/{self.config.schedule.epochs}: {shown}")
        return "interrupted" if any_rank(self._stop_signal is not None, self.dist, self.device) else "running"
