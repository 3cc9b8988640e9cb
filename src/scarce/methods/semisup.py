"""Semi-supervised self-training with confident pseudo-labels (``scarce semisup``).

FixMatch (Sohn et al. 2020) and Semi-ViT (Cai et al. 2022): a classifier, usually fine-tuned on
the labelled images, keeps training on them while a teacher labels the unlabelled images. For each
unlabelled image the teacher predicts on a weak view; if its confidence is at least ``threshold``,
the student is trained to predict that label on a strong view (RandAugment + RandomErasing).

    loss = CE(student(labelled weak), y) + lambda_u * mean_i[ 1(c_i >= tau) CE(student(strong_i), y_hat_i) ]

The mean runs over all ``mu B`` unlabelled images of the batch, confident or not (FixMatch).
The teacher is an EMA of the student (Semi-ViT, ``weight_ema: true``, the default) or the student
itself (FixMatch). Optional probabilistic pseudo-mixup (Semi-ViT): confident strong views are
mixed in pairs with ratio ``c_i / (c_i + c_j)``, and so are their one-hot pseudo-labels.
Diagnostics per step: the share of confident images and, when the data keeps the hidden labels
of its unlabelled images, the pseudo-labels' accuracy. These are never used for selection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from scarce.data.transforms import normalize_batch
from scarce.engine.checkpoint import load_state_dict_strict
from scarce.errors import ConfigError, DataError
from scarce.methods.base import Batch, BuildContext, StepOutput, register_method
from scarce.methods.finetune import FineTune
from scarce.models.backbone import build_backbone
from scarce.models.classifier import head_logits

if TYPE_CHECKING:
    from scarce.config import ScarceConfig, SemisupConfig
    from scarce.pretrain import PretrainData


def confidence_mask(teacher_logits: Tensor, threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    """``[M, C]`` logits -> ``(pseudo_labels [M], confidence [M], keep [M] bool)``: the argmax of
    the softmax, its probability, and whether that probability is at least ``threshold``."""
    probabilities = teacher_logits.float().softmax(dim=-1)
    confidence, pseudo_labels = probabilities.max(dim=-1)
    return pseudo_labels, confidence, confidence >= threshold


def pseudo_label_loss(student_logits: Tensor, pseudo_labels: Tensor, keep: Tensor) -> Tensor:
    """``mean_i keep_i · CE(student_i, pseudo_i)`` over all ``M`` images (0 when none is kept)."""
    per_image = F.cross_entropy(student_logits.float(), pseudo_labels, reduction="none")
    return (per_image * keep.float()).sum() / max(len(keep), 1)


def pseudo_mixup(
    images: Tensor,
    pseudo_labels: Tensor,
    confidence: Tensor,
    keep: Tensor,
    num_classes: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Semi-ViT's probabilistic pseudo-mixup of the kept images: ``(mixed [K, 3, S, S], soft targets [K, C])``.

    Each kept image ``i`` is paired with a kept image ``j`` (a random permutation) and mixed with
    ``lambda_i = c_i / (c_i + c_j)``: the more confident label weighs more.
    """
    kept = keep.nonzero().flatten()
    partner = kept[torch.randperm(len(kept), generator=generator, device="cpu").to(kept.device)]
    ratio = confidence[kept] / (confidence[kept] + confidence[partner])
    mixed = ratio.view(-1, 1, 1, 1) * images[kept] + (1 - ratio.view(-1, 1, 1, 1)) * images[partner]
    one_hot = F.one_hot(pseudo_labels, num_classes).float()
    targets = ratio.view(-1, 1) * one_hot[kept] + (1 - ratio.view(-1, 1)) * one_hot[partner]
    return mixed, targets


