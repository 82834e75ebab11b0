"""An incremental river CTR model as a ranking policy.

river's LogisticRegression (SGD) over hashed features of the user, the item, the
scenario and the position, plus the item's feature vector and its product with the user
(a per-user linear taste, learned by SGD). It learns from labelled examples produced by
the delayed-feedback join (online.policies.delayed_join) and ranks by predicted click probability at the
top position (position is learned as a bias and held fixed when ranking). Exploration is
epsilon-greedy over slates. The model is stored as its weights (never pickled); its state is
a persistent version of one live model and join (online.policies.river_state), so that
learning and storing a batch cost what it changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from online.policies.base import FeedbackBatch, FloatArray, Policy, RankContext, ScoreDraws
from online.policies.delayed_join import DelayedJoin, LabelledExample
from online.policies.river_state import RiverState, decode_parts, decode_whole


@dataclass(frozen=True)
class RiverCTRParams:
    """learning_rate > 0, l2 >= 0, epsilon in [0, 1], window_s > 0, n_features a power of 2."""

    learning_rate: float = 0.05
    l2: float = 1e-5
    epsilon: float = 0.05
    window_s: float = 1800.0
    n_features: int = 2**18
    hash_seed: int = 7

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.l2 < 0 or self.window_s <= 0:
            raise ValueError(f"invalid RiverCTRParams: {self}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")


class RiverCTR(Policy[RiverState, None]):
    """Greedy-by-predicted-CTR with epsilon-random slates (see module doc)."""

    name = "river_ctr"
    stores_global_in_parts = True

    def __init__(self, params: RiverCTRParams | None = None) -> None:
        self.params = params or RiverCTRParams()
        from river import preprocessing  # imported on use: river's import costs seconds

        self._hasher = preprocessing.FeatureHasher(
            n_features=self.params.n_features, seed=self.params.hash_seed
        )
        self._slots: dict[str, tuple[int, float]] = {}

    def _features(
        self, user_id: str, item_id: str, scenario: str, position: int, x: FloatArray
    ) -> dict[int, float]:
        raw: dict[str, float] = {
            f"u={user_id}": 1.0, f"i={item_id}": 1.0, f"s={scenario}": 1.0, f"p={position}": 1.0,
        }
        for j, value in enumerate(x.tolist()):
            raw[f"v{j}"] = value
            raw[f"u={user_id}*v{j}"] = value
        hashed: dict[int, float] = self._hasher.transform_one(raw)  # type: ignore[no-untyped-call]
        return hashed

    def _model(self, state: RiverState) -> Any:
        """The river model of a state (for predictions; online.policies.river_state)."""
        return state.model

    def _new_model(self) -> Any:
        from river import linear_model, optim

        return linear_model.LogisticRegression(optimizer=optim.SGD(self.params.learning_rate), l2=self.params.l2)

    def init_global(self, feature_dim: int) -> RiverState:
        return RiverState(self._new_model(), DelayedJoin(self.params.window_s))

    def _slot(self, name: str) -> tuple[int, float]:
        """(hashed index, sign) of a feature name, as river's FeatureHasher maps it."""
        slot = self._slots.get(name)
        if slot is None:
            ((index, sign),) = self._hasher.transform_one({name: 1.0}).items()  # type: ignore[no-untyped-call]
            slot = self._slots[name] = (int(index), float(sign))
        return slot

    def _weight(self, weights: dict[int, float], name: str) -> float:
        index, sign = self._slot(name)
        return sign * weights.get(index, 0.0)

    def predict(self, state: RiverState, context: RankContext) -> FloatArray:
        """float64[n] predicted click probability of each candidate at position 0.

        Vectorised form of river's LogisticRegression.predict_proba_one on the hashed
        features of `_features`: the logit is linear, so the user- and vector-dependent
        weights fold into one vector a (a_j = w[v_j] + w[u*v_j]) and the logit of item i is
        intercept + w[u] + w[s] + w[p=0] + w[i] + x_i . a (tests check equality with river).
        """
        weights = state.weights
        user = context.user_id
        dim = context.features.shape[1]
        taste = np.array(
            [self._weight(weights, f"v{j}") + self._weight(weights, f"u={user}*v{j}") for j in range(dim)]
        )
        shared = (
            state.intercept + self._weight(weights, f"u={user}")
            + self._weight(weights, f"s={context.scenario}") + self._weight(weights, "p=0")
        )
        item_bias = np.array([self._weight(weights, f"i={item}") for item in context.item_ids])
        logits = shared + item_bias + context.features @ taste
        probabilities: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(logits, -500, 500)))
        return probabilities

    def sample_scores(
        self, global_state: RiverState, user_state: None, context: RankContext,
        rng: np.random.Generator, n_draws: int,
    ) -> ScoreDraws:
        mean = self.predict(global_state, context)
        n = len(mean)
        draws = mean + 1e-9 * rng.random((n_draws, n))
        explore = rng.random(n_draws) < self.params.epsilon
        draws[explore] = rng.random((int(explore.sum()), n))
        return ScoreDraws(draws, mean, np.zeros(n))

    def _example_features(self, example: LabelledExample) -> dict[int, float]:
        return self._features(example.user_id, example.item_id, example.scenario, example.position, example.features)

    def learn(
        self, global_state: RiverState, user_states: Mapping[str, None], batch: FeedbackBatch
    ) -> tuple[RiverState, dict[str, None]]:
        """The batch joined, and every example it labels learned (one SGD step each, in order);
        a new version of the state that costs what the batch changes (river_state)."""
        return global_state.learn(lambda join: join.consume(batch), self._example_features), {}

    def encode_global(self, state: RiverState) -> bytes:
        return state.encode_whole()

    def decode_global(self, blob: bytes) -> RiverState:
        return decode_whole(blob, self._new_model())

    def encode_global_parts(
        self, state: RiverState, stored: RiverState | None
    ) -> tuple[bytes, list[tuple[str, bytes | None]]]:
        return state.encode_parts(stored)

    def decode_global_parts(self, head: bytes | None, parts: Iterable[tuple[str, bytes]]) -> RiverState:
        if head is None:
            return self.init_global(0)
        return decode_parts(head, iter(parts), self._new_model())

    def check_invariants(self, global_state: RiverState, user_state: None) -> None:
        values = np.fromiter(global_state.weights.values(), dtype=np.float64, count=len(global_state.weights))
        if not (np.all(np.isfinite(values)) and np.isfinite(global_state.intercept)):
            raise ValueError("river model has non-finite weights")
