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


def _without_thread_limits() -> dict[str, str]:
    """This process's environment less the variables that limit BLAS threads (a child then
    starts with its libraries' defaults)."""
    return {key: value for key, value in os.environ.items()
            if key not in {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"}}

def test_use_one_blas_thread_limits_numpys_blas_to_one_thread() -> None:
    env = _without_thread_limits()
    out = subprocess.run([sys.executable, "-c", BLAS_THREADS], env=env, capture_output=True, text=True, check=True)
    before, after = json.loads(out.stdout)
    assert before and after == [1] * len(before)
    if (os.cpu_count() or 1) > 1:  # a BLAS with its default threads was there to limit
        assert max(before) > 1


A_COMMAND_THEN_SCIPY = """
import json
from click.testing import CliRunner
from threadpoolctl import threadpool_info
from slatestream.cli import main

result = CliRunner().invoke(main, ["status", "--help"])  # the group's setup runs, then the command's help
import scipy.linalg  # noqa: E402,F401  (its own OpenBLAS, loaded after the setup)
print(json.dumps([result.exit_code, [(pool["filepath"], pool["num_threads"]) for pool in threadpool_info()
                                     if pool["user_api"] == "blas"]]))
"""


def test_a_blas_loaded_after_a_commands_setup_runs_one_thread_too() -> None:
    """Commands are imported when they run, so a library may load after `use_one_blas_thread`:
    scipy's OpenBLAS, loaded after `slatestream status`'s setup, runs one thread as numpy's."""
    env = _without_thread_limits()
    out = subprocess.run([sys.executable, "-c", A_COMMAND_THEN_SCIPY], env=env, capture_output=True, text=True,
                         check=True)
    exit_code, pools = json.loads(out.stdout)
    assert exit_code == 0
    assert len(pools) >= 2, pools  # numpy's and scipy's
    assert [threads for _, threads in pools] == [1] * len(pools), pools
