"""kafka-python's record checksums: native with the `crc32c` package (a dependency), and a clear
warning where it is missing (then kafka-python falls back to pure Python, ~10x slower reads)."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from click.testing import CliRunner

from slatestream.cli import main
from streams.checksums import PURE_PYTHON_WARNING, checksum_warning, native_checksums

from .test_preflight import refused_port

CHECKED_KAFKA_PYTHON = "3.0.12"
"""The kafka-python whose module-level CRC-32C choice (kafka.record.util._crc32c) is checked below."""


def test_the_crc32c_package_is_installed_and_kafka_python_uses_it() -> None:
    assert version("kafka-python") == CHECKED_KAFKA_PYTHON, (
        "kafka.record.util._crc32c is checked for kafka-python 3.0.12 only: find where this version "
        "chooses its CRC-32C, then update CHECKED_KAFKA_PYTHON")
    import crc32c
    from kafka.record import util

    assert native_checksums() and checksum_warning() is None
    assert util._crc32c is crc32c.crc32c
    assert util.calc_crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_without_crc32c_kafka_python_checksums_in_python_and_slatestream_says_so() -> None:
    """In a fresh interpreter where `crc32c` cannot be imported (as in an environment without the
    package): kafka-python falls back to its pure-Python code and `checksum_warning` names the fix."""
    script = ("import sys; sys.modules['crc32c'] = None\n"
              "from kafka.record import util, _crc32c\n"
              "from streams.checksums import checksum_warning, native_checksums\n"
              "assert util._crc32c is _crc32c.crc, util._crc32c\n"
              "assert util.calc_crc32c(b'123456789') == 0xE3069283\n"
              "assert not native_checksums()\n"
              "print(checksum_warning())\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == PURE_PYTHON_WARNING
    assert "kafka-python[crc32c]" in PURE_PYTHON_WARNING


def test_a_kafka_command_warns_on_stderr_when_checksums_run_in_python(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("SLATESTREAM_BROKER_URL", f"kafka://127.0.0.1:{refused_port()}")
    replay = ["replay", "--since", "2026-01-01T00:00:00Z", "--until", "2026-01-02T00:00:00Z",
              "--out", str(tmp_path / "replayed.jsonl")]
    monkeypatch.setitem(sys.modules, "crc32c", None)
    result = CliRunner().invoke(main, replay)
    assert result.exit_code != 0  # nothing listens there
    assert f"warning: {PURE_PYTHON_WARNING}" in result.stderr
    monkeypatch.delitem(sys.modules, "crc32c")
    again = CliRunner().invoke(main, replay)
    assert again.exit_code != 0 and "warning:" not in again.stderr
