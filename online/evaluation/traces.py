"""The driver's traces: the logged side of every evaluated round (`RoundLog`, shared by all
policies) and each policy's side (`PolicyTrace`), aligned round by round."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from online.evaluation.logged import LoggedSlate

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class RoundLog:
    """The logged side, shared by all policies: per observation the round, catalog row,
    position, reward and propensity (NaN when unknown); per round the relevance labels and
    the served slate when the log holds it (`online.evaluation.logged`)."""

    rounds: list[int] = field(default_factory=list)
    rows: list[IntArray] = field(default_factory=list)
    positions: list[IntArray] = field(default_factory=list)
    rewards: list[FloatArray] = field(default_factory=list)
    pscores: list[FloatArray] = field(default_factory=list)
    relevance: list[dict[int, float]] = field(default_factory=list)
    slates: list[LoggedSlate | None] = field(default_factory=list)

    def add(self, round_index: int, rows: IntArray, positions: IntArray, rewards: FloatArray,
            pscores: FloatArray, relevance: dict[int, float], slate: LoggedSlate | None = None) -> None:
        self.rounds.append(round_index)
        self.rows.append(rows)
        self.positions.append(positions)
        self.rewards.append(rewards)
        self.pscores.append(pscores)
        self.relevance.append(relevance)
        self.slates.append(slate)


@dataclass
class PolicyTrace:
    """One policy's side, aligned with `RoundLog`: per observation its evaluation
    probability, DR terms q(logged) and q(expected under the policy), whether its slate
    matched, its predicted CTR (NaN when the item was not a candidate); per round its slate
    (catalog rows) and the prefix probabilities it gives the logged slate (None when the log
    records no prefix propensities for the round)."""

    policy: str
    version: str
    eval_probs: list[FloatArray] = field(default_factory=list)
    q_logged: list[FloatArray] = field(default_factory=list)
    q_expected: list[FloatArray] = field(default_factory=list)
    matched: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    predicted: list[FloatArray] = field(default_factory=list)
    slates: list[IntArray] = field(default_factory=list)
    eval_prefix: list[FloatArray | None] = field(default_factory=list)
    unranked_rounds: int = 0
    learned_events: int = 0
    rejected_events: int = 0

    def add(self, eval_probs: FloatArray, q_logged: FloatArray, q_expected: FloatArray,
            matched: npt.NDArray[np.bool_], predicted: FloatArray, slate: IntArray,
            eval_prefix: FloatArray | None = None) -> None:
        self.eval_prefix.append(eval_prefix)
        self.eval_probs.append(eval_probs)
        self.q_logged.append(q_logged)
        self.q_expected.append(q_expected)
        self.matched.append(matched)
        self.predicted.append(predicted)
        self.slates.append(slate)

    def add_unranked(self, n_observations: int, prefix_length: int | None = None) -> None:
        """A round the policy could not rank: probability 0 for every logged observation and,
        when the round records prefix propensities, for every prefix of its slate."""
        zeros = np.zeros(n_observations)
        self.unranked_rounds += 1
        self.add(zeros, zeros, zeros, np.zeros(n_observations, dtype=bool), np.full(n_observations, np.nan),
                 np.zeros(0, dtype=np.int64), None if prefix_length is None else np.zeros(prefix_length))
