"""The heap tuning (slatestream/heap.py): when it applies, and that it stops the page faults of
allocating and freeing a batch-sized array again and again."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from slatestream.heap import SWITCH, tuning_wanted

FAULTS = """
import resource, sys
import numpy as np
from slatestream.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "on" else False
np.ones(5 << 20).sum()  # the first allocation of its size: faults either way
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    np.ones(5 << 20).sum()  # 40 MiB, freed at once
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_tuning_is_wanted_unless_switched_off_or_the_operator_tunes_malloc() -> None:
    assert tuning_wanted({})
    assert not tuning_wanted({SWITCH: "off"}) and not tuning_wanted({SWITCH: " OFF "})
    assert tuning_wanted({SWITCH: "on"})
    assert not tuning_wanted({"MALLOC_TRIM_THRESHOLD_": "1000"})
    assert not tuning_wanted({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1000"})


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_freed_arrays_are_reused_without_page_faults() -> None:
    counts = {}
    for mode in ("off", "on"):
        done = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True)
        applied, faults = done.stdout.split()
        counts[mode] = (applied, int(faults))
    assert counts["on"][0] == "True" and counts["off"][0] == "False"
    # glibc's defaults: above 32 MiB every array is a fresh mmap whose pages fault in again
    # (~5,300 faults here); tuned, the freed heap is reused (0 here)
    assert counts["off"][1] > 2_000, counts
    assert counts["on"][1] < counts["off"][1] / 20, counts


@pytest.mark.parametrize(("command", "tuned"), [("run", True), ("evaluate", True), ("worker", False),
                                                ("gateway", False)])
def test_every_command_but_the_services_tunes_the_heap(monkeypatch: pytest.MonkeyPatch, command: str,
                                                         tuned: bool) -> None:
    from click.testing import CliRunner

    import slatestream.heap
    from slatestream.cli import main

    calls: list[bool] = []
    monkeypatch.setattr(slatestream.heap, "keep_freed_memory", lambda: calls.append(True) or True)
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert calls == ([True] if tuned else [])
