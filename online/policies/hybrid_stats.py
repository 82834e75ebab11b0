"""State of hybrid linear Thompson sampling (online.policies.hybrid_ts) and its binary codec.

`ItemSums`: per item id, the (discounted) sums the per-item part is fitted from: exposures,
rewards and the sum of the item's feature vectors over its exposures. `HybridGlobal`: the
population's pooled text sums plus the item sums, as of an event time. `HybridUser`: one user's
text sums (rewards net of the item effects known when learned), as of an event time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from online.codec import StateCodecError, pack_state, unpack_state
from online.policies.base import FloatArray, IntArray
from online.policies.forgetting import DriftDetector
from online.policies.linear_stats import LinearStats

CODEC_VERSION = 1


@dataclass(frozen=True)
class ItemSums:
    """ids: n item ids; exposures, rewards: float64[n]; features: float64[n, D] the sum of the
    item's feature vectors over its exposures (rows weighted like the exposures)."""

    ids: tuple[str, ...]
    exposures: FloatArray
    rewards: FloatArray
    features: FloatArray
    index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.index and self.ids:
            self.index.update({item: row for row, item in enumerate(self.ids)})

    @staticmethod
    def empty(dim: int) -> ItemSums:
        return ItemSums((), np.zeros(0), np.zeros(0), np.zeros((0, dim)))

    def rows(self, item_ids: Sequence[str]) -> IntArray:
        """int64[n] row of each id, -1 for an item never seen."""
        get = self.index.get
        return np.fromiter((get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids))

    def lookup(self, item_ids: Sequence[str]) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(exposures float64[n], rewards float64[n], feature sums float64[n, D]); zeros for unseen items."""
        rows = self.rows(item_ids)
        seen = rows >= 0
        exposures, rewards = np.zeros(len(rows)), np.zeros(len(rows))
        features = np.zeros((len(rows), self.features.shape[1]))
        exposures[seen] = self.exposures[rows[seen]]
        rewards[seen] = self.rewards[rows[seen]]
        features[seen] = self.features[rows[seen]]
        return exposures, rewards, features

    def add(self, item_ids: Sequence[str], exposures: FloatArray, rewards: FloatArray, features: FloatArray,
            scale: float = 1.0) -> ItemSums:
        """New sums: these times `scale`, plus per-row increments (m ids, float64[m] exposures and
        rewards, float64[m, D] feature sums); items are added on first sight."""
        ids, index = list(self.ids), dict(self.index)
        rows = np.empty(len(item_ids), dtype=np.int64)
        for position, item_id in enumerate(item_ids):
            row = index.get(item_id)
            if row is None:
                row = index[item_id] = len(ids)
                ids.append(item_id)
            rows[position] = row
        n, old = len(ids), len(self.ids)
        new_exposures, new_rewards = np.zeros(n), np.zeros(n)
        new_features = np.zeros((n, self.features.shape[1]))
        new_exposures[:old], new_rewards[:old], new_features[:old] = (
            self.exposures * scale, self.rewards * scale, self.features * scale)
        np.add.at(new_exposures, rows, exposures)
        np.add.at(new_rewards, rows, rewards)
        np.add.at(new_features, rows, features)
        return ItemSums(tuple(ids), new_exposures, new_rewards, new_features, index)


@dataclass(frozen=True)
class HybridGlobal:
    """pooled: the population's text sums over every row (raw rewards); items: the per-item
    sums; as_of_s: the latest event time folded in (-inf before any), the time the discounted
    sums are held at; clock: halvings applied by drift alarms so far (a user's sums held at an
    earlier clock are discounted by 2 ** -(clock - user.clock)); detector: the drift test."""

    pooled: LinearStats
    items: ItemSums
    as_of_s: float = float("-inf")
    clock: float = 0.0
    detector: DriftDetector = field(default_factory=DriftDetector)

    @staticmethod
    def empty(dim: int) -> HybridGlobal:
        return HybridGlobal(LinearStats.zeros(dim), ItemSums.empty(dim))

    @property
    def dim(self) -> int:
        return self.pooled.dim


@dataclass(frozen=True)
class HybridUser:
    """stats: the user's text sums, responses net of the item effects; as_of_s, clock: as
    HybridGlobal's when the user was last learned."""

    stats: LinearStats
    as_of_s: float = float("-inf")
    clock: float = 0.0


def _time_meta(as_of_s: float) -> float | None:
    return as_of_s if math.isfinite(as_of_s) else None


