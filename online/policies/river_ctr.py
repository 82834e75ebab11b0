"""An incremental river CTR model as a ranking policy.

river's LogisticRegression (SGD) over hashed features of the user, the item, the
scenario and the position, plus the item's feature vector and its product with the user
(a per-user linear taste, learned by SGD). It learns from labelled examples produced by
the delayed-feedback join (online.policies.delayed_join) and ranks by predicted click probability at the
top position (position is learned as a bias and held fixed when ranking). Exploration is
epsilon-greedy over slates. The model is stored as its weights (never pickled).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from online.codec import pack_state, unpack_state
from online.policies.base import FeedbackBatch, FloatArray, Policy, RankContext, ScoreDraws
from online.policies.delayed_join import DelayedJoin, LabelledExample


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


@dataclass(frozen=True)
class RiverState:
    """weights: hashed feature -> weight; intercept; SGD step count; the pending join."""

    weights: dict[int, float]
    intercept: float
    n_iterations: int
    join: DelayedJoin
    model: Any = field(default=None, compare=False, repr=False)


class RiverCTR(Policy[RiverState, None]):
    """Greedy-by-predicted-CTR with epsilon-random slates (see module doc)."""

    name = "river_ctr"

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
        """The river model of a state, built once per (immutable) state and cached."""
        if state.model is None:
            object.__setattr__(state, "model", self._build(state))
        return state.model

    def _build(self, state: RiverState) -> Any:
        from river import linear_model, optim

        model = linear_model.LogisticRegression(
            optimizer=optim.SGD(self.params.learning_rate), l2=self.params.l2
        )
        for key, value in state.weights.items():
            model._weights[key] = value
        model.intercept = state.intercept
        model.optimizer.n_iterations = state.n_iterations
        return model

    def init_global(self, feature_dim: int) -> RiverState:
        return RiverState({}, 0.0, 0, DelayedJoin(self.params.window_s))

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

    def learn_examples(self, state: RiverState, examples: Sequence[LabelledExample], join: DelayedJoin) -> RiverState:
        """A new state with examples learned (one SGD step each, in order)."""
        model = self._build(state)
        for example in examples:
            x = self._features(example.user_id, example.item_id, example.scenario, example.position, example.features)
            model.learn_one(x, example.label > 0)
        return RiverState(
            {int(k): float(v) for k, v in dict(model._weights).items()},
            float(model.intercept), int(model.optimizer.n_iterations), join, model,
        )

    def learn(
        self, global_state: RiverState, user_states: Mapping[str, None], batch: FeedbackBatch
    ) -> tuple[RiverState, dict[str, None]]:
        join = global_state.join.copy()
        examples = join.consume(batch)
        return self.learn_examples(global_state, examples, join), {}

    def encode_global(self, state: RiverState) -> bytes:
        keys = np.fromiter(state.weights.keys(), dtype=np.int64, count=len(state.weights))
        values = np.fromiter(state.weights.values(), dtype=np.float64, count=len(state.weights))
        join_meta, join_arrays = state.join.to_columns()
        meta = {"intercept": state.intercept, "n_iterations": state.n_iterations, "join": join_meta}
        arrays = {"keys": keys, "values": values, **{f"join_{k}": v for k, v in join_arrays.items()}}
        return pack_state("river_ctr.model", 1, meta, arrays)

    def decode_global(self, blob: bytes) -> RiverState:
        decoded = unpack_state(blob, "river_ctr.model", max_version=1)
        weights = dict(zip(decoded.arrays["keys"].tolist(), decoded.arrays["values"].tolist(), strict=True))
        join_arrays = {k[5:]: v for k, v in decoded.arrays.items() if k.startswith("join_")}
        join = DelayedJoin.from_columns(decoded.meta["join"], join_arrays)
        return RiverState(weights, float(decoded.meta["intercept"]), int(decoded.meta["n_iterations"]), join)

    def check_invariants(self, global_state: RiverState, user_state: None) -> None:
        values = np.fromiter(global_state.weights.values(), dtype=np.float64, count=len(global_state.weights))
        if not (np.all(np.isfinite(values)) and np.isfinite(global_state.intercept)):
            raise ValueError("river model has non-finite weights")
