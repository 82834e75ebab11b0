"""Keep glibc's malloc from handing every batch's arrays back to the kernel.

The learning path allocates a few arrays of 0.5-2 MB per batch (a batch's rows, its users'
stacked sums). glibc serves allocations above its mmap threshold (128 KiB at start, raised
dynamically up to 32 MiB) with fresh `mmap`s and trims freed memory at the top of the heap
beyond 128 KiB, so each batch touches new pages: 47,000-85,000 minor page faults per 45,078
feedback events in `WorkerCore.learn`, one or two pages of zeroing per event. With the
thresholds below the same learning takes ~9,500 faults and 1.16x the events per CPU second
(`OMP_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/worker_throughput.py --learn-only 5
--heap both`; figures in docs/operations.md); the process keeps up to `TRIM_THRESHOLD` of freed
memory instead of returning it.

`keep_freed_memory()` runs at the start of every `slatestream` command but the worker and the
gateway (slatestream.cli): through the broker, ten interleaved pairs of worker runs showed no gain
(docs/operations.md). It does nothing where the C library is not glibc, when
`SLATESTREAM_HEAP_TUNING=off`, or when the operator tunes malloc through the environment already
(MALLOC_*_ or GLIBC_TUNABLES): theirs wins.
"""

from __future__ import annotations

import ctypes
import os
import platform

MMAP_THRESHOLD = 64 << 20
"""bytes: allocations up to this size come from the heap, not a fresh mmap."""
TRIM_THRESHOLD = 256 << 20
"""bytes: freed memory at the top of the heap kept for reuse, up to this much."""
TOP_PAD = 16 << 20
"""bytes: extra heap obtained with each growth (fewer brk calls)."""
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
OPERATOR_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")
SWITCH = "SLATESTREAM_HEAP_TUNING"
"""Set to "off" to leave malloc's defaults."""


def tuning_wanted(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether to tune: not switched off, and no malloc settings of the operator's own."""
    if environ.get(SWITCH, "").strip().lower() in {"off", "0", "false", "no"}:
        return False
    return not any(name in environ for name in OPERATOR_SETTINGS)


def keep_freed_memory() -> bool:
    """Apply MMAP_THRESHOLD, TRIM_THRESHOLD and TOP_PAD with glibc's mallopt; True when applied
    (see the module doc for when it is not)."""
    if not tuning_wanted() or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols, glibc's among them (no ldconfig lookup)
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = [mallopt(option, value) for option, value in ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                                           (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
                                                           (_M_TOP_PAD, TOP_PAD))]
    return all(result == 1 for result in applied)
