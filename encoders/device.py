"""Is a usable CUDA GPU present? Checked without error spam on CPU-only machines.

First a cheap driver probe (ctypes: libcuda's cuInit + cuDeviceGetCount), which needs no
torch import; only when a driver and a device exist is torch asked (when installed).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util


def _driver_device_count() -> int:
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    if libcuda.cuInit(0) != 0:
        return 0
    count = ctypes.c_int(0)
    if libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return int(count.value)


@functools.cache
def cuda_available() -> bool:
    """True when a CUDA driver with >= 1 device is present (and torch, if installed, agrees)."""
    if _driver_device_count() < 1:
        return False
    if importlib.util.find_spec("torch") is None:
        return True
    import torch

    return bool(torch.cuda.is_available())
