"""One logged round, both sides: what the log says (`LoggedSide`) and what an evaluated policy's
answer gives every estimator (`PolicyRound`).

The offline driver (`online.evaluation.driver`) and the live leaderboard of the worker's shadow
policies (`online.evaluation.live`) compute a round through these two functions, so an estimate
means the same thing in a report and on the leaderboard:

    side = logged_side(round_, catalog.index, reward_model, uniform_log)      # None: nothing shown
    terms = policy_round(scores, side, reward_model, "log_ctr")                # per evaluated policy

The reward model q(item, position) is read before the round's own reward is known (predict, then
update), so the doubly robust correction stays unbiased.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from online.evaluation.logged import UNKNOWN_ROW, LoggedSlate, RoundSupport, logged_slate, round_support, shown_pscores
from online.evaluation.reward_model import RewardModel
from online.evaluation.rounds import LoggedRound
from online.evaluation.scoring import RequestScores
from online.events import RankRequest

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
RewardModelKind = Literal["log_ctr", "river", "policy"]


@dataclass(frozen=True)
class LoggedSide:
    """The logged side of a round with an impression: per shown item (j, in position order) its
    catalog row int64[j] (UNKNOWN_ROW when not in the catalog), position int64[j], reward
    float64[j], logging propensity float64[j] (NaN when unknown) and the reward model's q of it
    float64[j]; the served slate when the log holds it consistently (`logged_slate`), what the
    round says about the logger's support, and the relevance labels {row: reward}; the round's
    request (the user a contextual reward model predicts and learns for)."""

    rows: IntArray
    positions: IntArray
    rewards: FloatArray
    pscores: FloatArray
    q_log: FloatArray
    slate: LoggedSlate | None
    support: RoundSupport
    relevance: dict[int, float]
    request: RankRequest | None = None

    @property
    def weighted(self) -> IntArray:
        """int64[w] positions of the shown items with a logging propensity."""
        out: IntArray = self.positions[np.isfinite(self.pscores)]
        return out

    def subset(self, keep: npt.NDArray[np.bool_], rewards: FloatArray, pscores: FloatArray) -> LoggedSide:
        """The side restricted to the shown items `keep` bool[j], with their `rewards` and
        `pscores` float64[keep.sum()] (the live leaderboard: what the impression showed)."""
        rows = self.rows[keep]
        relevance = {int(r): float(v) for r, v in zip(rows, rewards, strict=True)}
        return replace(self, rows=rows, positions=self.positions[keep], rewards=rewards, pscores=pscores,
                       q_log=self.q_log[keep], relevance=relevance)


def logged_side(round_: LoggedRound, index: Mapping[str, int], model: RewardModel,
                uniform_log: bool | None) -> LoggedSide | None:
    """The logged side of `round_` (None when nothing was shown); index: catalog id -> row; q from
    `model` as it stands (before the round's reward is folded in)."""
    impression = round_.impression
    if impression is None:
        return None
    shown = sorted(impression.shown, key=lambda s: s.position)
    rewards = round_.rewards()
    slate = logged_slate(round_, index)
    rows = np.array([index.get(s.item_id, UNKNOWN_ROW) for s in shown], dtype=np.int64)
    positions = np.array([s.position for s in shown], dtype=np.int64)
    logged_rewards = np.array([rewards.get(s.item_id, 0.0) for s in shown])
    known = rows != UNKNOWN_ROW
    width = int(positions.max()) + 1
    q_log = np.zeros(len(shown))
    if known.any():
        q_log[known] = model.predict(rows[known], width, round_.request)[np.arange(int(known.sum())), positions[known]]
    return LoggedSide(rows, positions, logged_rewards, shown_pscores(shown, slate), q_log, slate,
                      round_support(round_, slate, uniform_log),
                      {int(r): float(v) for r, v in zip(rows, logged_rewards, strict=True)}, round_.request)


@dataclass(frozen=True)
class PolicyRound:
    """An evaluated policy's side of one round, aligned with the `LoggedSide`: per shown item its
    probability of putting that item at that position (eval_probs), the reward model's q of the
    logged item (q_logged) and its expectation under the policy at that position (q_expected),
    whether the policy's own slate has the item there (matched), its predicted reward (predicted,
    NaN when the item is not its candidate), all float64/bool[j]; its own slate (catalog rows
    int64[k]); the prefix probabilities it gives the logged slate (float64[L], None when the log
    records none); whether the log supports it in this round (None: unknown)."""

    eval_probs: FloatArray
    q_logged: FloatArray
    q_expected: FloatArray
    matched: npt.NDArray[np.bool_]
    predicted: FloatArray
    slate_rows: IntArray
    eval_prefix: FloatArray | None
    supported: bool | None

    def subset(self, keep: npt.NDArray[np.bool_]) -> PolicyRound:
        """The per-item terms of the shown items `keep` bool[j] (per-round ones unchanged)."""
        return replace(self, eval_probs=self.eval_probs[keep], q_logged=self.q_logged[keep],
                       q_expected=self.q_expected[keep], matched=self.matched[keep], predicted=self.predicted[keep])


def policy_round(scores: RequestScores, side: LoggedSide, model: RewardModel,
                 reward_model: RewardModelKind) -> PolicyRound:
    """The policy's terms for the round (see `PolicyRound`): its position probabilities read at
    the logged items, q under the shared reward `model` for the round's request ("log_ctr",
    "river") or the policy's own posterior mean clipped to [0, 1] ("policy"), and its prefix
    probabilities of the logged slate."""
    shown_rows, positions = side.rows, side.positions
    _n, k = scores.probs.shape
    local = {int(row): i for i, row in enumerate(scores.rows.tolist())}
    cand = np.array([local.get(int(row), -1) for row in shown_rows], dtype=np.int64)
    inside = (cand >= 0) & (positions < k)
    eval_probs = np.zeros(len(shown_rows))
    eval_probs[inside] = scores.probs[cand[inside], positions[inside]]
    mean = np.clip(scores.mean, 0.0, 1.0)
    if reward_model == "policy":
        q_cand = np.repeat(mean[:, None], k, axis=1)
        q_logged = np.where(cand >= 0, mean[np.maximum(cand, 0)], 0.0)
    else:
        q_cand = model.predict(scores.rows, k, side.request)
        q_logged = side.q_log
    expected_by_position = (scores.probs * q_cand).sum(axis=0)
    q_expected = np.where(positions < k, expected_by_position[np.minimum(positions, k - 1)], 0.0)
    slate_rows = scores.rows[scores.slate]
    at_position = np.where(positions < k, slate_rows[np.minimum(positions, k - 1)], -1)
    predicted = np.where(cand >= 0, mean[np.maximum(cand, 0)], np.nan)
    eval_prefix = None
    slate = side.slate
    if slate is not None and slate.has_prefix:
        logged = np.array([local.get(int(row), -1) for row in slate.rows], dtype=np.int64)
        eval_prefix = scores.slate_probabilities(logged).prefix
    return PolicyRound(eval_probs, q_logged, q_expected, at_position == shown_rows, predicted, slate_rows,
                       eval_prefix, side.support.supports(scores.item_ids))
