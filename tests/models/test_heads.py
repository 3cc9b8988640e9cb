"""MLP heads: shapes, layer structure, parameter counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scarce.models.heads import MLPHead, byol_predictor, byol_projector, moco_v2_head, simclr_projector


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _types(head: MLPHead) -> list[type[nn.Module]]:
    return [type(layer) for layer in head.layers]


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("last_bn", [True, False])
def test_output_shape_and_parameter_count(num_layers: int, batch_norm: bool, last_bn: bool) -> None:
    in_dim, hidden, out_dim = 6, 10, 3
    head = MLPHead(in_dim, hidden, out_dim, num_layers=num_layers, batch_norm=batch_norm, last_bn=last_bn)
    assert head(torch.randn(4, in_dim)).shape == (4, out_dim)
    head.eval()
    assert head(torch.randn(1, in_dim)).shape == (1, out_dim)
    if num_layers == 1:
        expected = in_dim * out_dim + out_dim
    else:
        expected = in_dim * hidden + hidden  # first Linear
        expected += (num_layers - 2) * (hidden * hidden + hidden)  # middle Linears
        expected += hidden * out_dim + out_dim  # last Linear
        expected += (num_layers - 1) * 2 * hidden * int(batch_norm)  # BN weight + bias
    assert _count(head) == expected  # the last BN is non-affine: no parameters


def test_layer_structure() -> None:
    assert _types(MLPHead(4, 8, 2, batch_norm=True)) == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert _types(MLPHead(4, 8, 2, batch_norm=False)) == [nn.Linear, nn.ReLU, nn.Linear]
    assert _types(MLPHead(4, 8, 2, num_layers=1)) == [nn.Linear]
    assert _types(MLPHead(4, 8, 2, num_layers=3, batch_norm=False)) == [nn.Linear, nn.ReLU] * 2 + [nn.Linear]
    with_last = MLPHead(4, 8, 2, last_bn=True)
    assert _types(with_last)[-2:] == [nn.Linear, nn.BatchNorm1d]
    last = with_last.layers[-1]
    assert isinstance(last, nn.BatchNorm1d) and not last.affine and last.num_features == 2
    widths = [
        (m.in_features, m.out_features) for m in MLPHead(4, 8, 2, num_layers=3).layers if isinstance(m, nn.Linear)
    ]
    assert widths == [(4, 8), (8, 8), (8, 2)]
    assert all(m.bias is not None for m in MLPHead(4, 8, 2).layers if isinstance(m, nn.Linear))


def test_recipe_constructors() -> None:
    moco = moco_v2_head(32, hidden_dim=16)
    assert _types(moco) == [nn.Linear, nn.ReLU, nn.Linear]
    assert _count(moco) == 32 * 16 + 16 + 16 * 128 + 128
    assert moco(torch.randn(2, 32)).shape == (2, 128)
    simclr = simclr_projector(32, hidden_dim=16)
    assert _types(simclr) == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    projector = byol_projector(32)
    assert (projector.hidden_dim, projector.out_dim) == (4096, 128)
    assert _count(projector) == 32 * 4096 + 4096 + 2 * 4096 + 4096 * 128 + 128
    predictor = byol_predictor()
    assert (predictor.in_dim, predictor.hidden_dim, predictor.out_dim) == (128, 4096, 128)
    assert _types(predictor) == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Linear]
    assert predictor(projector(torch.randn(3, 32))).shape == (3, 128)


def test_rejects_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="num_layers"):
        MLPHead(4, 8, 2, num_layers=0)
    with pytest.raises(ValueError, match="expects"):
        MLPHead(4, 8, 2)(torch.randn(2, 5))
