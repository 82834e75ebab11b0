"""One BLAS thread (slatestream/threads.py): what every command and the benchmarks' in-process
baselines run with."""

from __future__ import annotations

import json
import os
import subprocess
import sys

BLAS_THREADS = """
import json
import numpy  # loads its BLAS
from threadpoolctl import threadpool_info
from slatestream.threads import use_one_blas_thread

def blas_threads():
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

before = blas_threads()
use_one_blas_thread()
print(json.dumps([before, blas_threads()]))
"""


def test_use_one_blas_thread_limits_numpys_blas_to_one_thread() -> None:
    env = {key: value for key, value in os.environ.items()
           if key not in {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}}
    out = subprocess.run([sys.executable, "-c", BLAS_THREADS], env=env, capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout)
    assert before and after == [1] * len(before)
    if (os.cpu_count() or 1) > 1:  # a BLAS with its default threads was there to limit
        assert max(before) > 1
