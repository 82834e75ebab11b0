"""The driver's traces: the logged side of every evaluated round (`RoundLog`, shared by all
policies) and each policy's side (`PolicyTrace`), aligned round by round."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from online.evaluation.logged import LoggedSlate, RoundSupport

if TYPE_CHECKING:
    from online.evaluation.round_terms import PolicyRound

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class RoundLog:
    """The logged side, shared by all policies: per observation the round, catalog row,
    position, reward and propensity (NaN when unknown); per round the relevance labels, the
    served slate when the log holds it and what the round says about the logger's support
    (`online.evaluation.logged`)."""

    rounds: list[int] = field(default_factory=list)
    rows: list[IntArray] = field(default_factory=list)
    positions: list[IntArray] = field(default_factory=list)
    rewards: list[FloatArray] = field(default_factory=list)
    pscores: list[FloatArray] = field(default_factory=list)
    relevance: list[dict[int, float]] = field(default_factory=list)
    slates: list[LoggedSlate | None] = field(default_factory=list)
    support: list[RoundSupport | None] = field(default_factory=list)

    def add(self, round_index: int, rows: IntArray, positions: IntArray, rewards: FloatArray,
            pscores: FloatArray, relevance: dict[int, float], slate: LoggedSlate | None = None,
            support: RoundSupport | None = None) -> None:
        self.rounds.append(round_index)
        self.rows.append(rows)
        self.positions.append(positions)
        self.rewards.append(rewards)
        self.pscores.append(pscores)
        self.relevance.append(relevance)
        self.slates.append(slate)
        self.support.append(support)


@dataclass
class MassMatrix:
    """float64[rows, L]: an evaluated policy's position probabilities summed over the logged
    observations (row i, at each observation's position l): what the direct method weights
    the reward model with (`online.evaluation.direct_method`). Grows on demand."""

    values: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))

    def add(self, rows: IntArray, probs: FloatArray, positions: IntArray) -> None:
        """rows int64[n] of the candidates, probs float64[n, k], positions int64[j] (< k): one
        observation per position."""
        if positions.size == 0 or rows.size == 0:
            return
        need = (int(rows.max()) + 1, int(positions.max()) + 1)
        if need[0] > self.values.shape[0] or need[1] > self.values.shape[1]:
            grown = np.zeros((max(need[0], 2 * self.values.shape[0]), max(need[1], self.values.shape[1])))
            grown[: self.values.shape[0], : self.values.shape[1]] = self.values
            self.values = grown
        counts = np.bincount(positions, minlength=probs.shape[1])
        used = np.flatnonzero(counts)
        self.values[rows[:, None], used[None, :]] += probs[:, used] * counts[used][None, :]


@dataclass
class PolicyTrace:
    """One policy's side, aligned with `RoundLog`: per observation its evaluation
    probability, DR terms q(logged) and q(expected under the policy), whether its slate
    matched, its predicted CTR (NaN when the item was not a candidate); per round its slate
    (catalog rows), the prefix probabilities it gives the logged slate (None when the log
    records no prefix propensities for the round) and whether the log supports it there
    (`RoundSupport.supports`); over the log its `MassMatrix`."""

    policy: str
    version: str
    eval_probs: list[FloatArray] = field(default_factory=list)
    q_logged: list[FloatArray] = field(default_factory=list)
    q_expected: list[FloatArray] = field(default_factory=list)
    matched: list[npt.NDArray[np.bool_]] = field(default_factory=list)
    predicted: list[FloatArray] = field(default_factory=list)
    slates: list[IntArray] = field(default_factory=list)
    eval_prefix: list[FloatArray | None] = field(default_factory=list)
    supported: list[bool | None] = field(default_factory=list)
    mass: MassMatrix = field(default_factory=MassMatrix)
    unranked_rounds: int = 0
    learned_events: int = 0
    rejected_events: int = 0
    frozen: bool = False
    snapshot: bool = False
    evaluated_from: int = 0

    def add(self, eval_probs: FloatArray, q_logged: FloatArray, q_expected: FloatArray,
            matched: npt.NDArray[np.bool_], predicted: FloatArray, slate: IntArray,
            eval_prefix: FloatArray | None = None, supported: bool | None = None) -> None:
        self.eval_prefix.append(eval_prefix)
        self.supported.append(supported)
        self.eval_probs.append(eval_probs)
        self.q_logged.append(q_logged)
        self.q_expected.append(q_expected)
        self.matched.append(matched)
        self.predicted.append(predicted)
        self.slates.append(slate)

    def add_round(self, terms: PolicyRound) -> None:
        """Append one round's terms (`online.evaluation.round_terms.policy_round`)."""
        self.add(terms.eval_probs, terms.q_logged, terms.q_expected, terms.matched, terms.predicted, terms.slate_rows,
                 terms.eval_prefix, terms.supported)

    def add_unranked(self, n_observations: int, prefix_length: int | None = None, counted: bool = True) -> None:
        """A round the policy could not rank (or, counted=False, was not evaluated on):
        probability 0 for every logged observation and, when the round records prefix
        propensities, for every prefix of its slate."""
        zeros = np.zeros(n_observations)
        self.unranked_rounds += int(counted)
        self.add(zeros, zeros, zeros, np.zeros(n_observations, dtype=bool), np.full(n_observations, np.nan),
                 np.zeros(0, dtype=np.int64), None if prefix_length is None else np.zeros(prefix_length), False)
