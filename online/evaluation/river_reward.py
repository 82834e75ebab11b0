"""A contextual reward model for doubly robust evaluation: a river LogisticRegression over the
round's user, fitted online on the log (`DriverConfig.reward_model = "river"`).

q(item i, position p | user u) = sigmoid(b + w_ctr * ctr(i, p) + w_taste * taste_u(i)), with
- "ctr": the logit of `PositionCTRModel`'s smoothed CTR of (i, p), fitted on the same log (the
  item's own appeal and the position bias, learned by counts: what the "log_ctr" model says);
- "taste": the user's linear taste score relative to the population's, x_i . (mu_u - theta_pop),
  times `score_scale` (of order 1). mu_u is the posterior mean of a per-user linear model kept
  beside the river model, linear TS's sums over the catalog vectors plus a constant 1 (the user's
  own click rate), shrunk to the population's theta_pop (`online.policies.linear_ts`, `bandit`
  priors): 0 for a user the log has not seen, so q starts as the "log_ctr" model's.
So river learns, on the click scale, how far to trust the counts and the personal score (the same
signals as the policy `online.policies.river_ctr`: the user's linear taste score, the item, the
position; the item and position enter through the counts, which learn them faster than one-hot
SGD weights do: bench/reward_model_fit.py).

Predict then update, like `PositionCTRModel`: `predict` reads the state as it stands, `update`
folds a round's shown items in (their features from the state *before* the round, then one SGD
step each in position order, then the counts and the linear sums), so a round's prediction never
depends on its own reward. Deterministic given the log (no randomness at all). Prediction is
vectorised over the candidates and positions from river's weights; learning is river's own
`learn_one`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from online.evaluation.reward_model import PositionCTRModel
from online.events import RankRequest
from online.policies.linear_stats import LinearStats
from online.policies.linear_ts import LinearThompsonSampling, LinearTSParams

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Vectors = Callable[[], npt.NDArray[np.float32]]
"""() -> float32[n_rows, d]: the catalog's item vectors by row, as they stand."""


@dataclass(frozen=True)
class RiverRewardParams:
    """learning_rate > 0 (SGD step of every weight and the intercept), l2 >= 0, score_scale > 0
    (multiplies the user's linear score relative to the population's, reward units, into "taste"),
    taste_weight >= 0 (the starting weight of "taste"), bandit: the per-user linear model's priors
    and noise. learning_rate and taste_weight were chosen on the simulator (bench/reward_model_fit.py)."""

    learning_rate: float = 0.01
    l2: float = 0.0
    score_scale: float = 5.0
    taste_weight: float = 1.0
    bandit: LinearTSParams = field(default_factory=LinearTSParams)

    def __post_init__(self) -> None:
        if not (self.learning_rate > 0 and self.l2 >= 0 and self.score_scale > 0 and self.taste_weight >= 0):
            raise ValueError(f"invalid RiverRewardParams: {self}")


class RiverRewardModel:
    """Online contextual q(item row, position | the request's user); see the module doc.

    Args:
        vectors: the catalog's item vectors by row (read on every call: the catalog grows).
        params: learning rate, L2, scale of the linear score, prior CTR, linear priors.
    """

    def __init__(self, vectors: Vectors, params: RiverRewardParams | None = None) -> None:
        from river import linear_model, optim  # imported on use: river's import costs seconds

        self.params = p = params or RiverRewardParams()
        self._vectors = vectors
        self._bandit = LinearThompsonSampling(p.bandit)
        self._model = linear_model.LogisticRegression(
            optimizer=optim.SGD(p.learning_rate), l2=p.l2, intercept_lr=p.learning_rate, intercept_init=0.0)
        self._weights: dict[str, float] = {"ctr": 1.0, "taste": p.taste_weight}
        self._load({**self._weights})
        self.counts = PositionCTRModel()
        self._population: LinearStats | None = None
        self._users: dict[str, LinearStats] = {}

    def _load(self, weights: dict[str, float]) -> None:
        """Give river's model these weights (river 0.26 has no public setter; see river_ctr)."""
        for name, value in weights.items():
            self._model._weights[name] = value

    def _features(self, rows: IntArray) -> FloatArray:
        """float64[len(rows), d + 1] the rows' catalog vectors with a constant 1 appended."""
        vectors = np.asarray(self._vectors(), dtype=np.float64)[rows]
        return np.hstack([vectors, np.ones((len(rows), 1))])

    def _taste(self, x: FloatArray, request: RankRequest | None) -> FloatArray:
        """float64[m] the "taste" feature of each row of x: score_scale * x . (mu_u - theta_pop)
        (0 without a request or for a user the log has not shown anything yet)."""
        population = self._population
        user = None if population is None or request is None else self._users.get(request.user_id)
        if population is None or user is None:
            return np.zeros(x.shape[0])
        deviation = self._bandit.posterior(population, user)[0] - self._bandit.population_mean(population)
        out: FloatArray = self.params.score_scale * (x @ deviation)
        return out

    def _ctr_logit(self, rows: IntArray, n_positions: int) -> FloatArray:
        """float64[len(rows), n_positions] the "ctr" feature: logit of the counts' smoothed CTR."""
        q = self.counts.predict(rows, n_positions)
        out: FloatArray = np.log(q / (1.0 - q))
        return out

    def predict(self, rows: IntArray, n_positions: int, request: RankRequest | None = None) -> FloatArray:
        """float64[len(rows), n_positions]: q(item row, position) for positions 0..n-1 for the
        request's user (None: the population's). Reads only the state as it stands."""
        if rows.size == 0:
            return np.zeros((0, n_positions))
        w = self._weights
        taste = self._taste(self._features(rows), request)
        logits = (float(self._model.intercept) + w.get("ctr", 0.0) * self._ctr_logit(rows, n_positions)
                  + w.get("taste", 0.0) * taste[:, None])
        out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(logits, -500, 500)))
        return out

    def update(self, rows: IntArray, positions: IntArray, rewards: FloatArray,
               request: RankRequest | None = None) -> None:
        """Fold in one round's shown items: int64[m] rows, int64[m] positions (>= 0), float64[m]
        rewards (> 0 is a click), for the request's user (None: the population's only)."""
        if rows.size == 0:
            return
        if positions.min() < 0:
            raise ValueError("positions: must be >= 0")
        x = self._features(rows)
        taste = self._taste(x, request)
        ctr = self._ctr_logit(rows, int(positions.max()) + 1)[np.arange(rows.size), positions]
        for features, reward in zip(zip(ctr.tolist(), taste.tolist(), strict=True), rewards.tolist(), strict=True):
            self._model.learn_one({"ctr": features[0], "taste": features[1]}, reward > 0)
        self._weights = self._model.weights
        self.counts.update(rows, positions, rewards)
        gram = x.T @ x
        increment = LinearStats.from_gram(gram, x.T @ rewards, float(rows.size), float(rewards.sum()))
        population = self._population or LinearStats.zeros(x.shape[1])
        self._population = population.plus(increment.gram_upper, increment.response, increment.n_exposures,
                                           increment.reward_total)
        if request is not None:
            user = self._users.get(request.user_id) or LinearStats.zeros(x.shape[1])
            self._users[request.user_id] = user.plus(increment.gram_upper, increment.response,
                                                     increment.n_exposures, increment.reward_total)
