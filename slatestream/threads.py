"""One BLAS thread for the whole process, as every slatestream command runs.

The core makes many small linear-algebra calls (D ~ 33: a posterior, 64 draws against 1,000
candidates, a user's sums); a threaded BLAS hands each of them to its worker threads and
makes it far slower on few cores: ~30x for the core's calls on 2 cores (an earlier
measurement), and `Engine.rank` with 1,000 candidates and 64 draws p50 9.8 ms against 0.84
ms on the 2-core AMD EPYC VM (2026-12-06, numpy's OpenBLAS 0.3.31, 1,000 requests, `/tmp`
script over bench/worker_latency.py's in-process baseline). A benchmark's in-process baseline
calls this too, so that it measures the code as the worker runs it.
"""

from __future__ import annotations


def use_one_blas_thread() -> None:
    """Limit BLAS to one thread, for good: numpy's (loaded here if it was not yet) and any other
    loaded already, through threadpoolctl; an OpenBLAS loaded later (scipy's own, which a
    command may import after this call now that commands are imported lazily) through
    OPENBLAS_NUM_THREADS, which it reads when it loads (OMP_NUM_THREADS is left alone: PyTorch
    would take it too). Child processes inherit the variable, as the policy of one BLAS thread."""
    import os

    import numpy  # noqa: F401  (its BLAS loaded, so that the limit below reaches it)
    from threadpoolctl import threadpool_limits

    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    threadpool_limits(limits=1, user_api="blas")
