"""The generic training loop: any :class:`~scarce.methods.base.Method`, any device.

It owns what every method needs and no method should rewrite: the optimiser with per-iteration
LR / weight-decay schedules (:mod:`scarce.engine.optim`), the EMA momentum schedule, gradient
accumulation and clipping, checkpoints (atomic; exact resume of model, EMA, optimiser, schedules,
RNG and data order), SIGINT/SIGTERM handling, NaN detection, logging, progress and the online
probe. Device and precision come from :mod:`scarce.engine.device`. Multi-process training plugs in
through the sampler's ``rank`` / ``world_size``. It imports no method module.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset
from tqdm import tqdm

from scarce.config import ScarceConfig
from scarce.data.loader import EpochBatchSampler, make_train_loader
from scarce.data.transforms import normalize_batch
from scarce.engine.checkpoint import load_optimizer_state, load_state_dict_strict, save_checkpoint
from scarce.engine.device import autocast_factory, rng_state, set_rng_state
from scarce.engine.distributed import DistInfo, all_reduce_mean, any_rank, barrier
from scarce.engine.epoch_stats import EpochStats
from scarce.engine.metrics_log import JsonlLog, MetricsLogger
from scarce.engine.online_probe import OnlineProbe
from scarce.engine.optim import Schedules, build_optimizer
from scarce.engine.run_dir import RunDirectory
from scarce.errors import CheckpointError, ConfigError, DataError, ScarceError
from scarce.eval.features import extract
from scarce.methods.base import Batch, Method
from scarce.models.layers import token_layer_norm

WORKER_NICENESS = 10
COLLAPSE_RANK_FRACTION = 0.25


class TrainingDivergedError(ScarceError):
    """The loss became NaN or infinite."""


@dataclass
class TrainState:
    """Where the run is: epochs completed, optimiser steps done, optimiser steps into this epoch."""

    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    best_val_top1: float = -1.0  # methods that classify: best validation top-1 so far, and its epoch
    best_epoch: int = 0
    first_effective_rank: float | None = None  # the collapse warning compares against epoch 1


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
        dataset: per-sample augmented views of the training images (``len`` = samples per epoch).
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
        dataset: Dataset[dict[str, Tensor]],
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
        self.accumulation = config.optim.accumulation_steps
        self.sampler = self._make_sampler(len(dataset))
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.model = self._distributed(method)
        self.loader = make_train_loader(
            dataset,
            self.sampler,
            num_workers,
            pin_memory=device.type == "cuda",
            worker_init_fn=_init_worker,
            seed=config.run.seed,
        )
        self.schedules = Schedules.from_config(config, self.steps_per_epoch)
        self.total_steps = config.schedule.epochs * self.steps_per_epoch
        self.optimizer = build_optimizer(method, config)
        self.autocast = autocast_factory(device, config.run.precision)
        self.state = TrainState()
        self.val_images, self.val_labels = val_images, val_labels
        self.probe = self._make_probe(num_classes)
        self._stop_signal: int | None = None
        if config.run.compile:
            for module in method.trainable_modules().values():
                module.compile()

    def _make_sampler(self, num_images: int) -> EpochBatchSampler:
        run = self.config.run
        try:
            sampler = EpochBatchSampler(
                num_images,
                run.batch_size,
                run.seed,
                run.drop_last,
                self.dist.rank,
                self.dist.world_size,
                self.accumulation,
            )
        except ValueError as error:
            raise ConfigError(f"run.batch_size is the global batch: {error}") from None
        if sampler.steps_per_epoch < 1:
            raise DataError(
                f"{num_images} training images are fewer than one batch of {run.batch_size}; "
                "lower --batch-size or add images"
            )
        return sampler

    def _distributed(self, method: Method) -> torch.nn.Module:
        """``method`` itself on one process, else wrapped in ``DistributedDataParallel``."""
        if not self.dist.enabled:
            return method
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(method, device_ids=device_ids, static_graph=True)

    def _make_probe(self, num_classes: int) -> OnlineProbe | None:
        """The online probe (monitoring only: rank 0 trains it on its own slices), when asked for
        and the data has labels and a validation split."""
        run = self.config.run
        has_val = self.val_images is not None and self.val_labels is not None
        if not (run.online_probe and num_classes > 0 and has_val and self.dist.is_main):
            return None
        embed_dim = int(self.method.monitor_encoder().embed_dim)  # type: ignore[arg-type]
        return OnlineProbe(embed_dim, num_classes, run.probe_lr, run.probe_weight_decay, self.device)

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

    def restore(self, payload: dict[str, Any], source: str = "checkpoint") -> None:
        """Continue exactly from a checkpoint written by :meth:`save`; contents that do not fit
        this run (optimiser groups, state fields, RNG) are a one-line :class:`CheckpointError`."""
        load_state_dict_strict(self.method, payload["method"], f"{source}: model weights")
        load_optimizer_state(self.optimizer, payload["optimizer"], f"{source}: optimizer")
        if self.probe is not None and payload.get("probe") is not None:
            self.probe.load_state_dict(payload["probe"], f"{source}: online probe")
        try:
            state = TrainState(**payload["state"])
            set_rng_state(payload["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as error:
            problem = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"{source}: its training state does not fit this run: {problem}") from None
        self.state = state
        JsonlLog.truncate(self.run_dir.metrics_path, "step", self.state.step)
        JsonlLog.truncate(self.run_dir.epochs_path, "epoch", self.state.epoch)

    # ------------------------------------------------------------------ one step
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
            self._optimizer_step(momentum)
        if self.probe is not None and output.probe_tokens is not None and batch.labels is not None:
            self.probe.train_step(output.probe_tokens, batch.labels)
        extras = {key: float(value) for key, value in output.metrics.items() if key != "loss"}
        return loss_value, output.probe_tokens, extras

    def _optimizer_step(self, momentum: float) -> None:
        """Clip, step, clear the gradients, update the momentum networks."""
        if self.config.optim.clip_grad is not None:
            parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, self.config.optim.clip_grad)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.method.update_ema(momentum)

    # ------------------------------------------------------------------ validation
    def _validate(self) -> float | None:
        """The online probe's validation top-1 on the monitored encoder's LayerNorm-ed tokens."""
        if self.probe is None or self.val_images is None or self.val_labels is None:
            return None
        encoder = self.method.monitor_encoder()

        def features(images: Tensor) -> Tensor:
            return token_layer_norm(encoder(normalize_batch(images)))

        was_training = encoder.training
        encoder.eval()  # no dropout, and BatchNorm statistics never see validation images
        try:
            return self.probe.evaluate(
                features, self.val_images, self.val_labels, self.config.run.batch_size, self.autocast
            )
        finally:
            encoder.train(was_training)

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

    # ------------------------------------------------------------------ epochs
    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: object) -> None:
            del frame
            self._stop_signal = signum

        with contextlib.suppress(ValueError):  # not in the main thread: no handlers
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, handler)
        return previous

    def _stop_requested(self) -> bool:
        return any_rank(self._stop_signal is not None, self.dist, self.device)

    def fit(self, stop_after_epoch: int | None = None, max_seconds: float | None = None) -> str:
        """Train until the configured epochs end (``"finished"``), ``stop_after_epoch`` epochs are
        complete or ``max_seconds`` passed (``"stopped"``), or a signal arrives (``"interrupted"``).
        A checkpoint is written in every case; :class:`TrainingDivergedError` leaves the last good one."""
        epochs = self.config.schedule.epochs
        logger: MetricsLogger | NullLogger = NullLogger()
        if self.dist.is_main:
            logger = MetricsLogger(
                self.run_dir.metrics_path,
                self.run_dir.epochs_path,
                self.run_dir.tensorboard if self.config.run.tensorboard else None,
            )
        previous_handlers = self._install_signal_handlers()
        started = time.perf_counter()
        progress = self._progress_bar()
        status = "finished"
        try:
            while self.state.epoch < epochs:
                status = self._run_epoch(logger, progress)
                if status == "interrupted":
                    break
                out_of_epochs = stop_after_epoch is not None and self.state.epoch >= stop_after_epoch
                out_of_time = max_seconds is not None and time.perf_counter() - started > max_seconds
                if out_of_epochs or out_of_time:
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

    def _progress_bar(self) -> tqdm:
        batches_per_epoch = self.steps_per_epoch * self.accumulation
        return tqdm(
            total=self.config.schedule.epochs * batches_per_epoch,
            initial=self.state.epoch * batches_per_epoch + self.state.step_in_epoch * self.accumulation,
            disable=not self.show_progress if self.show_progress is not None else None,
            unit="batch",
            dynamic_ncols=True,
        )

    def _run_epoch(self, logger: MetricsLogger | NullLogger, progress: tqdm) -> str:
        """One epoch (or its rest, after a resume): ``"interrupted"`` by a signal, else ``"running"``."""
        self.method.begin_epoch(self.state.epoch)
        self.method.train()
        epoch_start = time.perf_counter()
        stats = EpochStats()
        if self._train_batches(stats, logger, progress) == "interrupted":
            return "interrupted"
        self.state.epoch += 1
        self.state.step_in_epoch = 0
        seconds = time.perf_counter() - epoch_start
        summary: dict[str, Any] = {"epoch": self.state.epoch, "step": self.state.step, **stats.summary()}
        summary.update(seconds=seconds, images_per_second=stats.images / max(seconds, 1e-9))
        self._add_validation(summary)
        logger.log_epoch(summary)
        epochs = self.config.schedule.epochs
        self.save(numbered=self.state.epoch % self.config.run.checkpoint_every == 0 or self.state.epoch == epochs)
        shown = ", ".join(f"{key} {value:.4g}" for key, value in summary.items() if key not in ("epoch", "step"))
        self.log(f"epoch {self.state.epoch}/{self.config.schedule.epochs}: {shown}")
        return "interrupted" if self._stop_requested() else "running"

    def _batches(self) -> Iterator[Batch]:
        self.sampler.set_epoch(self.state.epoch, self.state.step_in_epoch)
        yield from self.loader

    def _train_batches(self, stats: EpochStats, logger: MetricsLogger | NullLogger, progress: tqdm) -> str:
        """The epoch's micro-batches, each logged; ``"interrupted"`` (after a checkpoint) on a signal."""
        tick = time.perf_counter()
        for micro, batch in enumerate(self._batches(), start=1):
            boundary = micro % self.accumulation == 0
            lr, weight_decay, momentum = self.schedules.apply(self.optimizer, self.state.step)
            loss, tokens, extras = self.train_step(batch, boundary, momentum)
            batch_images = self.method.images_in(batch)
            stats.add_step(loss, batch_images, extras)
            if tokens is not None:
                stats.add_tokens(tokens)
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
                if self._stop_requested():
                    self.save()
                    name = signal.Signals(self._stop_signal or signal.SIGTERM).name
                    self.log(f"{name}: checkpoint saved at step {self.state.step}; continue with --resume")
                    return "interrupted"
        return "running"

    def _add_validation(self, summary: dict[str, Any]) -> None:
        """Collapse warning, online-probe and classifier validation into the epoch ``summary``; a
        new best validation top-1 of a classifier is saved as ``best.pt``."""
        if "effective_rank" in summary:
            self._warn_on_collapse(summary["effective_rank"])
        probe_accuracy = self._validate()
        if probe_accuracy is not None:
            summary["online_probe_val_top1"] = probe_accuracy
        val_top1 = self._validate_classifier() if self.dist.is_main else None
        if val_top1 is None:
            return
        summary["val_top1"] = val_top1
        if val_top1 > self.state.best_val_top1:
            self.state.best_val_top1, self.state.best_epoch = val_top1, self.state.epoch
            save_checkpoint(self.run_dir.best_checkpoint, self.checkpoint_payload())
