"""FLOP counting on top of ``torch.utils.flop_counter``.

PyTorch's counter has no formula for the CPU flash-attention kernels that
``scaled_dot_product_attention`` dispatches to on CPU, so attention would count as free there.
:func:`count_flops` adds those formulas (the same as PyTorch's SDPA formulas).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count


def _cpu_flash_forward(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_flash_backward(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


_CPU_ATTENTION_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_forward,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
}


def count_flops(step: Callable[[], object]) -> int:
    """Floating-point operations (2 per multiply-accumulate) executed by ``step()``."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION_FORMULAS) as counter:
        step()
    return counter.get_total_flops()


def forward_flops_per_image(backbone: torch.nn.Module, img_size: int) -> int:
    """FLOPs of one forward pass of ``backbone`` on one ``img_size``² image (eval mode, no grad),
    the cost figure S3L reports next to accuracy."""
    was_training = backbone.training
    backbone.eval()
    parameter = next(backbone.parameters())
    image = torch.zeros(1, 3, img_size, img_size, device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad():
        flops = count_flops(lambda: backbone(image))
    backbone.train(was_training)
    return flops
