"""Small layers and helpers shared by the encoders, the methods and the probes."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def token_layer_norm(tokens: Tensor) -> Tensor:
    """Non-affine LayerNorm over the channels: ``[..., D] -> [..., D]``.

    The normalisation every consumer of encoder tokens applies: MIM-JEPA's targets (spec sec. 4.3),
    the frozen probes' features (spec sec. 5), the supervised head's input and the online probe.
    """
    return F.layer_norm(tokens, (tokens.shape[-1],))


def resolve_indices(indices: list[int] | None, count: int, what: str) -> list[int]:
    """Python-style indices into ``count`` blocks or stages, as non-negative positions in the
    order given (``None``: all). Used by every ``forward_intermediates``.

    Raises:
        ValueError: ``count`` is 0 or an index is out of range.
    """
    if count == 0:
        raise ValueError(f"forward_intermediates needs at least one {what}")
    wanted = list(range(count)) if indices is None else list(indices)
    for index in wanted:
        if not -count <= index < count:
            raise ValueError(f"{what} index {index} out of range for {count} {what}s")
    return [index % count for index in wanted]
