"""A trained classifier as one module (encoder + head), and its file ``classifier.safetensors``.

Every run that trains a classifier (``scarce supervised``, ``scarce finetune``, and the commands
built on them) writes ``RUN/classifier.safetensors``: the weights of the evaluated network (the
EMA weights when the run keeps an EMA) and, in the safetensors metadata, JSON with the backbone
config, the head kind, the class names and how the weights were selected. ``scarce predict`` and
``scarce export`` read it; safetensors holds tensors and strings only, so reading it runs no code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from scarce.data.transforms import normalize_batch
from scarce.errors import CheckpointError
from scarce.models.layers import token_layer_norm

CLASSIFIER_FILE = "classifier.safetensors"
_METADATA_KEY = "scarce_classifier"


def head_tokens(encoder: nn.Module, normalised: Tensor) -> Tensor:
    """What a head sees: ``encoder -> non-affine token LayerNorm`` for token encoders, the feature
    map as tokens for a ResNet (not normalised: its head pools, as in S3L). ``[B, 3, S, S] -> [B, N, D]``."""
    from scarce.models.resnet import ResNetBackbone

    tokens = encoder(normalised)
    return tokens if isinstance(encoder, ResNetBackbone) else token_layer_norm(tokens)


def head_logits(encoder: nn.Module, head: nn.Module, normalised: Tensor) -> Tensor:
    """``head(head_tokens(encoder, normalised))``: ``normalised`` float ``[B, 3, S, S]``
    (ImageNet-normalised) -> logits ``[B, C]``."""
    return head(head_tokens(encoder, normalised))


class Classifier(nn.Module):
    """``Classifier(encoder, head)``: ``forward(normalised [B, 3, S, S]) -> logits [B, C]``.

    Its state-dict keys (``encoder.*``, ``head.*``) are those of the supervised methods, so their
    weights load into it unchanged.
    """

    def __init__(self, encoder: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward(self, normalised: Tensor) -> Tensor:
        return head_logits(self.encoder, self.head, normalised)

    @torch.no_grad()
    def logits(self, images: Tensor) -> Tensor:
        """uint8 ``[B, 3, S, S]`` -> logits ``[B, C]``."""
        return self(normalize_batch(images))


@dataclass
class LoadedClassifier:
    """A classifier read from a file: the module (eval mode) and what its metadata says."""

    model: Classifier
    classes: list[str]
    metadata: dict[str, Any]
    path: Path

    @property
    def img_size(self) -> int:
        return int(self.model.encoder.config.img_size)  # type: ignore[union-attr]


def save_classifier(
    path: Path, encoder: nn.Module, head: nn.Module, *, head_kind: str, classes: list[str], **about: Any
) -> Path:
    """Write ``encoder`` + ``head`` to ``path`` with their config, head kind, classes and ``about``
    (e.g. ``selected``: which epoch's weights; ``source``: the run) in the metadata."""
    from scarce.engine.checkpoint import atomic_write
    from scarce.models.backbone import backbone_metadata

    model = Classifier(encoder, head)
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    record = {"head": head_kind, "classes": list(classes), "num_classes": len(classes), **about}
    metadata = {**backbone_metadata(encoder), _METADATA_KEY: json.dumps(record)}
    atomic_write(path, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))
    return path


def classifier_path(source: str | Path) -> Path:
    """``RUN/classifier.safetensors`` for a run directory, else ``source`` itself."""
    path = Path(source)
    if path.is_dir():
        path = path / CLASSIFIER_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{source} holds no {CLASSIFIER_FILE}: it is not a finished classifier run "
                "(train one with scarce supervised or scarce finetune)"
            )
    elif not path.is_file():
        raise CheckpointError(f"no such run directory or classifier file: {source}")
    return path


def load_classifier(source: str | Path) -> LoadedClassifier:
    """The classifier of a run directory or a ``classifier.safetensors`` file, in eval mode; a
    file that is not a scarce classifier is a one-line :class:`CheckpointError`."""
    from scarce.engine.checkpoint import load_state_dict_strict, one_line
    from scarce.models.backbone import build_backbone, config_from_metadata
    from scarce.models.probes import build_probe

    path = classifier_path(source)
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        state = load_file(str(path))
    except Exception as error:  # a damaged header, a truncated file, not safetensors at all
        raise CheckpointError(f"cannot read {path}: {type(error).__name__}: {one_line(str(error), 300)}") from None
    if _METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path} is not a classifier (no head in it): an encoder alone cannot predict classes; "
            "fine-tune it first (scarce finetune)"
        )
    try:
        record = json.loads(metadata[_METADATA_KEY])
        config = config_from_metadata(metadata)
        if config is None:
            raise ValueError("no encoder_config in the metadata")
        encoder = build_backbone(config)
        head = build_probe(record["head"], int(encoder.embed_dim), int(record["num_classes"]))
        classes = [str(name) for name in record["classes"]]
    except (ValueError, TypeError, KeyError) as error:
        raise CheckpointError(f"{path}: unreadable classifier metadata: {one_line(str(error), 300)}") from None
    model = Classifier(encoder, head)
    load_state_dict_strict(model, state, f"classifier {path}")
    return LoadedClassifier(model=model.eval(), classes=classes, metadata=record, path=path)
