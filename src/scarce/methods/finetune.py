"""Fine-tuning a pretrained encoder end to end (``scarce finetune``), the recipe of BEiT and MAE.

On top of :class:`~scarce.methods.supervised.Supervised` (``encoder -> token LayerNorm -> head``,
cross-entropy with label smoothing):

- **Layer-wise LR decay** (Bao et al. 2022, BEiT; He et al. 2022, MAE): the parameters of layer
  ``l`` train at ``lr · layer_decay^(L - l)``, where layer 0 is the tokenizer (ResNet: the stem),
  layer ``i + 1`` transformer block ``i`` (ResNet: stage ``layeri+1``), and the head is layer
  ``L = encoder.num_layers``. MAE uses 0.65 (ViT-B) / 0.75 (ViT-L).
- **MixUp + CutMix** from torchvision v2 (one of them per batch when both are on, as DeiT).
- **LP-FT** (Kumar et al. 2022): ``head_only_epochs`` train the head alone on the frozen encoder
  (in eval mode: no dropout, BatchNorm statistics fixed), then everything trains.
- **An EMA of the weights** (``weight_ema``) that validation, testing and the exported classifier
  use; its momentum follows ``schedule.ema_start`` -> ``schedule.ema_end``; BatchNorm statistics
  are copied from the online network after each update.
- Drop path is the run's ``model.stochastic_depth_rate`` (only the weights come from the
  pretrained run, see :func:`~scarce.methods.supervised.initial_backbone`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
from torch import nn

from scarce.methods.base import register_method
from scarce.methods.supervised import Supervised

if TYPE_CHECKING:
    from scarce.config import FinetuneConfig, ScarceConfig


def layer_scales(num_layers: int, layer_decay: float) -> list[float]:
    """``[layer_decay^(L - l) for l in 0..L]``: the LR multiplier of layer ``l`` (``L`` = the head)."""
    return [layer_decay ** (num_layers - layer) for layer in range(num_layers + 1)]


@register_method("finetune")
class FineTune(Supervised):
    """``FineTune(encoder, num_classes, head, label_smoothing, mixup_alpha, warmup_epochs,
    cutmix_alpha, layer_decay=1.0, head_only_epochs=0, weight_ema=False)``; ``encoder`` has
    ``num_layers`` and ``layer_id(parameter_name)`` (the SCOTT / ViT encoder, the ResNets)."""

    architecture_from_init = True

    @classmethod
    def options_of(cls, config: ScarceConfig) -> FinetuneConfig:
        return config.finetune

    @classmethod
    def build(cls, config: ScarceConfig, num_classes: int, backbone: nn.Module) -> FineTune:
        options = config.finetune
        method = cls(
            backbone,
            num_classes,
            options.head,
            options.label_smoothing,
            mixup_alpha=options.mixup_alpha,
            warmup_epochs=options.warmup_last_stage_epochs,
            cutmix_alpha=options.cutmix_alpha,
            layer_decay=options.layer_decay,
            head_only_epochs=options.head_only_epochs,
            weight_ema=options.weight_ema,
        )
        return method.with_aux_task(config)

    @classmethod
    def check_config(cls, config: ScarceConfig) -> None:
        super().check_config(config)
        options = cls.options_of(config)
        if options.head_only_epochs >= config.schedule.epochs:
            raise ValueError(
                f"{cls.name}.head_only_epochs {options.head_only_epochs} must be fewer than schedule.epochs "
                f"{config.schedule.epochs} (then every layer trains)"
            )
        if options.head_only_epochs and options.warmup_last_stage_epochs:
            raise ValueError(f"{cls.name}: choose head_only_epochs (LP-FT) or warmup_last_stage_epochs (S3L), not both")

    @classmethod
    def changes_trainable_parameters(cls, config: ScarceConfig) -> bool:
        return super().changes_trainable_parameters(config) or config.finetune.head_only_epochs > 0

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
        head_only_epochs: int = 0,
        weight_ema: bool = False,
    ) -> None:
        super().__init__(encoder, num_classes, head, label_smoothing, mixup_alpha, warmup_epochs, cutmix_alpha)
        if not hasattr(encoder, "layer_id") or not hasattr(encoder, "num_layers"):
            raise ValueError(f"layer-wise LR decay needs an encoder with layer ids, not {type(encoder).__name__}")
        self.layer_decay = layer_decay
        self.head_only_epochs = head_only_epochs
        self.head_only = False
        self.ema_encoder: nn.Module | None = None
        self.ema_head: nn.Module | None = None
        if weight_ema:
            self.ema_encoder = copy.deepcopy(encoder).requires_grad_(False)
            self.ema_head = copy.deepcopy(self.head).requires_grad_(False)

    # ------------------------------------------------------------------ what trains, at which LR
    def parameter_groups(self) -> list[dict[str, object]]:
        """AdamW / SGD groups by (layer, decay or not): ``lr_scale`` is the layer's
        :func:`layer_scales` entry (the loop multiplies the scheduled LR by it), ``wd_scale`` 1 for
        weights and 0 for biases and 1-D parameters (as :meth:`Method.parameter_groups`)."""
        num_layers = int(self.encoder.num_layers)  # type: ignore[arg-type]
        scales = layer_scales(num_layers, self.layer_decay)
        groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
        named = [(self.encoder.layer_id(name), name, p) for name, p in self.encoder.named_parameters()]  # type: ignore[operator]
        named += [(num_layers, name, p) for name, p in self.head.named_parameters()]
        if self.aux is not None:  # the auxiliary task's head trains with the classifier's head
            named += [(num_layers, name, p) for name, p in self.aux.named_parameters()]
        for layer, name, param in named:
            if param.requires_grad:
                decays = param.ndim > 1 and not name.endswith(".bias")
                groups.setdefault((layer, decays), []).append(param)
        return [
            {
                "params": params,
                "lr_scale": scales[layer],
                "wd_scale": 1.0 if decays else 0.0,
                "layer": layer,
                **({} if decays else {"weight_decay": 0.0}),
            }
            for (layer, decays), params in sorted(groups.items())
        ]

    def begin_epoch(self, epoch: int) -> None:
        super().begin_epoch(epoch)
        if self.head_only_epochs:
            self.head_only = epoch < self.head_only_epochs
            self.encoder.requires_grad_(not self.head_only)

    def train(self, mode: bool = True) -> FineTune:
        super().train(mode)
        if self.head_only:
            self.encoder.eval()  # LP-FT's linear-probe phase: the encoder is a fixed feature extractor
        for ema in (self.ema_encoder, self.ema_head):
            if ema is not None:
                ema.eval()
        return self

    # ------------------------------------------------------------------ the EMA of the weights
    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        if self.ema_encoder is None or self.ema_head is None:
            return []
        return [(self.encoder, self.ema_encoder), (self.head, self.ema_head)]

    @torch.no_grad()
    def update_ema(self, momentum: float) -> None:
        super().update_ema(momentum)
        for online, target in self.ema_pairs():
            for online_buffer, target_buffer in zip(online.buffers(), target.buffers(), strict=True):
                target_buffer.copy_(online_buffer)

    def evaluated_modules(self) -> tuple[nn.Module, nn.Module]:
        if self.ema_encoder is None or self.ema_head is None:
            return self.encoder, self.head
        return self.ema_encoder, self.ema_head
