"""Versioned binary codec for learned state: a small JSON header plus raw arrays.

Layout of one blob (little-endian):
    b"SLST" | u32 header length | header JSON | array bytes, in header order
Header: {"kind": str, "v": int, "meta": {...}, "arrays": [[name, dtype, shape], ...]}.
Never pickle: only numeric numpy arrays and JSON-able metadata go in.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

MAGIC = b"SLST"
_ALLOWED_DTYPES = frozenset({"<f8", "<f4", "<i8", "<i4", "<u4", "|u1", "|b1"})


class StateCodecError(ValueError):
    """A blob that is not a state of the expected kind and version."""


@dataclass(frozen=True)
class DecodedState:
    """What `unpack_state` returns: codec version, metadata and arrays by name."""

    version: int
    meta: dict[str, Any]
    arrays: dict[str, npt.NDArray[Any]]


def pack_state(
    kind: str, version: int, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]
) -> bytes:
    """Serialise a state: `kind` names the state type, `version` its layout version."""
    specs: list[list[Any]] = []
    chunks: list[bytes] = []
    for name, array in arrays.items():
        contiguous = np.ascontiguousarray(array)
        dtype = contiguous.dtype.newbyteorder("<") if contiguous.dtype.byteorder == ">" else contiguous.dtype
        contiguous = contiguous.astype(dtype, copy=False)
        if dtype.str not in _ALLOWED_DTYPES:
            raise StateCodecError(f"array {name!r}: dtype {dtype.str} cannot be encoded")
        specs.append([name, dtype.str, list(contiguous.shape)])
        chunks.append(contiguous.tobytes())
    header = json.dumps(
        {"kind": kind, "v": version, "meta": meta, "arrays": specs}, separators=(",", ":")
    ).encode()
    return b"".join([MAGIC, struct.pack("<I", len(header)), header, *chunks])


def unpack_state(blob: bytes, kind: str, max_version: int) -> DecodedState:
    """Parse a blob written by `pack_state`; check its kind and that version <= max_version."""
    if blob[:4] != MAGIC or len(blob) < 8:
        raise StateCodecError(f"not a slatestream state blob (expected {kind!r})")
    (header_length,) = struct.unpack_from("<I", blob, 4)
    try:
        header = json.loads(blob[8 : 8 + header_length])
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StateCodecError(f"corrupt state header: {error}") from error
    if not isinstance(header, dict):
        raise StateCodecError(f"corrupt state header: a JSON {type(header).__name__}, not an object")
    if header.get("kind") != kind:
        raise StateCodecError(f"state kind is {header.get('kind')!r}, expected {kind!r}")
    version = int(header["v"])
    if version > max_version:
        raise StateCodecError(f"{kind} state version {version} is newer than {max_version}")
    arrays: dict[str, npt.NDArray[Any]] = {}
    offset = 8 + header_length
    for name, dtype_str, shape in header["arrays"]:
        if dtype_str not in _ALLOWED_DTYPES:
            raise StateCodecError(f"array {name!r}: dtype {dtype_str} not allowed")
        dtype = np.dtype(dtype_str)
        count = int(np.prod(shape)) if shape else 1
        size = count * dtype.itemsize
        if offset + size > len(blob):
            raise StateCodecError(f"state {kind!r} truncated in array {name!r}")
        arrays[name] = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape).copy()
        offset += size
    if offset != len(blob):
        raise StateCodecError(f"state {kind!r} has {len(blob) - offset} trailing bytes")
    return DecodedState(version=version, meta=dict(header["meta"]), arrays=arrays)
