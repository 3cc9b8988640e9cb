"""FLOP counts against the spec's figures (sec. 3: stem ≈1.06 GMAC, block ≈376 MMAC, ≈5.58 GMAC)."""

from __future__ import annotations

import pytest
import torch

from scarce.flops import count_flops
from scarce.models import create_encoder


def test_paper_encoder_forward_flops_match_spec() -> None:
    encoder = create_encoder("scott-paper").eval()
    images = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        total_macs = count_flops(lambda: encoder(images)) / 2
        stem_macs = count_flops(lambda: encoder.tokenizer(images)) / 2
    assert total_macs / 1e9 == pytest.approx(5.58, rel=0.01)
    assert stem_macs / 1e9 == pytest.approx(1.06, rel=0.01)
    assert (total_macs - stem_macs) / 12 / 1e6 == pytest.approx(376, rel=0.01)


def test_attention_is_counted_on_the_fused_path() -> None:
    """Without the CPU flash-attention formulas the attention would count as 0 FLOPs."""
    encoder = create_encoder("scott-tiny").eval()
    block = encoder.transformer.blocks[0]
    tokens = torch.randn(2, 64, 64)
    with torch.no_grad():
        flops = count_flops(lambda: block.attn(tokens))
    linear = 2 * 2 * 64 * (64 * 3 * 64 + 64 * 64)
    attention = 2 * 2 * 2 * 64 * 64 * 64  # QK^T and AV, batch 2
    assert flops == linear + attention
