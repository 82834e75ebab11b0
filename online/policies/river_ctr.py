"""An incremental river CTR model as a ranking policy, learned beside a linear bandit's state.

river's LogisticRegression (SGD) predicts the click probability of an exposure of item i to
user u in scenario s at slate position p (0 = top) from:
- "lin": the interaction of the user vector mu_u and the item vector x, the user's linear taste
  score x . mu_u, centred on the population's reward rate and times `score_scale` (to be of order
  1). mu_u is the posterior mean of a per-user linear model kept beside the river model: linear
  TS's sufficient statistics over the item vectors (online.policies.linear_ts, `bandit`
  hyperparameters), the user's state;
- one-hot "i=<id>" (what the text does not say about the item), "s=<name>" (the scenario) and
  "p=<position>" (position bias: learned, held at 0 when ranking).
So river learns, on the click scale, how far to trust the personal linear score, each item's own
appeal, the scenarios and the positions, while the linear sums learn every user's taste exactly
(commutative sums, no step size). The item vector is not a feature of its own: it is collinear
with "lin" through the population's part of mu_u, and with it SGD drifts (measured in
docs/results.md). Ranking uses Thompson draws of the user vector (linear TS's posterior,
`bandit.exploration`): draw d scores item i by the model with x . theta_d in "lin".

Labels come from the delayed-feedback join (online.policies.delayed_join): a click within
`window_s` seconds of event time labels the exposure 1, the window closing labels it 0. The
simulator's clicks come 1 to 61 s after the impression, so the default window is 120 s; a
feed whose clicks come later needs a longer one (every exposure waits in memory for its window).
An example's features are fixed when its exposure is learned, from the user's state before that
batch, so a click never leaks into the features of the exposure it labels.

Learning is one SGD step per labelled example, river's own (`learn_one`), and costs what the
examples touch, not the catalog: river's SGD step with L2 reads and writes only the weights of
the example's features (its learn mode masks the weights by them), so the weights live in a
persistent table by name (online.policies.weight_table: the newest state holds the live dict,
older states undo records, so every state stays as it was for whoever holds it) and each batch
runs on a fresh river model given just the weights its examples touch. The learned values are
bitwise those of one whole river model learning every example (tests/online/policies/
test_river_parts.py). Ranking reads the live dict in place. The pending exposures grow with the
window and the traffic, neither with the catalog nor with time.

The model is stored as its weights by name (never pickled): in a store with atomic batches as a
head (intercept, step count, the weights other than the items', join, population) plus one part
per item weight, written only when a batch changed it (`encode_global_parts`); elsewhere whole
(`encode_global`, whose blobs `decode_global_parts` still reads). `_write_weights` is the one
place that touches river's private weight store (tests/online/policies/test_river_ctr.py pins
river's version).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from online.codec import StateCodecError, pack_state, unpack_state
from online.policies.base import FeedbackBatch, FloatArray, Policy, RankContext, ScoreDraws
from online.policies.delayed_join import DelayedJoin, LabelledExample
from online.policies.linear_stats import LinearStats
from online.policies.linear_ts import LinearThompsonSampling, LinearTSParams
from online.policies.weight_table import Table, Weights

STATE_VERSION = 2
"""The whole state as one blob. 1: hashed user, item and user x vector features (river_ctr
revision 1, not readable by this one)."""
PARTS_VERSION = 3
"""A head blob (as version 2 without the item weights) whose item weights are stored one part
per weight: the part named by the weight's name ("i=<item id>") holds b"\x01" and the weight as
little-endian float64 (9 bytes)."""
_PART = struct.Struct("<Bd")
ITEM_PREFIX = "i="
"""The names of the per-item weights (the ones that grow with the catalog, stored in parts)."""


@dataclass(frozen=True)
class RiverCTRParams:
    """learning_rate > 0 (SGD step of every weight and the intercept), l2 >= 0, window_s > 0
    (attribution window, event-time seconds), score_scale > 0 (multiplies the centred linear
    score, in reward units, into the "lin" feature), bandit: the linear model kept beside it
    (its priors, noise and exploration). learning_rate and l2 were chosen on the simulator
    (bench/river_ctr.py --tune, docs/results.md)."""

    learning_rate: float = 0.1
    l2: float = 1e-3
    window_s: float = 120.0
    score_scale: float = 5.0
    prior_ctr: float = 0.03
    bandit: LinearTSParams = field(default_factory=LinearTSParams)

    def __post_init__(self) -> None:
        if not (self.learning_rate > 0 and self.l2 >= 0 and self.window_s > 0 and self.score_scale > 0
                and 0 < self.prior_ctr < 1):
            raise ValueError(f"invalid RiverCTRParams: {self}")


@dataclass(frozen=True)
class RiverState:
    """weights: the river model's weights by name, intercept and SGD step count (a persistent
    table: online.policies.weight_table); join: the pending delayed-feedback join; population:
    the linear model's population sums."""

    weights: Weights
    join: DelayedJoin
    population: LinearStats

    @property
    def n_iterations(self) -> int:
        return self.weights.n_iterations