@register_method("semisup")
class SemiSupervised(FineTune):
    """``SemiSupervised(encoder, num_classes, head, ..., threshold=0.7, unlabelled_weight=1.0, mu=5,
    pseudo_mixup=False)``; a batch holds per item one labelled weak view, then ``mu`` pairs
    (weak, strong) of unlabelled views (:class:`~scarce.data.semisup.LabelledUnlabelledViews`)."""

    supports_aux = False

    @classmethod
    def options_of(cls, config: ScarceConfig) -> SemisupConfig:
        return config.semisup

    @classmethod
    def check_config(cls, config: ScarceConfig) -> None:
        super().check_config(config)
        options = config.semisup
        if options.head_only_epochs or options.warmup_last_stage_epochs:
            raise ValueError(
                "semisup starts from a trained classifier: head_only_epochs and warmup_last_stage_epochs must be 0"
            )

    @classmethod
    def from_config(cls, config: ScarceConfig, context: BuildContext) -> SemiSupervised:
        """The student (and teacher) start from the classifier run ``semisup.init``: encoder and head."""
        from scarce.models.classifier import load_classifier

        options = config.semisup
        if options.init is None:
            raise ConfigError("semisup.init must name a classifier run (scarce finetune or scarce supervised)")
        loaded = load_classifier(options.init)
        if len(loaded.classes) != context.num_classes:
            raise DataError(
                f"the classifier {options.init} has {len(loaded.classes)} classes, the data has {context.num_classes}"
            )
        method = cls.build(config, context.num_classes, build_backbone(config.network_config()))
        load_state_dict_strict(method.encoder, loaded.model.encoder.state_dict(), f"the encoder of {options.init}")
        load_state_dict_strict(method.head, loaded.model.head.state_dict(), f"the head of {options.init}")
        for online, teacher in method.ema_pairs():
            teacher.load_state_dict(online.state_dict())
        method.classes = list(loaded.classes)
        return method

    @classmethod
    def build(cls, config: ScarceConfig, num_classes: int, backbone: nn.Module) -> SemiSupervised:
        options = config.semisup
        return cls(
            backbone,
            num_classes,
            options.head,
            options.label_smoothing,
            mixup_alpha=options.mixup_alpha,
            cutmix_alpha=options.cutmix_alpha,
            layer_decay=options.layer_decay,
            weight_ema=options.weight_ema,
            threshold=options.threshold,
            unlabelled_weight=options.unlabelled_weight,
            mu=options.mu,
            pseudo_mixup=options.pseudo_mixup,
        )

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        head: str = "simple",
        label_smoothing: float = 0.1,
        mixup_alpha: float = 0.0,
        warmup_epochs: int = 0,
        cutmix_alpha: float = 0.0,
        *,
        layer_decay: float = 1.0,
        weight_ema: bool = True,
        threshold: float = 0.7,
        unlabelled_weight: float = 1.0,
        mu: int = 5,
        pseudo_mixup: bool = False,
    ) -> None:
        super().__init__(
            encoder,
            num_classes,
            head,
            label_smoothing,
            mixup_alpha,
            warmup_epochs,
            cutmix_alpha,
            layer_decay=layer_decay,
            weight_ema=weight_ema,
        )
        self.threshold = threshold
        self.unlabelled_weight = unlabelled_weight
        self.mu = mu
        self.pseudo_mixup = pseudo_mixup
        self.classes: list[str] = []

    def train_dataset(self, config: ScarceConfig, data: PretrainData) -> Dataset[dict[str, Tensor]]:
        from scarce.data.semisup import LabelledUnlabelledViews, WeakStrongTransform
        from scarce.data.views import single_view

        unlabelled = data.splits.unlabelled
        if unlabelled is None or len(unlabelled) == 0:
            raise DataError(
                "semi-supervised training needs unlabelled images: give a label budget "
                "(--labels-per-class N or --label-fraction F) so that the rest of the training split is unlabelled"
            )
        if self.classes and list(data.train.classes) != self.classes:
            ours, theirs = ", ".join(self.classes[:4]), ", ".join(list(data.train.classes)[:4])
            raise DataError(f"the classifier's classes ({ours}, ...) differ from the data's ({theirs}, ...)")
        options = config.semisup
        transform = WeakStrongTransform(
            single_view(config, config.crop_size),
            ops=options.randaugment_ops,
            magnitude=options.randaugment_magnitude,
            erasing_p=options.erasing_p,
        )
        return LabelledUnlabelledViews(
            data.train, unlabelled, transform, self.mu, config.run.seed, hidden_labels=data.splits.hidden_labels
        )

    def images_in(self, batch: Batch) -> int:
        """``(1 + mu) B``: the labelled images and the unlabelled ones (each in a weak and a strong view)."""
        return int(batch.views[0].shape[0]) * (1 + self.mu)

    def teacher_logits(self, normalised: Tensor) -> Tensor:
        """The teacher's logits (the EMA weights, else the student) without gradients."""
        encoder, head = self.evaluated_modules()
        with torch.no_grad():
            return head_logits(encoder, head, normalised)

    def training_step(self, batch: Batch) -> StepOutput:
        if batch.labels is None or len(batch.views) != 1 + 2 * self.mu:
            raise ValueError(f"a semi-supervised batch holds 1 + 2 x {self.mu} views and labels")
        labelled = normalize_batch(batch.views[0])
        weak = normalize_batch(torch.cat(batch.views[1::2]))  # [mu B, 3, S, S], view j of every item, j = 0..mu-1
        strong = normalize_batch(torch.cat(batch.views[2::2]))
        pseudo_labels, confidence, keep = confidence_mask(self.teacher_logits(weak), self.threshold)
        targets: Tensor = batch.labels
        if self.mixer is not None:
            labelled, targets = self.mixer(labelled, batch.labels)
        if self.pseudo_mixup and bool(keep.any()):
            mixed, soft = pseudo_mixup(strong, pseudo_labels, confidence, keep, self.num_classes)
            logits = head_logits(self.encoder, self.head, torch.cat([labelled, mixed]))
            labelled_logits, mixed_logits = logits[: len(labelled)], logits[len(labelled) :]
            per_image = torch.sum(-soft * mixed_logits.float().log_softmax(dim=-1), dim=-1)
            unlabelled_loss = per_image.sum() / len(keep)
        else:
            logits = head_logits(self.encoder, self.head, torch.cat([labelled, strong]))
            labelled_logits, strong_logits = logits[: len(labelled)], logits[len(labelled) :]
            unlabelled_loss = pseudo_label_loss(strong_logits, pseudo_labels, keep)
        labelled_loss = F.cross_entropy(labelled_logits.float(), targets, label_smoothing=self.label_smoothing)
        loss = labelled_loss + self.unlabelled_weight * unlabelled_loss
        metrics = {
            "loss": loss.detach(),
            "labelled_loss": labelled_loss.detach(),
            "unlabelled_loss": unlabelled_loss.detach(),
            "train_top1": (labelled_logits.argmax(-1) == batch.labels).float().mean().detach(),
            "confident_share": keep.float().mean().detach(),
        }
        hidden = batch.extras.get("hidden_label")
        if hidden is not None:
            hidden = hidden.T.reshape(-1).to(pseudo_labels.device)  # item-major [B, mu] -> view-major [mu B]
            known = hidden >= 0
            if bool(known.any()):
                correct = (pseudo_labels == hidden) & known
                metrics["pseudo_label_accuracy"] = (correct.sum() / known.sum()).float().detach()
                confident_known = known & keep
                if bool(confident_known.any()):
                    metrics["confident_pseudo_label_accuracy"] = (
                        ((correct & keep).sum() / confident_known.sum()).float().detach()
                    )
        return StepOutput(loss=loss, metrics=metrics)
