"""Sufficient statistics of linear Thompson sampling, their batched sums and binary codec.

`LinearStats` holds one regression's sums (a user's, or the population's); `PopulationStats`
adds the per-scenario sums that fit the learned scenario offsets (see online.policies.linear_ts).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from online.codec import StateCodecError
from online.policies.base import FloatArray


@dataclass(frozen=True)
class LinearStats:
    """Sufficient statistics: the Gram matrix (sum of exposure x x^T) kept as its packed
    upper triangle float64[D(D+1)/2], the response float64[D] (sum of reward x), and
    the counts of exposures and of reward mass."""

    gram_upper: FloatArray
    response: FloatArray
    n_exposures: float = 0.0
    reward_total: float = 0.0

    @staticmethod
    def zeros(dim: int) -> LinearStats:
        return LinearStats(np.zeros(dim * (dim + 1) // 2), np.zeros(dim))

    @staticmethod
    def from_gram(gram: FloatArray, response: FloatArray, n_exposures: float = 0.0,
                  reward_total: float = 0.0) -> LinearStats:
        """Pack a full symmetric float64[D, D] Gram matrix."""
        rows, cols = _upper(int(response.shape[0]))
        return LinearStats(np.asarray(gram)[rows, cols].copy(), response, n_exposures, reward_total)

    @property
    def dim(self) -> int:
        return int(self.response.shape[0])

    @property
    def gram(self) -> FloatArray:
        """float64[D, D] the full symmetric Gram matrix."""
        full: FloatArray = self.gram_upper[_symmetric_index(self.dim)]
        return full

    def plus(self, gram_upper: FloatArray, response: FloatArray, n_exposures: float,
             reward_total: float) -> LinearStats:
        """These sums plus an increment (a new value; self is not changed)."""
        return LinearStats(self.gram_upper + gram_upper, self.response + response,
                           self.n_exposures + n_exposures, self.reward_total + reward_total)


@dataclass(frozen=True)
class PopulationStats(LinearStats):
    """The population's sums over every row (the inherited fields), plus `scenarios`: per
    scenario that has a learned offset, the sums over that scenario's rows only. Rows of
    other scenarios are in the pooled sums alone. Treat `scenarios` as read-only."""

    scenarios: Mapping[str, LinearStats] = field(default_factory=dict)

    @staticmethod
    def empty(dim: int) -> PopulationStats:
        return PopulationStats(np.zeros(dim * (dim + 1) // 2), np.zeros(dim))

    @staticmethod
    def of(pooled: LinearStats, scenarios: Mapping[str, LinearStats]) -> PopulationStats:
        return PopulationStats(pooled.gram_upper, pooled.response, pooled.n_exposures,
                               pooled.reward_total, dict(scenarios))


@lru_cache(maxsize=16)
def _upper(dim: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    return np.triu_indices(dim)


@lru_cache(maxsize=16)
def _symmetric_index(dim: int) -> npt.NDArray[np.intp]:
    """int[D, D]: position in the packed upper triangle of each full-matrix entry."""
    index = np.zeros((dim, dim), dtype=np.intp)
    rows, cols = _upper(dim)
    index[rows, cols] = np.arange(len(rows))
    index[cols, rows] = np.arange(len(rows))
    return index


_HEADER = struct.Struct("<4sBBHdd")
_SCENARIO_HEADER = struct.Struct("<H")
_NAME_HEADER = struct.Struct("<Hdd")
_MAGIC = b"SLTS"
_KINDS = {"linear_ts.user": 1, "linear_ts.population": 2}
CODEC_VERSION = 2
"""Version 1: header and one set of sums. Version 2 (scenario offsets): a population blob
appends its per-scenario sums; a user blob is laid out as in version 1, but its response
holds rewards net of the scenario offsets (identical to version 1 when no offset is
learned). Version 1 blobs decode as version 2 blobs without scenario sums."""


def _pack_sums(stats: LinearStats) -> bytes:
    return stats.gram_upper.astype("<f8", copy=False).tobytes() + stats.response.astype("<f8", copy=False).tobytes()


def encode_stats(kind: str, stats: LinearStats) -> bytes:
    """Fixed binary layout, version 2: header (magic, version, kind, D, counts), then the
    packed Gram triangle and the response as little-endian float64 (D=33: 4,776 bytes). A
    population then appends: uint16 S, and per scenario (sorted by name) uint16 name
    length, the two counts, the UTF-8 name, its packed Gram triangle and response."""
    header = _HEADER.pack(_MAGIC, CODEC_VERSION, _KINDS[kind], stats.dim, stats.n_exposures, stats.reward_total)
    parts = [header, _pack_sums(stats)]
    if kind == "linear_ts.population":
        scenarios = stats.scenarios if isinstance(stats, PopulationStats) else {}
        parts.append(_SCENARIO_HEADER.pack(len(scenarios)))
        for name in sorted(scenarios):
            encoded, sums = name.encode(), scenarios[name]
            parts += [_NAME_HEADER.pack(len(encoded), sums.n_exposures, sums.reward_total), encoded, _pack_sums(sums)]
    return b"".join(parts)


def _read_sums(blob: bytes, offset: int, dim: int, kind: str) -> tuple[FloatArray, FloatArray, int]:
    packed = dim * (dim + 1) // 2
    end = offset + 8 * (packed + dim)
    if len(blob) < end:
        raise StateCodecError(f"{kind} state truncated")
    values = np.frombuffer(blob, dtype="<f8", count=packed + dim, offset=offset)
    return values[:packed].astype(np.float64), values[packed:].astype(np.float64), end


def decode_stats(kind: str, blob: bytes) -> LinearStats:
    """Inverse of encode_stats (versions 1 and 2); a population decodes to PopulationStats.
    Raises StateCodecError naming what is wrong."""
    if len(blob) < _HEADER.size:
        raise StateCodecError(f"{kind} state truncated")
    magic, version, kind_id, dim, n_exposures, reward_total = _HEADER.unpack_from(blob)
    if magic != _MAGIC or kind_id != _KINDS[kind]:
        raise StateCodecError(f"not a {kind} state")
    if version > CODEC_VERSION:
        raise StateCodecError(f"{kind} state version {version} is newer than {CODEC_VERSION}")
    gram, response, end = _read_sums(blob, _HEADER.size, dim, kind)
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
            s_gram, s_response, end = _read_sums(blob, end + length, dim, kind)
            scenarios[name] = LinearStats(s_gram, s_response, s_exposures, s_rewards)
    if len(blob) != end:
        raise StateCodecError(f"{kind} state has the wrong length for D={dim}")
    return PopulationStats(gram, response, n_exposures, reward_total, scenarios)


def grouped_sums(
    group: npt.NDArray[np.int64], n_groups: int, x: FloatArray, exposure: FloatArray,
    reward: FloatArray, chunk: int = 512,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per-group sufficient statistics in a few vectorised calls.

    group: int64[m] in [0, n_groups); x: float64[m, D]; exposure, reward: float64[m].
    Returns packed Gram triangles float64[G, D(D+1)/2], responses float64[G, D],
    exposure totals and reward totals float64[G]. Exposure rows of each group are
    gathered into zero-padded blocks (groups sorted by row count, cut into chunks so
    padding stays small) and multiplied with one batched matmul per chunk instead of
    one small matmul per group. Reward rows only touch the responses.
    """
    dim = x.shape[1]
    rows, cols = _upper(dim)
    packed = rows * dim + cols
    shown = np.flatnonzero(exposure)
    x_shown, group_shown = x[shown], group[shown]
    if np.any(exposure[shown] != 1.0):
        x_shown = x_shown * np.sqrt(exposure[shown])[:, None]
    counts = np.bincount(group_shown, minlength=n_groups)
    order = np.argsort(group_shown, kind="stable")
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    padded = np.vstack([x_shown, np.zeros((1, dim))])
    by_count = np.argsort(counts, kind="stable")
    by_count = by_count[counts[by_count] > 0]
    sorted_gram = np.empty((len(by_count), len(rows)))
    for first in range(0, len(by_count), chunk):
        members = by_count[first : first + chunk]
        width = int(counts[members].max())
        offsets = np.arange(width)
        valid = offsets[None, :] < counts[members][:, None]
        gather = np.minimum(starts[members][:, None] + offsets, max(len(order) - 1, 0))
        xs = padded[np.where(valid, order[gather], len(shown))]
        products = np.matmul(xs.transpose(0, 2, 1), xs).reshape(len(members), -1)
        np.take(products, packed, axis=1, out=sorted_gram[first : first + len(members)])
    gram = np.zeros((n_groups, len(rows)))
    gram[by_count] = sorted_gram
    response = np.zeros((n_groups, dim))
    paid = np.flatnonzero(reward)
    np.add.at(response, group[paid], x[paid] * reward[paid][:, None])
    totals_e = np.bincount(group, weights=exposure, minlength=n_groups).astype(np.float64)
    totals_r = np.bincount(group, weights=reward, minlength=n_groups).astype(np.float64)
    return gram, response, totals_e, totals_r


def packed_gram(x: FloatArray, exposure: FloatArray) -> FloatArray:
    """float64[D(D+1)/2] packed upper triangle of sum_i exposure_i x_i x_i^T; x: float64[m, D]."""
    rows, cols = _upper(x.shape[1])
    full: FloatArray = (x.T @ (x * exposure[:, None]))[rows, cols]
    return full