def _write_weights(model: Any, weights: Mapping[str, float]) -> None:
    """Set some of a model's weights (river 0.26 keeps them in the private `_weights`; no public setter)."""
    for name, value in weights.items():
        model._weights[name] = value


class RiverCTR(Policy[RiverState, LinearStats]):
    """Thompson-sampled predicted CTR of a river model over a linear bandit's scores (module doc)."""

    name = "river_ctr"
    revision = 2
    uses_user_state = True
    stores_global_in_parts = True

    def __init__(self, params: RiverCTRParams | None = None) -> None:
        self.params = params or RiverCTRParams()
        self.bandit = LinearThompsonSampling(self.params.bandit)

    def _new_model(self) -> Any:
        from river import linear_model, optim  # imported on use: river's import costs seconds

        p = self.params
        return linear_model.LogisticRegression(
            optimizer=optim.SGD(p.learning_rate), l2=p.l2, intercept_lr=p.learning_rate,
            intercept_init=float(np.log(p.prior_ctr / (1 - p.prior_ctr))))

    def _fresh_weights(self) -> Weights:
        """Weights that start where the linear score says: the intercept at the prior CTR's
        logit (river's intercept_init), "lin" at the slope that turns a reward-scale score into
        logits there."""
        p = self.params
        return Weights({"lin": 1.0 / (p.score_scale * p.prior_ctr * (1 - p.prior_ctr))},
                       float(self._new_model().intercept), 0, ITEM_PREFIX)

    def river_model(self, state: RiverState) -> Any:
        """A river LogisticRegression holding the state's weights (O(weights): for inspection
        and tests; learning and ranking never build one of the whole model)."""
        model = self._new_model()
        table = state.weights.read()
        _write_weights(model, table.weights)
        model.intercept = table.intercept
        model.optimizer.n_iterations = table.n_iterations
        return model

    def features(self, example: LabelledExample) -> dict[str, float]:
        """river features of a labelled example whose `features` are [lin] (float64[1])."""
        out = {"lin": float(example.features[0]), f"i={example.item_id}": 1.0, f"s={example.scenario}": 1.0}
        if example.position >= 0:
            out[f"p={example.position}"] = 1.0
        return out

    def init_global(self, feature_dim: int) -> RiverState:
        return RiverState(self._fresh_weights(), DelayedJoin(self.params.window_s),
                          self.bandit.init_global(feature_dim))

    def init_user(self, feature_dim: int) -> LinearStats:
        return self.bandit.init_user(feature_dim)

    def user_vector(self, global_state: RiverState, user_state: LinearStats | None,
                    scenario: str | None = None) -> FloatArray:
        return self.bandit.user_vector(global_state.population, user_state, scenario)

    def _base(self, state: RiverState, context: RankContext) -> tuple[FloatArray, float]:
        """(float64[n] the logit at position 0 of each candidate without "lin", the weight of "lin"
        per reward unit of the linear score)."""
        table = state.weights.read()  # the live table for the newest state: no copy
        named = table.weights
        shared = table.intercept + named.get(f"s={context.scenario}", 0.0) + named.get("p=0", 0.0)
        shared -= named.get("lin", 0.0) * self.params.score_scale * _rate(state.population)
        item_bias = np.fromiter((named.get(f"i={item}", 0.0) for item in context.item_ids), dtype=np.float64,
                                count=len(context.item_ids))
        return shared + item_bias, named.get("lin", 0.0) * self.params.score_scale

    def predict(self, state: RiverState, user: LinearStats | None, context: RankContext) -> FloatArray:
        """float64[n] predicted click probability of each candidate at position 0, with the user's
        mean linear score: river's predict_proba_one on `features` (tests check equality)."""
        base, slope = self._base(state, context)
        return _sigmoid(base + slope * (context.features @ self.user_vector(state, user, context.scenario)))

    def sample_scores(
        self, global_state: RiverState, user_state: LinearStats | None, context: RankContext,
        rng: np.random.Generator, n_draws: int,
    ) -> ScoreDraws:
        linear = self.bandit.sample_scores(global_state.population, user_state, context, rng, n_draws)
        base, slope = self._base(global_state, context)
        mean = _sigmoid(base + slope * linear.mean)
        return ScoreDraws(_sigmoid(base + slope * linear.draws), mean, mean * (1 - mean) * abs(slope) * linear.std)

    def learn_examples(self, state: RiverState, examples: Sequence[LabelledExample], join: DelayedJoin,
                       population: LinearStats) -> RiverState:
        """A new state with examples learned (one SGD step each, in order); `state` is unchanged.

        river's SGD step (with l2) reads and writes only the weights of the example's features
        (its learn mode masks the weights by them), so the steps run on a fresh river model given
        just the weights the examples touch, and the new state's table changes those: O(examples)
        whatever the catalog, and bitwise the values a whole model would learn."""
        if not examples:
            return RiverState(state.weights, join, population)
        model = self._new_model()

        def step(table: Table) -> tuple[dict[str, float], float, int]:
            model.intercept, model.optimizer.n_iterations = table.intercept, table.n_iterations
            loaded: set[str] = set()
            for example in examples:
                features = self.features(example)
                _write_weights(model, {name: table.weights[name] for name in features
                                       if name not in loaded and name in table.weights})
                loaded.update(features)
                model.learn_one(features, example.label > 0)
            return model.weights, float(model.intercept), int(model.optimizer.n_iterations)

        return RiverState(state.weights.update(step), join, population)

    def _linear_scores(self, state: RiverState, users: Mapping[str, LinearStats | None],
                       batch: FeedbackBatch) -> FloatArray:
        """float64[m] the "lin" feature of each row: x . mu_u (u's scenario), before this batch, scaled."""
        out = np.zeros(len(batch))
        user_ids, scenarios = batch.user_ids, batch.scenarios
        vectors: dict[tuple[str, str], FloatArray] = {}
        for row in np.flatnonzero(batch.exposures).tolist():
            key = (user_ids[row], scenarios[row])
            vector = vectors.get(key)
            if vector is None:
                vector = vectors[key] = self.user_vector(state, users.get(key[0]), key[1])
            out[row] = float(batch.features[row] @ vector)
        scores: FloatArray = self.params.score_scale * (out - _rate(state.population))
        return scores

    def learn(
        self, global_state: RiverState, user_states: Mapping[str, LinearStats | None], batch: FeedbackBatch
    ) -> tuple[RiverState, dict[str, LinearStats | None]]:
        lin = self._linear_scores(global_state, user_states, batch)[:, None]
        join = global_state.join.copy()
        examples = join.consume(replace(batch, features=lin))
        population, users = self.bandit.learn(global_state.population, user_states, batch)
        return self.learn_examples(global_state, examples, join, population), users

    def _head(self, state: RiverState, version: int, names: Sequence[str]) -> bytes:
        """The state's blob with the weights of `names` (all of them: a whole blob, version 2;
        the shared ones: a head, version 3)."""
        table = state.weights.read()
        join_meta, join_arrays = state.join.to_columns()
        meta = {"intercept": table.intercept, "n_iterations": table.n_iterations, "names": list(names),
                "join": join_meta}
        population = np.frombuffer(self.bandit.encode_global(state.population), dtype=np.uint8)
        weights = table.weights
        arrays: dict[str, npt.NDArray[Any]] = {
            "values": np.fromiter((weights[name] for name in names), dtype=np.float64, count=len(names)),
            "population": population, **{f"join_{k}": v for k, v in join_arrays.items()}}
        return pack_state("river_ctr.model", version, meta, arrays)

    def encode_global(self, state: RiverState) -> bytes:
        return self._head(state, STATE_VERSION, list(state.weights.read().weights))

    def decode_global(self, blob: bytes) -> RiverState:
        return self._decode_head(blob, STATE_VERSION, ())

    def encode_global_parts(
        self, state: RiverState, stored: RiverState | None
    ) -> tuple[bytes, list[tuple[str, bytes | None]]]:
        """(head, parts) bringing a store that holds `stored` in parts to `state`: the item
        weights the learning step from `stored` to `state` changed (none when it changed no
        weight), else every item weight. The head (intercept, step count, the other weights,
        join, population) is written whole: it grows with the scenarios, positions and
        pending exposures, not the catalog."""
        weights = state.weights
        if stored is not None and weights.version_id == stored.weights.version_id:
            names: Iterable[str] = ()
        elif stored is not None and weights.derived_from == stored.weights.version_id:
            names = weights.changed()
        else:
            names = weights.read().weights
        table = weights.read()
        values = table.weights
        parts: list[tuple[str, bytes | None]] = [(name, _PART.pack(1, values[name])) for name in names
                                                 if name.startswith(ITEM_PREFIX)]
        return self._head(state, PARTS_VERSION, list(table.shared)), parts

    def decode_global_parts(self, head: bytes | None, parts: Iterable[tuple[str, bytes]]) -> RiverState:
        """The state from its head and parts; a whole (version 2) blob as the head is read alone.
        No head: StateCodecError (a new state needs the feature dimension: init_global)."""
        if head is None:
            raise StateCodecError("river_ctr.model: no head stored; start a new state with init_global")
        return self._decode_head(head, PARTS_VERSION, parts)

    def _decode_head(self, blob: bytes, layout: int, parts: Iterable[tuple[str, bytes]]) -> RiverState:
        """Decode a whole blob (version 2), or when `layout` is PARTS_VERSION a head (version 3)
        with its item weights from `parts` (an empty part is a deleted one)."""
        decoded = unpack_state(blob, "river_ctr.model", max_version=PARTS_VERSION)
        if decoded.version < STATE_VERSION:
            raise StateCodecError(f"river_ctr.model state version {decoded.version} is from revision 1 "
                                  "(hashed features): not readable by this model; start it afresh")
        if decoded.version > layout:
            raise StateCodecError("river_ctr.model: this head names a state stored in parts "
                                  "(read it with decode_global_parts)")
        names, values = decoded.meta.get("names"), decoded.arrays.get("values")
        population = decoded.arrays.get("population")
        if not isinstance(names, list) or values is None or values.shape != (len(names),) or population is None:
            raise StateCodecError("river_ctr.model: weight names and values do not match, or no population")
        weights = dict(zip(names, values.tolist(), strict=True))
        if decoded.version == PARTS_VERSION:
            weights.update(_item_weights(parts))
        join_arrays = {k[5:]: v for k, v in decoded.arrays.items() if k.startswith("join_")}
        try:
            table = Weights(weights, float(decoded.meta["intercept"]), int(decoded.meta["n_iterations"]),
                            ITEM_PREFIX)
            join = DelayedJoin.from_columns(decoded.meta["join"], join_arrays)
        except (KeyError, TypeError, ValueError, IndexError, AssertionError) as error:
            raise StateCodecError(f"river_ctr.model: malformed intercept, step count or join: {error!r}") from error
        return RiverState(table, join, self.bandit.decode_global(population.tobytes()))

    def encode_user(self, state: LinearStats) -> bytes:
        return self.bandit.encode_user(state)

    def decode_user(self, blob: bytes) -> LinearStats:
        return self.bandit.decode_user(blob)

    def check_invariants(self, global_state: RiverState, user_state: LinearStats | None) -> None:
        table = global_state.weights.read()
        values = np.fromiter(table.weights.values(), dtype=np.float64, count=len(table.weights))
        if not (np.all(np.isfinite(values)) and np.isfinite(table.intercept)):
            raise ValueError("river model has non-finite weights")
        self.bandit.check_invariants(global_state.population, user_state)


def _item_weights(parts: Iterable[tuple[str, bytes]]) -> dict[str, float]:
    """The item weights stored one part each (see PARTS_VERSION); empty parts are deleted ones."""
    out: dict[str, float] = {}
    for name, blob in parts:
        if not blob:
            continue
        if len(blob) != _PART.size or blob[0] != 1 or not name.startswith(ITEM_PREFIX):
            raise StateCodecError(f"river_ctr.model: part {name!r} is not a version-1 item weight of "
                                  f"{_PART.size} bytes")
        out[name] = _PART.unpack(blob)[1]
    return out


def _rate(population: LinearStats) -> float:
    """The population's reward per exposure (0 before any exposure): the centre of the "lin" feature."""
    return population.reward_total / population.n_exposures if population.n_exposures > 0 else 0.0


def _sigmoid(logits: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(logits, -500, 500)))
    return out
