"""Binary codec of linear TS sums (`LinearStats`, `PopulationStats`), one blob or many at once.

Layout (little-endian): header (magic b"SLTS", version u8, kind u8, D u16, n_exposures f64,
reward_total f64), then the packed upper Gram triangle (D(D+1)/2 values) and the response
(D values). Versions:
    1: the sums as float64.
    2: as 1; a population blob appends its per-scenario sums (uint16 S, then per scenario,
       sorted by name: uint16 name length, the two counts as f64, the UTF-8 name, its sums
       as float64); a user's response holds rewards net of the scenario offsets (identical
       to version 1 when no offset is learned).
    3: as 2, but a user blob stores its sums as float32 (D = 33: 2,400 bytes, version 2:
       4,776). Written for users of a policy with user_state_dtype="float32", whose learning
       rounds every user's sums to float32 values (linear_stats.add_user_sums), so the
       float32 blob holds them exactly. Populations are always written as version 2.
Every older version still decodes (states already in a store or a changelog keep working).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from online.codec import StateCodecError
from online.policies.base import FloatArray
from online.policies.linear_stats import LinearStats, PopulationStats, stats_of_rows

_HEADER = struct.Struct("<4sBBHdd")
_SCENARIO_HEADER = struct.Struct("<H")
_NAME_HEADER = struct.Struct("<Hdd")
_MAGIC = b"SLTS"
_KINDS = {"linear_ts.user": 1, "linear_ts.population": 2}
CODEC_VERSION = 3
FLOAT32_USER_VERSION = 3
"""The first version whose user blobs hold float32 sums."""


def _sum_dtype(kind: str, version: int) -> str:
    return "<f4" if kind == "linear_ts.user" and version >= FLOAT32_USER_VERSION else "<f8"


def _pack_sums(stats: LinearStats, dtype: str) -> bytes:
    return stats.gram_upper.astype(dtype).tobytes() + stats.response.astype(dtype).tobytes()


def encode_stats(kind: str, stats: LinearStats, float32: bool = False) -> bytes:
    """One blob: a user with `float32` as version 3 (its sums rounded to float32), anything
    else as version 2 (see the module doc)."""
    version = FLOAT32_USER_VERSION if float32 and kind == "linear_ts.user" else 2
    header = _HEADER.pack(_MAGIC, version, _KINDS[kind], stats.dim, stats.n_exposures, stats.reward_total)
    parts = [header, _pack_sums(stats, _sum_dtype(kind, version))]
    if kind == "linear_ts.population":
        scenarios = stats.scenarios if isinstance(stats, PopulationStats) else {}
        parts.append(_SCENARIO_HEADER.pack(len(scenarios)))
        for name in sorted(scenarios):
            encoded, sums = name.encode(), scenarios[name]
            parts += [_NAME_HEADER.pack(len(encoded), sums.n_exposures, sums.reward_total), encoded,
                      _pack_sums(sums, "<f8")]
    return b"".join(parts)


def _read_sums(blob: bytes, offset: int, dim: int, kind: str, dtype: str) -> tuple[FloatArray, FloatArray, int]:
    packed = dim * (dim + 1) // 2
    end = offset + np.dtype(dtype).itemsize * (packed + dim)
    if len(blob) < end:
        raise StateCodecError(f"{kind} state truncated")
    values = np.frombuffer(blob, dtype=dtype, count=packed + dim, offset=offset).astype(np.float64)
    return values[:packed], values[packed:], end


def decode_stats(kind: str, blob: bytes) -> LinearStats:
    """Inverse of encode_stats (versions 1 to 3); a population decodes to PopulationStats.
    Raises StateCodecError naming what is wrong."""
    if len(blob) < _HEADER.size:
        raise StateCodecError(f"{kind} state truncated")
    magic, version, kind_id, dim, n_exposures, reward_total = _HEADER.unpack_from(blob)
    if magic != _MAGIC or kind_id != _KINDS[kind]:
        raise StateCodecError(f"not a {kind} state")
    if version > CODEC_VERSION:
        raise StateCodecError(f"{kind} state version {version} is newer than {CODEC_VERSION}")
    gram, response, end = _read_sums(blob, _HEADER.size, dim, kind, _sum_dtype(kind, version))
    if kind != "linear_ts.population":
        if len(blob) != end:
            raise StateCodecError(f"{kind} state has the wrong length for D={dim}")
        return LinearStats(gram, response, n_exposures, reward_total)
    scenarios: dict[str, LinearStats] = {}
    if version >= 2:
        if len(blob) < end + _SCENARIO_HEADER.size:
            raise StateCodecError(f"{kind} state truncated")
        (count,) = _SCENARIO_HEADER.unpack_from(blob, end)
        end += _SCENARIO_HEADER.size
        for _ in range(count):
            if len(blob) < end + _NAME_HEADER.size:
                raise StateCodecError(f"{kind} state truncated")
            length, s_exposures, s_rewards = _NAME_HEADER.unpack_from(blob, end)
            end += _NAME_HEADER.size
            name = blob[end : end + length].decode("utf-8", errors="strict")
            s_gram, s_response, end = _read_sums(blob, end + length, dim, kind, "<f8")
            scenarios[name] = LinearStats(s_gram, s_response, s_exposures, s_rewards)
    if len(blob) != end:
        raise StateCodecError(f"{kind} state has the wrong length for D={dim}")
    return PopulationStats(gram, response, n_exposures, reward_total, scenarios)


def _user_record(dim: int, version: int) -> np.dtype[np.void]:
    """The layout of one user blob of `version` as a packed numpy record."""
    width = dim * (dim + 1) // 2 + dim
    return np.dtype([("magic", "S4"), ("version", "u1"), ("kind", "u1"), ("dim", "<u2"),
                     ("n_exposures", "<f8"), ("reward_total", "<f8"),
                     ("sums", _sum_dtype("linear_ts.user", version), (width,))])


def encode_users(dim: int, grams: npt.NDArray[np.floating], responses: npt.NDArray[np.floating],
                 n_exposures: FloatArray, reward_totals: FloatArray, float32: bool) -> list[bytes]:
    """U user blobs at once, byte for byte what encode_stats gives for each: grams [U,
    D(D+1)/2] packed Gram triangles, responses [U, D] (float64, or float32 holding the values
    a float32 blob stores), counts float64[U]."""
    version = FLOAT32_USER_VERSION if float32 else 2
    records = np.empty(len(grams), dtype=_user_record(dim, version))
    records["magic"], records["version"], records["kind"], records["dim"] = _MAGIC, version, 1, dim
    records["n_exposures"], records["reward_total"] = n_exposures, reward_totals
    packed = grams.shape[1]
    records["sums"][:, :packed], records["sums"][:, packed:] = grams, responses
    raw = records.tobytes()
    size = records.dtype.itemsize
    return [raw[start : start + size] for start in range(0, len(raw), size)]


def decode_users(blobs: Sequence[bytes]) -> list[LinearStats]:
    """decode_stats("linear_ts.user", blob) for many blobs: one vectorised parse when they
    share a version and D (the usual case), else one at a time (same errors). Each state owns
    its arrays (one kept in a cache holds no other state's memory)."""
    if not blobs:
        return []
    prefix = blobs[0][:8]  # magic, version, kind, D
    if len(blobs[0]) < _HEADER.size or prefix[:4] != _MAGIC or prefix[5] != _KINDS["linear_ts.user"]:
        return [decode_stats("linear_ts.user", blob) for blob in blobs]
    version, dim = prefix[4], int.from_bytes(prefix[6:8], "little")
    record = _user_record(dim, version)
    if version > CODEC_VERSION or any(len(blob) != record.itemsize or blob[:8] != prefix for blob in blobs):
        return [decode_stats("linear_ts.user", blob) for blob in blobs]
    records = np.frombuffer(b"".join(blobs), dtype=record)
    return stats_of_rows(records["sums"], records["n_exposures"], records["reward_total"])
