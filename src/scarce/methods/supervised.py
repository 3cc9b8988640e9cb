"""Supervised training of the same backbone with a probe head, end to end (the papers' baselines).

``backbone -> head``: for a transformer encoder the tokens are LayerNorm-ed (non-affine) first, and
the head is an attentive probe (``simple`` is CCT's sequence pooling) or ``linear`` (mean-pooled
tokens); for a ResNet, ``linear`` is global average pooling + fc, as in S3L. Cross-entropy with label
smoothing, optionally mixup (S3L's fine-tuning recipe). From random init, or fine-tuning a
pretrained backbone. The head downstream of the encoder is the one the frozen probes use, so the
comparison frozen-SSL vs supervised changes one thing: how the encoder was trained.

S3L's last-stage warm-up (Cao & Wu 2021): for a backbone pretrained without its last stage, a fresh
``layer4`` is added and, for the first ``warmup_epochs``, only it and the head train; the earlier
stages are frozen *including their BatchNorm statistics*. Then everything trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms import v2

from scarce.data.transforms import normalize_batch
from scarce.engine.checkpoint import load_state_dict_strict
from scarce.errors import ConfigError
from scarce.methods.aux_tasks import DenseRelativeLocalization, RotationPrediction, build_aux_task
from scarce.methods.base import Batch, BuildContext, Method, StepOutput, register_method
from scarce.models.backbone import BACKBONES, build_backbone
from scarce.models.classifier import head_logits, head_tokens
from scarce.models.probes import HeadKind, build_probe
from scarce.models.resnet import ResNetBackbone, ResNetConfig

REGULARISATION_FIELDS = ("dropout_rate", "attention_dropout", "stochastic_depth_rate")
"""Encoder fields that change training, not weights: a fine-tuning run may set its own."""

if TYPE_CHECKING:
    from scarce.config import ScarceConfig, SupervisedConfig


def batch_mixer(num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> v2.Transform | None:
    """torchvision v2 MixUp (Zhang et al. 2018) and / or CutMix (Yun et al. 2019), one of them per
    batch when both are on (DeiT, MAE fine-tuning); None when both alphas are 0. The mixer takes
    ``(images [B, 3, S, S] float, labels [B])`` and returns mixed images and soft targets ``[B, C]``,
    drawing from torch's global RNG (a resumed run draws the same λ)."""
    mixers: list[v2.Transform] = []
    if mixup_alpha > 0:
        mixers.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
    if cutmix_alpha > 0:
        mixers.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def initial_backbone(config: ScarceConfig, init: str | None, which: Literal["context", "target"]) -> nn.Module:
    """A random-init backbone of the run's config, with the ``which`` encoder of run ``init`` loaded
    into it when given. Only the weights come from ``init``: its regularisation (dropout, drop
    path) may differ from the run's. A pretrained S3L backbone without its last stage gets a fresh
    ``layer4`` when the run's backbone has one."""
    from scarce.config import config_differences
    from scarce.eval.encoders import load_encoder

    backbone = build_backbone(config.network_config())
    if init is None:
        return backbone
    pretrained = load_encoder(init, which).encoder
    wanted = config.network_config()
    ignored = set(REGULARISATION_FIELDS)
    if isinstance(pretrained, ResNetBackbone) and isinstance(wanted, ResNetConfig):
        if pretrained.config.drop_last_stage and not wanted.drop_last_stage:
            pretrained.add_last_stage()  # S3L: conv5 comes back at random init (seeded by run.seed)
            ignored.add("drop_last_stage")
        ignored.add("img_size")  # fine-tuned at this run's resolution (a ResNet takes any)
    differences = config_differences(pretrained.config.model_dump(exclude=ignored), wanted.model_dump(exclude=ignored))
    if differences:
        raise ConfigError(f"{init}: its backbone differs from this run's: " + "; ".join(differences))
    load_state_dict_strict(backbone, pretrained.state_dict(), f"the {which} encoder of {init}")
    return backbone


