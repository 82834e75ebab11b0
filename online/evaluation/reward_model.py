"""The reward model of the doubly robust estimate: a smoothed CTR per (item, position).

Fitted online on the log in log order, *predict then update*: a round's prediction uses
only earlier rounds, so it never depends on the reward it is compared with (the DR
correction term stays unbiased). The model is shared by every evaluated policy, so their
DR estimates differ only through the policies' action distributions, not through
per-policy models of different quality.

Hierarchical shrinkage (counts of shown items N and summed rewards C):
    global   g      = (C + prior_alpha) / (N + prior_alpha + prior_beta)
    position p_l    = (C_l + s_pos * g) / (N_l + s_pos)
    item     q(a,l) = (C_al + s_item * p_l) / (N_al + s_item)
Position matters on OBD (the top slot gets more clicks); items are shrunk towards it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from online.events import RankRequest

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class RewardModel(Protocol):
    """What DR reads q from (`round_terms`): predict q(item row, position) for a round's request
    (its user: a contextual model; ignored by `PositionCTRModel`), then fold the round's shown
    items in. Implementations: `PositionCTRModel`, `online.evaluation.river_reward.RiverRewardModel`."""

    def predict(self, rows: IntArray, n_positions: int, request: RankRequest | None = None) -> FloatArray:
        """float64[len(rows), n_positions]: q(item row, position) for positions 0..n-1."""

    def update(self, rows: IntArray, positions: IntArray, rewards: FloatArray,
               request: RankRequest | None = None) -> None:
        """Fold in shown items: int64[m] rows, int64[m] positions (>= 0), float64[m] rewards."""


class PositionCTRModel:
    """Online smoothed CTR per (item row, position); rows and positions grow on demand.

    Args:
        prior_alpha, prior_beta: Beta prior of the global CTR (> 0).
        position_strength, item_strength: pseudo-impressions of the shrinkage (> 0).
    """

    def __init__(
        self,
        prior_alpha: float = 1.0,
        prior_beta: float = 20.0,
        position_strength: float = 50.0,
        item_strength: float = 20.0,
    ) -> None:
        for name, value in (("prior_alpha", prior_alpha), ("prior_beta", prior_beta),
                            ("position_strength", position_strength), ("item_strength", item_strength)):
            if not value > 0:
                raise ValueError(f"{name}: must be > 0, got {value!r}")
        self.prior_alpha = prior_alpha
        self.prior_beta = prior_beta
        self.position_strength = position_strength
        self.item_strength = item_strength
        self._shown = np.zeros((0, 0))
        self._reward = np.zeros((0, 0))

    def _grow(self, rows: int, positions: int) -> None:
        old_rows, old_positions = self._shown.shape
        if rows <= old_rows and positions <= old_positions:
            return
        shape = (max(rows, old_rows, 2 * old_rows), max(positions, old_positions))
        shown, reward = np.zeros(shape), np.zeros(shape)
        shown[:old_rows, :old_positions] = self._shown
        reward[:old_rows, :old_positions] = self._reward
        self._shown, self._reward = shown, reward

    def position_ctr(self, n_positions: int) -> FloatArray:
        """float64[n_positions] the smoothed CTR of each position."""
        self._grow(0, n_positions)
        shown, reward = self._shown[:, :n_positions], self._reward[:, :n_positions]
        g = (reward.sum() + self.prior_alpha) / (shown.sum() + self.prior_alpha + self.prior_beta)
        out: FloatArray = (reward.sum(axis=0) + self.position_strength * g) / (
            shown.sum(axis=0) + self.position_strength
        )
        return out

    def predict(self, rows: IntArray, n_positions: int, request: RankRequest | None = None) -> FloatArray:
        """float64[len(rows), n_positions]: q(item row, position) for positions 0..n-1 (the
        request is ignored: no user context)."""
        self._grow(int(rows.max()) + 1 if rows.size else 0, n_positions)
        base = self.position_ctr(n_positions)
        shown = self._shown[rows, :n_positions]
        reward = self._reward[rows, :n_positions]
        out: FloatArray = (reward + self.item_strength * base[None, :]) / (shown + self.item_strength)
        return out

    def update(self, rows: IntArray, positions: IntArray, rewards: FloatArray,
               request: RankRequest | None = None) -> None:
        """Fold in shown items: int64[m] rows, int64[m] positions (>= 0), float64[m] rewards."""
        if rows.size == 0:
            return
        if positions.min() < 0:
            raise ValueError("positions: must be >= 0")
        self._grow(int(rows.max()) + 1, int(positions.max()) + 1)
        np.add.at(self._shown, (rows, positions), 1.0)
        np.add.at(self._reward, (rows, positions), rewards)
