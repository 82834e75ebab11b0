"""The command line a bench prints beside its figures: what to type to measure them again."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that set the BLAS and OpenMP thread counts (they change the figures)."""


def command_line(script: str, arguments: Sequence[str] | None = None) -> str:
    """"command: [VAR=value ...] [taskset -c CPUS] .venv/bin/python SCRIPT ARGS": the thread-count
    variables this process's environment sets, the CPUs it is pinned to when fewer than the
    machine's, then `script` (its path in the repository) and `arguments` (default: this
    process's own, `sys.argv[1:]`), quoted for a POSIX shell."""
    settings = [f"{name}={shlex.quote(os.environ[name])}" for name in THREAD_VARIABLES if name in os.environ]
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < (os.cpu_count() or len(cpus)):
        settings += ["taskset", "-c", ",".join(map(str, cpus))]
    words = [*settings, ".venv/bin/python", script, *map(shlex.quote, sys.argv[1:] if arguments is None else arguments)]
    return "command: " + " ".join(words)