def _number(meta: dict[str, object], name: str, kind: str) -> float:
    value = meta.get(name, 0.0)
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise StateCodecError(f"{kind}: {name} must be a finite number, got {value!r}")
    return float(value)


def _time_of(meta: dict[str, object], kind: str) -> float:
    value = meta.get("as_of_s")
    if value is None:
        return float("-inf")
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise StateCodecError(f"{kind}: as_of_s must be a finite number or null, got {value!r}")
    return float(value)


def _stats_arrays(stats: LinearStats) -> dict[str, FloatArray]:
    return {"gram_upper": stats.gram_upper, "response": stats.response}


def _stats_of(meta: dict[str, object], arrays: dict[str, FloatArray], kind: str) -> LinearStats:
    gram, response = arrays.get("gram_upper"), arrays.get("response")
    if gram is None or response is None or response.ndim != 1:
        raise StateCodecError(f"{kind}: missing or malformed sums")
    dim = len(response)
    if gram.shape != (dim * (dim + 1) // 2,):
        raise StateCodecError(f"{kind}: Gram triangle of shape {gram.shape} for D={dim}")
    counts = meta.get("n_exposures"), meta.get("reward_total")
    if not all(isinstance(c, int | float) for c in counts):
        raise StateCodecError(f"{kind}: missing counts")
    return LinearStats(gram.astype(np.float64), response.astype(np.float64), float(counts[0]), float(counts[1]))  # type: ignore[arg-type]


def encode_global(state: HybridGlobal) -> bytes:
    """pack_state layout "hybrid_ts.global" v1: counts, as_of_s, the drift clock and detector and
    the item ids in the header; the
    pooled Gram triangle and response, then the items' exposures, rewards and feature sums."""
    pooled, items = state.pooled, state.items
    meta = {"n_exposures": pooled.n_exposures, "reward_total": pooled.reward_total,
            "as_of_s": _time_meta(state.as_of_s), "clock": state.clock, "drift_n": state.detector.n,
            "drift_mean": state.detector.mean, "drift_score": state.detector.score, "item_ids": list(items.ids)}
    arrays = {**_stats_arrays(pooled), "item_exposures": items.exposures, "item_rewards": items.rewards,
              "item_features": items.features}
    return pack_state("hybrid_ts.global", CODEC_VERSION, meta, arrays)


def decode_global(blob: bytes) -> HybridGlobal:
    """Inverse of encode_global; raises StateCodecError naming what is wrong."""
    kind = "hybrid_ts.global"
    decoded = unpack_state(blob, kind, max_version=CODEC_VERSION)
    pooled = _stats_of(decoded.meta, decoded.arrays, kind)
    ids = decoded.meta.get("item_ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
        raise StateCodecError(f"{kind}: item_ids must be distinct strings")
    arrays = [decoded.arrays.get(name) for name in ("item_exposures", "item_rewards", "item_features")]
    exposures, rewards, features = arrays
    if exposures is None or rewards is None or features is None or exposures.shape != (len(ids),) or (
            rewards.shape != (len(ids),) or features.shape != (len(ids), pooled.dim)):
        raise StateCodecError(f"{kind}: item sums do not match {len(ids)} items of D={pooled.dim}")
    items = ItemSums(tuple(ids), exposures.astype(np.float64), rewards.astype(np.float64),
                     features.astype(np.float64))
    detector = DriftDetector(*(_number(decoded.meta, f"drift_{name}", kind) for name in ("n", "mean", "score")))
    return HybridGlobal(pooled, items, _time_of(decoded.meta, kind), _number(decoded.meta, "clock", kind), detector)


def encode_user(state: HybridUser) -> bytes:
    """pack_state layout "hybrid_ts.user" v1: counts, as_of_s and clock in the header, then the Gram
    triangle and the response (D = 33: 4,752 bytes of sums)."""
    stats = state.stats
    meta = {"n_exposures": stats.n_exposures, "reward_total": stats.reward_total, "as_of_s": _time_meta(state.as_of_s),
            "clock": state.clock}
    return pack_state("hybrid_ts.user", CODEC_VERSION, meta, _stats_arrays(stats))


def decode_user(blob: bytes) -> HybridUser:
    kind = "hybrid_ts.user"
    decoded = unpack_state(blob, kind, max_version=CODEC_VERSION)
    return HybridUser(_stats_of(decoded.meta, decoded.arrays, kind), _time_of(decoded.meta, kind),
                      _number(decoded.meta, "clock", kind))
