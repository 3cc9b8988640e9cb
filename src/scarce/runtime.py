"""Process-level facts and tuning: environment description, CPU allocator settings."""

from __future__ import annotations

import ctypes
import os
import platform
import sys

import scarce

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_MAX = -4


def tune_cpu_allocator() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel.

    Training allocates and frees the same large activation tensors every step. With glibc's
    defaults each allocation above 128 KiB is a fresh ``mmap`` whose pages are zero-filled on
    first touch, which made element-wise ops several times slower than the memory bus allows
    on the benchmark machine (``benchmarks/results/encoder_forward.md``). This sets
    ``M_MMAP_MAX = 0`` (serve every allocation from the heap) and large trim/top-pad thresholds.

    A no-op returning False off Linux/glibc or when ``SCARCE_NO_MALLOC_TUNING=1`` is set.
    """
    if os.environ.get("SCARCE_NO_MALLOC_TUNING") == "1" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
    return all(mallopt(option, value) == 1 for option, value in settings)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def environment_info() -> dict[str, str]:
    """Versions, device and threading facts of this machine (saved with every run and benchmark)."""
    import numpy
    import torch
    import torchvision

    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.device_count()}x {torch.cuda.get_device_name(0)})"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = "mps"
    else:
        device = "cpu"
    return {
        "scarce": scarce.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": _cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "device": device,
        "cuda": str(torch.version.cuda),
        "mkldnn": str(torch.backends.mkldnn.is_available()),
    }
