"""Named encoder presets (timm-style registry).

``create_encoder("scott-paper")`` builds the paper's encoder; ``list_presets()`` names them all.
CPU-scale presets keep the paper's block design and regularisation and shrink width, depth and
resolution so that pretraining on a 2-core CPU takes minutes, not days.
"""

from __future__ import annotations

from typing import Any

from scarce.models.encoder import Encoder, EncoderConfig

_PAPER = {"embed_dim": 384, "depth": 12, "num_heads": 4, "img_size": 224, "stride": 16}
_CPU = {"embed_dim": 192, "depth": 6, "num_heads": 3}

ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    # The paper's encoder (spec sec. 3): 224 px, 14x14 tokens, D 384, depth 12, 4 heads.
    "scott-paper": {"tokenizer": "scott", **_PAPER},
    "vit-paper": {"tokenizer": "vit", **_PAPER},
    # Parity rows of the spec's table.
    "scott-paper-d7": {"tokenizer": "scott", **_PAPER, "depth": 7},
    "scott-paper-d192": {"tokenizer": "scott", **_PAPER, "embed_dim": 192, "num_heads": 3},
    # CPU scale: D 192, depth 6, 3 heads (head_dim 64). The stride keeps a useful token grid.
    "scott-cpu-32": {"tokenizer": "scott", **_CPU, "img_size": 32, "stride": 4},  # 8x8 tokens
    "scott-cpu-64": {"tokenizer": "scott", **_CPU, "img_size": 64, "stride": 8},  # 8x8 tokens
    "scott-cpu-96": {"tokenizer": "scott", **_CPU, "img_size": 96, "stride": 16},  # 6x6 tokens
    # A 96 px student for distillation: scott-cpu-96 at half the width (D 96, 2 heads of 48), 0.44x
    # its forward FLOPs per image.
    "scott-small-96": {"tokenizer": "scott", **_CPU, "embed_dim": 96, "num_heads": 2, "img_size": 96, "stride": 16},
    "vit-cpu-32": {"tokenizer": "vit", **_CPU, "img_size": 32, "stride": 4},
    "vit-cpu-64": {"tokenizer": "vit", **_CPU, "img_size": 64, "stride": 8},
    "vit-cpu-96": {"tokenizer": "vit", **_CPU, "img_size": 96, "stride": 16},
    # Tests and smoke runs: seconds on one CPU core.
    "scott-tiny": {"tokenizer": "scott", "img_size": 32, "stride": 4, "embed_dim": 64, "depth": 2, "num_heads": 2},
    "vit-tiny": {"tokenizer": "vit", "img_size": 32, "stride": 4, "embed_dim": 64, "depth": 2, "num_heads": 2},
}


def list_presets() -> list[str]:
    """Names of the encoder presets."""
    return sorted(ENCODER_PRESETS)


def preset_config(name: str, **overrides: Any) -> EncoderConfig:
    """The :class:`EncoderConfig` of preset ``name`` with ``overrides`` applied."""
    if name not in ENCODER_PRESETS:
        raise KeyError(f"unknown encoder preset {name!r}; known: {', '.join(list_presets())}")
    return EncoderConfig(**{**ENCODER_PRESETS[name], **overrides})


def create_encoder(name: str, **overrides: Any) -> Encoder:
    """Build the encoder of preset ``name`` (e.g. ``"scott-paper"``), fields overridable."""
    return Encoder(preset_config(name, **overrides))
