"""Harness for tests and benchmarks: a seeded workload, a hostile corpus (`hostile`), a worker
subprocess, in-memory tables.

Nothing the worker runs imports this package.
"""

from streams.testing.child_process import die_with_parent
from streams.testing.tables import SharedTables
from streams.testing.worker_process import READY, WorkerProcess, worker_env
from streams.testing.workload import T0, Workload, make_workload, publish, split

__all__ = ["READY", "T0", "SharedTables", "WorkerProcess", "Workload", "die_with_parent", "make_workload", "publish",
           "split", "worker_env"]
