"""Whether kafka-python checksums record batches in native code.

kafka-python checks the CRC-32C of every record batch it reads (`check_crcs`, on by default)
and computes one for every batch it produces. It does both with the `crc32c` package's native
code when that package can be imported (its documented extra, `kafka-python[crc32c]`, which
slatestream depends on), else in pure Python: ~7 MB/s on the 2-core VM, so a bare kafka-python
reader of 100,081 records (22 MB) took 5.5-6.1 s instead of 1.6 s (bench/kafka_checksums.py). Every
kafka-python client here goes through it: `slatestream replay`, the catalog and embedding
readers a worker starts with, `SlatestreamClient` (publishing, reading slates), the gateway,
the dead-letter and changelog tools. aiokafka (Faust's client) checksums in its own C code.
"""

from __future__ import annotations

PURE_PYTHON_WARNING = (
    "kafka-python checksums record batches in pure Python (reads ~3-4x slower): the "
    "`crc32c` package is missing; install it (pip install 'kafka-python[crc32c]')")


def native_checksums() -> bool:
    """Whether kafka-python computes CRC-32C with the `crc32c` package: whether it imports, as
    kafka-python tries it (`from crc32c import crc32c`, falling back on ImportError)."""
    try:
        from crc32c import crc32c  # noqa: F401
    except ImportError:
        return False
    return True


def checksum_warning() -> str | None:
    """PURE_PYTHON_WARNING when kafka-python's checksums run in pure Python, else None."""
    return None if native_checksums() else PURE_PYTHON_WARNING
