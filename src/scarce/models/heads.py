"""MLP projection / prediction heads of the contrastive and siamese baselines (S3L, Cao & Wu,
arXiv 2103.13559).

One class, :class:`MLPHead`, covers them all; the convenience constructors fix the argument
combinations of each recipe:

* MoCo v2 head (:func:`moco_v2_head`): ``Linear(in, h) → ReLU → Linear(h, 128)``, no BN, ``h = 2048``.
* SimCLR projector (:func:`simclr_projector`): ``Linear(in, h) → BN → ReLU → Linear(h, 128)``, ``h = 2048``.
* BYOL projector (:func:`byol_projector`): ``Linear(in, 4096) → BN → ReLU → Linear(4096, 128)``.
* BYOL predictor (:func:`byol_predictor`): ``Linear(128, 4096) → BN → ReLU → Linear(4096, 128)``.

The hidden width ``h`` is an argument everywhere (a small encoder may want a narrower head).
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["MLPHead", "byol_predictor", "byol_projector", "moco_v2_head", "simclr_projector"]


class MLPHead(nn.Module):
    """``forward(x [B, in_dim]) -> [B, out_dim]``: an MLP of ``num_layers`` Linear layers.

    Each of the ``num_layers - 1`` hidden layers is ``Linear → (BatchNorm1d) → ReLU`` of width
    ``hidden_dim``; the last layer is a plain ``Linear(·, out_dim)``, optionally followed by a
    non-affine ``BatchNorm1d(out_dim)`` (``last_bn``, as SimCLR v2 / MoCo v3 style recipes use).
    All Linear layers have a bias (redundant but harmless before a BatchNorm; kept for a single,
    simple parameter count). The layers are the ``nn.Sequential`` :attr:`layers`.

    Parameter count (BatchNorm running statistics are buffers, not parameters)::

        num_layers = 1:  in*out + out
        num_layers = L:  in*h + h + (L - 2) * (h*h + h) + h*out + out + (L - 1) * 2h * batch_norm

    Args:
        in_dim: input features (the encoder's pooled output width).
        hidden_dim: width of the hidden layers (ignored when ``num_layers == 1``).
        out_dim: output features.
        num_layers: number of Linear layers, at least 1.
        batch_norm: BatchNorm1d (affine) after every hidden Linear.
        last_bn: non-affine BatchNorm1d after the last Linear.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int,
        num_layers: int = 2,
        batch_norm: bool = True,
        last_bn: bool = False,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        if min(in_dim, hidden_dim, out_dim) < 1:
            raise ValueError(f"dimensions must be positive, got in={in_dim}, hidden={hidden_dim}, out={out_dim}")
        self.in_dim, self.hidden_dim, self.out_dim = in_dim, hidden_dim, out_dim
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(width, hidden_dim))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU())
            width = hidden_dim
        layers.append(nn.Linear(width, out_dim))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MLPHead expects [B, {self.in_dim}], got {tuple(x.shape)}")
        return self.layers(x)


def moco_v2_head(in_dim: int, hidden_dim: int = 2048, out_dim: int = 128) -> MLPHead:
    """MoCo v2's head: ``Linear → ReLU → Linear`` without BatchNorm (Chen et al., arXiv 2003.04297)."""
    return MLPHead(in_dim, hidden_dim, out_dim, num_layers=2, batch_norm=False)


def simclr_projector(in_dim: int, hidden_dim: int = 2048, out_dim: int = 128) -> MLPHead:
    """SimCLR's projector: ``Linear → BN → ReLU → Linear`` (Chen et al., arXiv 2002.05709)."""
    return MLPHead(in_dim, hidden_dim, out_dim, num_layers=2, batch_norm=True)


def byol_projector(in_dim: int, hidden_dim: int = 4096, out_dim: int = 128) -> MLPHead:
    """BYOL's projector: ``Linear(in, 4096) → BN → ReLU → Linear(4096, 128)`` (Grill et al., arXiv 2006.07733)."""
    return MLPHead(in_dim, hidden_dim, out_dim, num_layers=2, batch_norm=True)


def byol_predictor(dim: int = 128, hidden_dim: int = 4096) -> MLPHead:
    """BYOL's predictor: ``Linear(128, 4096) → BN → ReLU → Linear(4096, 128)``, same form as the projector."""
    return MLPHead(dim, hidden_dim, dim, num_layers=2, batch_norm=True)
