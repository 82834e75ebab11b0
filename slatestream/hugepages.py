"""No transparent huge pages for numpy's arrays in the worker: what each learn call allocates
afresh then faults in as 4 KiB pages, not as whole 2 MiB pages.

numpy asks the kernel to back every array of 4 MiB or more with huge pages (`madvise(...,
MADV_HUGEPAGE)`), which the kernel honours where its THP setting is "madvise" (the 2-core VM's)
or "always". A learn call of the worker's backlog (~26,000 events) allocates its rows and its
users' stacked sums afresh, several such arrays each, so each call faults in and zeroes whole
huge pages (~190 over a bench run, its in-process baselines included). With numpy's advice off,
the worker learned the bench's backlog faster in 7 of 9 alternating pairs of runs through the
broker (median 1.15x; its learn calls' CPU time median 1.13 s against 1.41), with about twice
the minor page faults and about the same peak memory (docs/operations.md, "Memory: numpy's huge
pages").

numpy reads its documented switch, NUMPY_MADVISE_HUGEPAGE, once, when it is imported.
`no_numpy_hugepages()` sets it to "0" unless the operator set it (theirs wins), so it must run
before numpy's import: the command line calls it for the services (`slatestream worker` and
`gateway`, `slatestream.cli.SERVICES`) before it imports their module, and the benches whose
in-process baselines compare with the worker call it before their own imports. Child processes
inherit it. The other commands keep numpy's advice: they keep freed memory in the heap
(slatestream/heap.py), so their large arrays come from heap pages used before, not fresh ones,
and the embedded engine learned no faster without it (eight alternating pairs of
`bench/engine_throughput.py`, median 0.93x).
"""

from __future__ import annotations

import os
import sys

SWITCH = "NUMPY_MADVISE_HUGEPAGE"
"""numpy's environment variable: "0" leaves its arrays without the huge-page advice."""


def no_numpy_hugepages() -> bool:
    """Set SWITCH to "0" unless it is set already; True when numpy will read "0" (set here or by
    the operator) and is not imported yet, so that the setting takes effect in this process."""
    os.environ.setdefault(SWITCH, "0")
    return os.environ[SWITCH] == "0" and "numpy" not in sys.modules
