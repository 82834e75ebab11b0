"""numpy's arrays without the huge-page advice in slatestream's services (slatestream/hugepages.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy  # noqa: F401  (imported in this process: the switch comes too late here)
import pytest

from slatestream.hugepages import SWITCH, no_numpy_hugepages

AT_START = """
import json, os, sys
import slatestream.cli as cli
calls = []
switch = cli.no_numpy_hugepages
def spy():
    calls.append("numpy" in sys.modules)
    return switch()
cli.no_numpy_hugepages = spy
try:
    cli.main([sys.argv[1], "--help"])
except SystemExit:
    pass
print(json.dumps([os.environ.get("NUMPY_MADVISE_HUGEPAGE"), calls, "numpy" in sys.modules]))
"""


def started(command: str, environ: dict[str, str]) -> list[object]:
    """[the switch as numpy read it, for each call of `no_numpy_hugepages` whether numpy was
    imported then, numpy imported in the end] for `slatestream COMMAND --help` in a fresh
    interpreter with `environ`."""
    out = subprocess.run([sys.executable, "-c", AT_START, command], capture_output=True, text=True, check=True,
                         env=environ)
    result: list[object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def without_switch() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != SWITCH}


def test_the_worker_sets_the_switch_before_numpy_is_imported() -> None:
    assert started("worker", without_switch()) == ["0", [False], True]


def test_the_operators_setting_wins() -> None:
    assert started("worker", {**without_switch(), SWITCH: "1"}) == ["1", [False], True]


def test_the_other_commands_keep_numpys_advice() -> None:
    assert started("run", without_switch()) == [None, [], True]


def test_the_switch_is_set_once_and_said_to_take_effect_only_before_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SWITCH, raising=False)
    assert not no_numpy_hugepages()  # numpy is imported in this process already
    assert os.environ[SWITCH] == "0"
    monkeypatch.setenv(SWITCH, "1")
    monkeypatch.delitem(sys.modules, "numpy")
    assert not no_numpy_hugepages() and os.environ[SWITCH] == "1"
    monkeypatch.setenv(SWITCH, "0")
    assert no_numpy_hugepages()
