"""The heap tuning (slatestream/heap.py): when it applies, and that a batch-sized array then comes
from the heap and its memory stays there once freed (glibc's own counters, `mallinfo2`)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from slatestream.heap import SWITCH, tuning_wanted

HEAP = """
import ctypes, sys
import numpy as np
from slatestream.heap import keep_freed_memory

class MallInfo2(ctypes.Structure):  # glibc >= 2.33: bytes per kind of memory
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2
applied = keep_freed_memory() if sys.argv[1] == "on" else False
batch = np.ones(5 << 20)  # 40 MiB
mapped_while_alive = mallinfo2().hblkhd  # bytes in mmapped chunks
del batch
free_kept = mallinfo2().fordblks  # bytes free in the heap, kept for reuse
print(applied, mapped_while_alive >> 20, free_kept >> 20)
"""


def test_tuning_is_wanted_unless_switched_off_or_the_operator_tunes_malloc() -> None:
    assert tuning_wanted({})
    assert not tuning_wanted({SWITCH: "off"}) and not tuning_wanted({SWITCH: " OFF "})
    assert tuning_wanted({SWITCH: "on"})
    assert not tuning_wanted({"MALLOC_TRIM_THRESHOLD_": "1000"})
    assert not tuning_wanted({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=1000"})


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and mallinfo2 are glibc's")
def test_a_batch_sized_array_comes_from_the_heap_and_its_memory_is_kept() -> None:
    found = {}
    for mode in ("off", "on"):
        done = subprocess.run([sys.executable, "-c", HEAP, mode], capture_output=True, text=True, check=True)
        applied, mapped_mib, kept_mib = done.stdout.split()
        found[mode] = (applied, int(mapped_mib), int(kept_mib))
    assert found["on"][0] == "True" and found["off"][0] == "False"
    # glibc's defaults: a 40 MiB array is a fresh mmap (above its 32 MiB dynamic ceiling), given
    # back when freed, so its pages fault in again next time
    assert found["off"][1] >= 40 and found["off"][2] < 40, found
    # tuned: served from the heap, and the freed 40 MiB stay there for the next batch
    assert found["on"][1] < 40 and found["on"][2] >= 40, found


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
