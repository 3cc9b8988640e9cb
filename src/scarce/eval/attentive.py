"""Attentive probes trained side by side on a frozen encoder (spec sec. 5).

Every training batch goes through the encoder once; each probe (simple, multi-head, cross) takes
its own AdamW step on the same tokens. The recipe is the paper's: 100 epochs, batch 64, LR
warm-up ``1e-6 -> 5e-4`` over 20 epochs, flat 72 %, cosine to ``1e-5``, weight decay
``0.04 -> 0.4``, plain cross-entropy, the SSL crop/flip/colour augmentation as training view.
After every epoch each probe is scored on the validation tokens; the best epoch of each probe is
kept (selection on validation only: test tokens never enter this module).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from scarce.data.datasets import ImageSet
from scarce.data.loader import AugmentedViews, EpochBatchSampler, make_train_loader
from scarce.data.transforms import SingleViewTransform
from scarce.engine.schedules import Linear, WarmupFlatCosine
from scarce.eval.features import FrozenEncoder
from scarce.models.probes import ProbeKind, attentive_heads, build_probe


@dataclass(frozen=True)
class ProbeRecipe:
    """Training recipe of the attentive probes (defaults: the paper's)."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 5e-4
    start_lr: float = 1e-6
    final_lr: float = 1e-5
    warmup_epochs: float = 20
    flat_fraction: float = 0.72
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    seed: int = 0


@dataclass
class ProbeSelection:
    """The best validation epoch of one probe and its weights at that epoch."""

    kind: str
    best_epoch: int = 0
    best_val_top1: float = -1.0
    state: dict[str, Tensor] = field(default_factory=dict)
    history: list[float] = field(default_factory=list)


def _parameter_groups(module: nn.Module) -> list[dict[str, object]]:
    decay = [p for name, p in module.named_parameters() if p.ndim > 1 and not name.endswith(".bias")]
    rest = [p for name, p in module.named_parameters() if not (p.ndim > 1 and not name.endswith(".bias"))]
    return [{"params": decay, "wd_scale": 1.0}, {"params": rest, "wd_scale": 0.0, "weight_decay": 0.0}]


@torch.no_grad()
def probe_logits(probe: nn.Module, tokens: Tensor, device: torch.device, batch_size: int = 256) -> Tensor:
    """Logits ``[M, C]`` of ``probe`` on cached tokens ``[M, N, D]`` (CPU)."""
    probe.eval()
    return torch.cat(
        [
            probe(tokens[start : start + batch_size].to(device)).float().cpu()
            for start in range(0, len(tokens), batch_size)
        ]
    )


def train_attentive_probes(
    frozen: FrozenEncoder,
    train: ImageSet,
    val_tokens: Tensor | None,
    val_labels: Tensor | None,
    transform: SingleViewTransform,
    kinds: tuple[ProbeKind, ...] | None = None,
    recipe: ProbeRecipe = ProbeRecipe(),
    num_workers: int = 0,
    log: Callable[[str], None] = print,
    show_progress: bool | None = None,
) -> dict[str, ProbeSelection]:
    """Train ``kinds`` (default: every registered attentive head) side by side; returns each probe's best
    validation epoch and weights, or without validation tokens (a label budget with no validation
    split) its last epoch's."""
    kinds = kinds or attentive_heads()
    if train.labels is None:
        raise ValueError("attentive probes need labelled training images")
    device = frozen.device
    torch.manual_seed(recipe.seed)
    num_classes = train.num_classes
    probes = {kind: build_probe(kind, frozen.encoder.embed_dim, num_classes).to(device) for kind in kinds}
    optimizers = {
        kind: torch.optim.AdamW(_parameter_groups(probe), lr=recipe.lr, weight_decay=recipe.weight_decay)  # type: ignore[arg-type]
        for kind, probe in probes.items()
    }
    sampler = EpochBatchSampler(len(train), recipe.batch_size, recipe.seed, drop_last=False)
    loader = make_train_loader(AugmentedViews(train, transform, None, recipe.seed), sampler, num_workers, False)
    steps_per_epoch = sampler.steps_per_epoch
    total = recipe.epochs * steps_per_epoch
    lr_schedule = WarmupFlatCosine(
        recipe.start_lr,
        recipe.lr,
        recipe.final_lr,
        total,
        round(recipe.warmup_epochs * steps_per_epoch),
        recipe.flat_fraction,
    )
    wd_schedule = Linear(recipe.weight_decay, recipe.final_weight_decay, total)
    selections = {kind: ProbeSelection(kind) for kind in kinds}
    step = 0
    progress = tqdm(total=total, disable=not show_progress if show_progress is not None else None, unit="batch")
    for epoch in range(recipe.epochs):
        sampler.set_epoch(epoch)
        for probe in probes.values():
            probe.train()
        for batch in loader:
            tokens = frozen.tokens(batch.views[0])
            labels = batch.labels.to(device) if batch.labels is not None else None
            assert labels is not None
            for kind, probe in probes.items():
                for group in optimizers[kind].param_groups:
                    group["lr"] = lr_schedule(step)
                    group["weight_decay"] = wd_schedule(step) * group["wd_scale"]
                loss = F.cross_entropy(probe(tokens), labels)
                optimizers[kind].zero_grad(set_to_none=True)
                loss.backward()
                optimizers[kind].step()
            step += 1
            progress.update(1)
        if val_tokens is None or val_labels is None:
            if epoch + 1 == recipe.epochs:  # no validation: the fixed recipe's last epoch
                for kind, probe in probes.items():
                    selections[kind].best_epoch, selections[kind].state = epoch + 1, copy.deepcopy(probe.state_dict())
            log(f"probe epoch {epoch + 1}/{recipe.epochs} (no validation split: the last epoch is kept)")
            continue
        scores = []
        for kind, probe in probes.items():
            top1 = (probe_logits(probe, val_tokens, device).argmax(-1) == val_labels).float().mean().item()
            selection = selections[kind]
            selection.history.append(top1)
            if top1 > selection.best_val_top1:
                selection.best_val_top1, selection.best_epoch = top1, epoch + 1
                selection.state = copy.deepcopy(probe.state_dict())
            scores.append(f"{kind} {top1:.3f}")
        log(f"probe epoch {epoch + 1}/{recipe.epochs}: val top-1 " + ", ".join(scores))
    progress.close()
    return selections


def restore_probe(selection: ProbeSelection, embed_dim: int, num_classes: int, device: torch.device) -> nn.Module:
    """The probe of ``selection`` at its selected epoch."""
    probe = build_probe(selection.kind, embed_dim, num_classes).to(device)  # type: ignore[arg-type]
    probe.load_state_dict(selection.state)
    return probe.eval()
