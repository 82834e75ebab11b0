"""The command line benches print beside their figures (bench/command_line.py)."""

from __future__ import annotations

import pytest

from bench import command_line as module
from bench.command_line import THREAD_VARIABLES, command_line


def test_the_thread_variables_set_come_first_and_arguments_are_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _: {0, 1})
    monkeypatch.setattr(module.os, "cpu_count", lambda: 2)
    assert command_line("bench/x.py", ["--runs", "5", "--", "--store-dir", "/dev/shm", "a b"]) == (
        "command: OMP_NUM_THREADS=1 .venv/bin/python bench/x.py --runs 5 -- --store-dir /dev/shm 'a b'")


def test_no_variable_no_prefix_and_a_pinned_process_says_taskset(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _: {0, 1})
    assert command_line("bench/x.py", []) == "command: .venv/bin/python bench/x.py"
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda _: {1})
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert command_line("bench/x.py", ["--n", "3"]) == (
        "command: OPENBLAS_NUM_THREADS=2 taskset -c 1 .venv/bin/python bench/x.py --n 3")


def test_by_default_the_arguments_are_this_processs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module.sys, "argv", ["bench/x.py", "--peer", "none"])
    assert command_line("bench/x.py").endswith(".venv/bin/python bench/x.py --peer none")
