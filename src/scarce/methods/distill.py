"""Knowledge distillation into a student (``scarce distill``): Hinton et al. 2015; SimCLRv2
(Chen et al. 2020) distils a fine-tuned teacher on all unlabelled images.

The teacher is a classifier run (its ``classifier.safetensors``), frozen and in eval mode; it
labels every training image, labelled and unlabelled, on the same augmented view the student
sees, online and without gradients. The student (the same architecture: self-distillation, or a
smaller one) learns its temperature-softened predictions:

    loss = T^2 · KL(softmax(t / T) || softmax(s / T))  +  alpha · CE(s, y) on the labelled images

averaged over the batch (``alpha`` = ``distill.labelled_weight``, 0 by default: pure distillation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from scarce.data.transforms import normalize_batch
from scarce.errors import ConfigError, DataError
from scarce.methods.base import Batch, BuildContext, StepOutput, register_method
from scarce.methods.supervised import Supervised
from scarce.models.backbone import build_backbone
from scarce.models.classifier import Classifier, head_logits

if TYPE_CHECKING:
    from scarce.config import DistillConfig, ScarceConfig
    from scarce.pretrain import PretrainData


def kd_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 · mean_i KL(softmax(t_i / T) || softmax(s_i / T))`` for logits ``[B, C]`` (Hinton et al.:
    the ``T^2`` keeps the gradients' scale independent of ``T``)."""
    teacher = F.softmax(teacher_logits.float() / temperature, dim=-1)
    student_log = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(student_log, teacher, reduction="batchmean") * temperature**2


def load_teacher(source: str, num_classes: int) -> tuple[Classifier, list[str]]:
    """The frozen teacher classifier of ``source`` and its classes; a class count that differs from
    the data's is a one-line error naming both."""
    from scarce.models.classifier import load_classifier

    loaded = load_classifier(source)
    if len(loaded.classes) != num_classes:
        raise DataError(f"the teacher {source} has {len(loaded.classes)} classes, the data has {num_classes}")
    return loaded.model.eval().requires_grad_(False), loaded.classes


@register_method("distill")
class Distill(Supervised):
    """``Distill(student_encoder, num_classes, teacher, head, temperature=2.0, labelled_weight=0.0)``;
    batches hold one augmented view of labelled (label >= 0) and unlabelled (label -1) images."""

    supports_aux = False

    @classmethod
    def options_of(cls, config: ScarceConfig) -> DistillConfig:
        return config.distill

    @classmethod
    def check_config(cls, config: ScarceConfig) -> None:
        super().check_config(config)
        options = config.distill
        if options.init is not None or options.mixup_alpha or options.warmup_last_stage_epochs:
            raise ValueError(
                "distill: the student starts from random init without mixup or a warm-up "
                "(distill.init, mixup_alpha and warmup_last_stage_epochs must stay unset)"
            )

    @classmethod
    def origin(cls, config: ScarceConfig) -> tuple[str | None, str]:
        teacher = config.distill.teacher
        return teacher, f"distilled from {teacher} (the student from random init)"

    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> Distill:
        return cls.build(config, context.num_classes, build_backbone(config.network_config()))

    @classmethod
    def build(cls, config: ScarceConfig, num_classes: int, backbone: nn.Module) -> Distill:
        options = config.distill
        if options.teacher is None:
            raise ConfigError("distill.teacher must name a classifier run (scarce finetune / semisup / supervised)")
        teacher, classes = load_teacher(options.teacher, num_classes)
        method = cls(
            backbone,
            num_classes,
            teacher,
            options.head,
            label_smoothing=options.label_smoothing,
            temperature=options.temperature,
            labelled_weight=options.labelled_weight,
        )
        method.classes = classes
        return method

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        teacher: Classifier,
        head: str = "simple",
        label_smoothing: float = 0.0,
        *,
        temperature: float = 2.0,
        labelled_weight: float = 0.0,
    ) -> None:
        super().__init__(encoder, num_classes, head, label_smoothing)  # type: ignore[arg-type]
        self.teacher = teacher.requires_grad_(False)
        self.temperature = temperature
        self.labelled_weight = labelled_weight
        self.classes: list[str] = []

    def train(self, mode: bool = True) -> Distill:
        super().train(mode)
        self.teacher.eval()  # always: no dropout, fixed BatchNorm statistics
        return self

    def train_dataset(self, config: ScarceConfig, data: PretrainData) -> Dataset[dict[str, Tensor]]:
        """Every training image once per epoch: the labelled ones and, under a budget, the rest."""
        from scarce.builders import build_transform
        from scarce.data.image_set import concat
        from scarce.data.loader import AugmentedViews

        if self.classes and list(data.train.classes) != self.classes:
            ours, theirs = ", ".join(self.classes[:4]), ", ".join(list(data.train.classes)[:4])
            raise DataError(f"the teacher's classes ({ours}, ...) differ from the data's ({theirs}, ...)")
        unlabelled = data.splits.unlabelled
        images = data.train if unlabelled is None or len(unlabelled) == 0 else concat([data.train, unlabelled])
        return AugmentedViews(images, build_transform(config), None, config.run.seed)

    def training_step(self, batch: Batch) -> StepOutput:
        if batch.labels is None:
            raise ValueError("distillation batches carry labels (-1 for unlabelled images)")
        images = normalize_batch(batch.views[0])
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        student_logits = head_logits(self.encoder, self.head, images)
        distillation = kd_loss(student_logits, teacher_logits, self.temperature)
        labelled = batch.labels >= 0
        loss = distillation
        metrics = {
            "kd_loss": distillation.detach(),
            "teacher_agreement": (student_logits.argmax(-1) == teacher_logits.argmax(-1)).float().mean().detach(),
        }
        if self.labelled_weight > 0 and bool(labelled.any()):
            supervised = F.cross_entropy(
                student_logits[labelled].float(), batch.labels[labelled], label_smoothing=self.label_smoothing
            )
            loss = loss + self.labelled_weight * supervised
            metrics["labelled_loss"] = supervised.detach()
        metrics["loss"] = loss.detach()
        return StepOutput(loss=loss, metrics=metrics)