@register_method("supervised")
class Supervised(Method):
    """``Supervised(backbone, num_classes, head="simple", label_smoothing=0.1, mixup_alpha=0.0,
    warmup_epochs=0, cutmix_alpha=0.0)``; ``backbone(images) -> tokens [B, N, D]`` with an ``embed_dim``."""

    needs_labels = True
    pretraining = False
    supports_aux: bool = True
    """Whether ``training_step`` adds the ``aux`` section's auxiliary self-supervised loss."""

    @classmethod
    def options_of(cls, config: ScarceConfig) -> SupervisedConfig:
        """The config section of this method's options."""
        return config.supervised

    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> Supervised:
        """``encoder -> head`` of the method's section, from random init or its ``init`` run."""
        options = cls.options_of(config)
        return cls.build(config, context.num_classes, initial_backbone(config, options.init, options.init_encoder))

    @classmethod
    def origin(cls, config: ScarceConfig) -> tuple[str | None, str]:
        """``(the run it starts from or None, how)`` for the results' protocol."""
        init = cls.options_of(config).init
        return init, f"fine-tuned from {init}" if init else "none (random init)"

    @classmethod
    def build(cls, config: ScarceConfig, num_classes: int, backbone: nn.Module) -> Supervised:
        """The method around ``backbone`` (``from_config`` passes the initial one; a test pass a
        random one that a checkpoint's weights then overwrite)."""
        options = config.supervised
        method = cls(
            backbone,
            num_classes,
            options.head,
            options.label_smoothing,
            mixup_alpha=options.mixup_alpha,
            warmup_epochs=options.warmup_last_stage_epochs,
        )
        return method.with_aux_task(config)

    @classmethod
    def check_config(cls, config: ScarceConfig) -> None:
        if config.aux.kind != "none" and not cls.supports_aux:
            raise ValueError(f"method {cls.name} has no auxiliary task: aux.kind must be none (supervised, finetune)")
        options = cls.options_of(config)
        warmup = options.warmup_last_stage_epochs
        if not warmup:
            return
        if BACKBONES.get(config.backbone.kind).family != "resnet" or config.backbone.drop_last_stage:
            raise ValueError(
                f"{cls.name}.warmup_last_stage_epochs needs a ResNet backbone with its last stage "
                "(backbone.drop_last_stage false: layer4 is added to the pretrained backbone)"
            )
        if options.init is None:
            raise ValueError(f"{cls.name}.warmup_last_stage_epochs needs {cls.name}.init (a pretrained backbone)")
        if warmup >= config.schedule.epochs:
            raise ValueError(
                f"{cls.name}.warmup_last_stage_epochs {warmup} must be fewer than schedule.epochs "
                f"{config.schedule.epochs} (the warm-up is part of the schedule)"
            )

    @classmethod
    def changes_trainable_parameters(cls, config: ScarceConfig) -> bool:
        return cls.options_of(config).warmup_last_stage_epochs > 0

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        head: HeadKind = "simple",
        label_smoothing: float = 0.1,
        mixup_alpha: float = 0.0,
        warmup_epochs: int = 0,
        cutmix_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"supervised training needs at least 2 classes, got {num_classes}")
        if warmup_epochs and not isinstance(encoder, ResNetBackbone):
            raise ValueError("the last-stage warm-up needs a ResNet backbone")
        self.encoder = encoder
        self.num_classes = num_classes
        self.head_kind = head
        self.head = build_probe(head, int(encoder.embed_dim), num_classes)
        self.label_smoothing = label_smoothing
        self.mixer = batch_mixer(num_classes, mixup_alpha, cutmix_alpha)
        self.warmup_epochs = warmup_epochs
        self.aux: nn.Module | None = None
        self.aux_weight = 0.0

    def with_aux_task(self, config: ScarceConfig) -> Supervised:
        """Attach the ``aux`` section's auxiliary task (its own parameters train with the head)."""
        options = config.aux
        self.aux = build_aux_task(options.kind, int(self.encoder.embed_dim), options.pairs, options.hidden)
        self.aux_weight = options.weight
        return self

    def trainable_modules(self) -> dict[str, nn.Module]:
        modules = {"encoder": self.encoder, "head": self.head}
        return modules if self.aux is None else {**modules, "aux": self.aux}

    def evaluated_modules(self) -> tuple[nn.Module, nn.Module]:
        """``(encoder, head)`` that validation, testing and ``classifier.safetensors`` use."""
        return self.encoder, self.head

    def export_encoders(self) -> dict[str, nn.Module]:
        return {"encoder": self.evaluated_modules()[0]}

    def begin_epoch(self, epoch: int) -> None:
        if not isinstance(self.encoder, ResNetBackbone) or not self.warmup_epochs:
            return
        if epoch < self.warmup_epochs and not self.encoder.frozen_stages:
            self.encoder.freeze_all_but_last_stage()
        elif epoch >= self.warmup_epochs and self.encoder.frozen_stages:
            self.encoder.unfreeze()

    def logits(self, images: Tensor) -> Tensor:
        """``images`` uint8 ``[B, 3, S, S]`` -> logits ``[B, C]`` of the evaluated modules."""
        encoder, head = self.evaluated_modules()
        return head_logits(encoder, head, normalize_batch(images))

    def classify(self, images: Tensor) -> Tensor:
        return self.logits(images)

    def training_step(self, batch: Batch) -> StepOutput:
        if batch.labels is None or bool((batch.labels < 0).any()):
            raise ValueError("supervised training needs a label for every image")
        clean = images = normalize_batch(batch.views[0])
        targets: Tensor = batch.labels
        if self.mixer is not None:
            images, targets = self.mixer(images, batch.labels)
        tokens = head_tokens(self.encoder, images)
        logits = self.head(tokens)
        loss = F.cross_entropy(logits.float(), targets, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(-1) == batch.labels).float().mean()
        metrics = {"train_top1": accuracy.detach()}
        aux_loss: Tensor | None = None
        if isinstance(self.aux, DenseRelativeLocalization):
            aux_loss = self.aux(tokens)  # square crops: the grid of the tokens at this crop size
        elif isinstance(self.aux, RotationPrediction):
            aux_loss = self.aux(lambda rotated: head_tokens(self.encoder, rotated), clean)
        if aux_loss is not None:
            loss = loss + self.aux_weight * aux_loss
            metrics["aux_loss"] = aux_loss.detach()
        return StepOutput(loss=loss, metrics={"loss": loss.detach(), **metrics})
