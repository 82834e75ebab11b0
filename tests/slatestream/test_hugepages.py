"""numpy's arrays without the huge-page advice in slatestream's commands (slatestream/hugepages.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy  # noqa: F401  (imported in this process: the switch comes too late here)
import pytest

from slatestream.hugepages import SWITCH, no_numpy_hugepages

AT_WORKER_START = """
import json, os, sys
import slatestream.cli
before = "numpy" in sys.modules
from slatestream.cli import main
try:
    main(["worker", "--help"])
except SystemExit:
    pass
print(json.dumps([os.environ.get("NUMPY_MADVISE_HUGEPAGE"), before, "numpy" in sys.modules]))
"""


def started(environ: dict[str, str]) -> list[object]:
    """[the switch as numpy read it, numpy imported before the command line, numpy imported by
    the worker's module] in a fresh interpreter with `environ`."""
    out = subprocess.run([sys.executable, "-c", AT_WORKER_START], capture_output=True, text=True, check=True,
                         env=environ)
    result: list[object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_the_command_line_sets_the_switch_before_numpy_is_imported() -> None:
    environ = {name: value for name, value in os.environ.items() if name != SWITCH}
    assert started(environ) == ["0", False, True]


def test_the_operators_setting_wins() -> None:
    assert started({**os.environ, SWITCH: "1"}) == ["1", False, True]


def test_the_switch_is_set_once_and_said_to_take_effect_only_before_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SWITCH, raising=False)
    assert not no_numpy_hugepages()  # numpy is imported in this process already
    assert os.environ[SWITCH] == "0"
    monkeypatch.setenv(SWITCH, "1")
    monkeypatch.delitem(sys.modules, "numpy")
    assert not no_numpy_hugepages() and os.environ[SWITCH] == "1"
    monkeypatch.setenv(SWITCH, "0")
    assert no_numpy_hugepages()
