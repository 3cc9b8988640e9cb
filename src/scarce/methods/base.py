"""What every training method declares, so one generic loop runs them all (after solo-learn)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from scarce.data.views import ViewTransform, single_view
from scarce.engine.ema import ema_update_
from scarce.registry import Registry

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from scarce.config import ScarceConfig
    from scarce.masking import MaskGenerator
    from scarce.pretrain import PretrainData


@dataclass
class Batch:
    """One training batch as the loader yields it (uint8 views; normalised by the method).

    Attributes:
        views: ``V`` tensors uint8 ``[B, 3, H, W]``.
        keep_mask: bool ``[B, N]`` (True = visible) for masked-image methods, else None.
        predict_mask: bool ``[B, N]`` (True = predicted) for masked-image methods; None means
            every token that is not kept.
        extras: other per-sample tensors a method's dataset yields (e.g. the unlabelled images'
            indices of a semi-supervised batch), stacked along the batch.
        labels: int64 ``[B]`` (-1 = unlabelled) or None.
        indices: int64 ``[B]`` dataset indices.
    """

    views: list[Tensor]
    keep_mask: Tensor | None = None
    labels: Tensor | None = None
    predict_mask: Tensor | None = None
    indices: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def pin_memory(self) -> Batch:
        """Called by ``DataLoader(pin_memory=True)`` for fast host-to-GPU copies."""
        return Batch(
            views=[view.pin_memory() for view in self.views],
            keep_mask=None if self.keep_mask is None else self.keep_mask.pin_memory(),
            labels=None if self.labels is None else self.labels.pin_memory(),
            indices=None if self.indices is None else self.indices.pin_memory(),
            predict_mask=None if self.predict_mask is None else self.predict_mask.pin_memory(),
            extras={key: value.pin_memory() for key, value in self.extras.items()},
        )

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        def move(tensor: Tensor | None) -> Tensor | None:
            return None if tensor is None else tensor.to(device, non_blocking=non_blocking)

        return Batch(
            views=[view.to(device, non_blocking=non_blocking) for view in self.views],
            keep_mask=move(self.keep_mask),
            labels=move(self.labels),
            indices=move(self.indices),
            predict_mask=move(self.predict_mask),
            extras={key: value.to(device, non_blocking=non_blocking) for key, value in self.extras.items()},
        )


@dataclass
class StepOutput:
    """What a training step returns: the loss to minimise, scalars to log, and optionally
    detached tokens ``[B, N, D]`` for the online probe and the collapse diagnostics."""

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
    probe_tokens: Tensor | None = None


@dataclass
class BuildContext:
    """What a method may need from the data when it is built from a config.

    Attributes:
        num_classes: classes of the labelled training images (0: unlabelled).
        train_size: images the method trains on (MoCo caps its queue at it, as in S3L).
        log: where to say what was adapted.
    """

    num_classes: int = 0
    train_size: int | None = None
    log: Callable[[str], None] = print


class Method(nn.Module):
    """A self-supervised (or supervised) method: modules, EMA pairs and one step.

    A method is one module: a subclass registered with :func:`register_method`, which implements
    :meth:`from_config`, :meth:`training_step`, :meth:`trainable_modules`, :meth:`export_encoders`
    and (if it has a momentum network) :meth:`ema_pairs`. Class-level hooks say what it needs from
    the harness: :meth:`train_transform` (its views), :meth:`mask_generator` (token masks),
    ``needs_labels`` and ``pretraining``, and :meth:`check_config` validates the run config.
    """

    name: ClassVar[str] = "method"
    needs_labels: ClassVar[bool] = False
    """True: trains on the labelled training images only (else on every pretraining image)."""
    pretraining: ClassVar[bool] = True
    """True: a self-supervised method (multi-stage schedules and the online probe apply)."""
    architecture_from_init: ClassVar[bool] = False
    """True: the network's architecture comes from the pretrained run it starts from (fine-tuning)."""

    # ------------------------------------------------------------------ building from a config
    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> Method:
        """A freshly initialised method as ``config`` says (torch's global RNG is seeded)."""
        raise NotImplementedError(f"{cls.__name__}.from_config")

    @classmethod
    def check_config(cls, config: ScarceConfig) -> None:
        """Raise ValueError (one line) when ``config`` cannot run this method."""
        del config

    @classmethod
    def changes_trainable_parameters(cls, config: ScarceConfig) -> bool:
        """True when the method freezes or unfreezes parameters during the run (a warm-up of some
        layers): ``DistributedDataParallel``'s static graph cannot follow that, so it runs on one process."""
        del config
        return False

    @classmethod
    def train_transform(cls, config: ScarceConfig, crop_size: int) -> ViewTransform:
        """The per-image training views at ``crop_size`` (default: one augmented view)."""
        return single_view(config, crop_size)

    def train_dataset(self, config: ScarceConfig, data: PretrainData) -> Dataset[dict[str, Tensor]] | None:
        """The training dataset when the method needs its own (e.g. labelled and unlabelled images
        in one item); None: the harness's per-image :class:`~scarce.data.loader.AugmentedViews`."""
        del config, data
        return None

    def images_in(self, batch: Batch) -> int:
        """Distinct images one batch trains on (the epoch's images/s): one per item of the first
        view here; a method whose views are different images (labelled and unlabelled) counts them all."""
        return int(batch.views[0].shape[0])

    def mask_generator(self, config: ScarceConfig) -> MaskGenerator | None:
        """Token masks the loader draws per batch (masked-image methods), else None."""
        del config
        return None

    # ------------------------------------------------------------------ what the loop runs

    def trainable_modules(self) -> dict[str, nn.Module]:
        """Modules optimised by the optimiser, by name."""
        raise NotImplementedError

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(online, target)`` pairs updated by EMA after each optimiser step."""
        return []

    def training_step(self, batch: Batch) -> StepOutput:
        raise NotImplementedError

    def forward(self, batch: Batch) -> StepOutput:
        """The training step (so that ``DistributedDataParallel(method)(batch)`` syncs gradients)."""
        return self.training_step(batch)

    def export_encoders(self) -> dict[str, nn.Module]:
        """Encoders worth saving at the end of a run, by file stem."""
        raise NotImplementedError

    def monitor_encoder(self) -> nn.Module:
        """The encoder whose validation tokens the online probe scores: the target (EMA) encoder if
        the method has one, else the encoder (its ``probe_tokens`` must come from the same one)."""
        encoders = self.export_encoders()
        return encoders.get("target_encoder", encoders["encoder"])

    def begin_epoch(self, epoch: int) -> None:
        """Called by the loop before each epoch (0-based), e.g. to freeze parts during a warm-up."""
        del epoch

    def parameter_groups(self) -> list[dict[str, object]]:
        """AdamW groups: weight decay on every weight with ``ndim > 1`` that is not a bias; none on
        biases and 1-D parameters (spec sec. 4.7). ``wd_scale`` tells the loop which group the
        weight-decay schedule drives."""
        decay, no_decay = [], []
        for module in self.trainable_modules().values():
            for name, param in module.named_parameters():
                if not param.requires_grad:
                    continue
                (decay if param.ndim > 1 and not name.endswith(".bias") else no_decay).append(param)
        return [{"params": decay, "wd_scale": 1.0}, {"params": no_decay, "wd_scale": 0.0, "weight_decay": 0.0}]

    def classify(self, images: Tensor) -> Tensor | None:
        """Class logits ``[B, C]`` for uint8 images, for methods that classify (else None). The loop
        then scores the validation split every epoch and keeps the best epoch's weights."""
        del images
        return None

    def update_ema(self, momentum: float) -> None:
        for online, target in self.ema_pairs():
            ema_update_(target, online, momentum)


MethodT = TypeVar("MethodT", bound=type[Method])

METHODS: Registry[type[Method]] = Registry("method")
"""Training methods by name (``method``); built-ins are registered when :mod:`scarce.methods` is imported."""


def register_method(name: str) -> Callable[[MethodT], MethodT]:
    """Class decorator: register a :class:`Method` subclass as ``name`` (and set its ``name``)."""

    def add(cls: MethodT) -> MethodT:
        cls.name = name
        METHODS.register(name)(cls)
        return cls

    return add
