"""What every policy shares: the rank context, score draws, feedback batches, the base class.

A policy is a small object holding hyperparameters only. Learned state lives in explicit
state values (frozen dataclasses of numpy arrays) passed in and returned:

    draws = policy.sample_scores(global_state, user_state, context, rng, n_draws)
    global_state, user_states = policy.learn(global_state, user_states, batch)

Global state is shared by all users (population posterior, per-item counts, a model);
user state is per user (None for policies without one). Both have a versioned codec.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

G = TypeVar("G")
U = TypeVar("U")


@dataclass(frozen=True)
class RankContext:
    """One ranking call: candidates for a user in a scenario.

    Attributes:
        user_id: who is served.
        scenario: where (feed, ad slot...).
        item_ids: candidate ids, n of them.
        features: float[n, D] feature vectors of the candidates (see online.features), in
            the policy's `score_dtype` when the engine builds them (float64 unless the
            policy scores in single precision).
        time_s: request time in seconds since the epoch (UTC).
    """

    user_id: str
    scenario: str
    item_ids: Sequence[str]
    features: FloatArray
    time_s: float = 0.0


class ScoreDraws:
    """Sampled scores of n candidates under m independent policy draws (immutable).

    Attributes:
        draws: float[m, n] (float64, or float32 where a policy scores in single precision:
            linear TS); row 0 is the draw the slate is built from, every row is an
            independent draw of the policy's randomised ranking (for propensities).
        mean: float[n] posterior mean of each candidate's expected reward (float64, or the
            features' precision: online.features).
        std: float64[n] posterior standard deviation of that expectation (>= 0).

    A policy gives `std`, or `std_of`: a function of candidate indices int64[j] -> their
    std float64[j], for a std that costs as much as the draws to compute for every
    candidate while a slate reports it for its k items only (`std_at`); `std` is then
    computed for all n on first read.
    """

    __slots__ = ("_std", "_std_of", "draws", "mean")
    draws: FloatArray
    mean: FloatArray
    _std: FloatArray | None
    _std_of: Callable[[IntArray], FloatArray] | None

    def __init__(
        self, draws: FloatArray, mean: FloatArray, std: FloatArray | None = None, *,
        std_of: Callable[[IntArray], FloatArray] | None = None,
    ) -> None:
        if (std is None) == (std_of is None):
            raise ValueError("ScoreDraws: give exactly one of std and std_of")
        object.__setattr__(self, "draws", draws)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "_std", std)
        object.__setattr__(self, "_std_of", std_of)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ScoreDraws is immutable (cannot set {name!r})")

    @property
    def std(self) -> FloatArray:
        """float64[n] the std of every candidate (computed once when given as `std_of`)."""
        std = self._std
        if std is None:
            assert self._std_of is not None
            std = self._std_of(np.arange(self.mean.shape[0]))
            object.__setattr__(self, "_std", std)
        return std

    def std_at(self, indices: IntArray) -> FloatArray:
        """float64[j] the std of the candidates at `indices` int64[j]."""
        if self._std is not None or self._std_of is None:
            return self.std[indices]
        return self._std_of(indices)

    def __repr__(self) -> str:
        return f"ScoreDraws(draws={self.draws!r}, mean={self.mean!r}, std={self.std!r})"


@dataclass(frozen=True)
class FeedbackBatch:
    """m feedback rows in log order. A row is an exposure (an item shown at a position:
    exposure 1, reward 0) or a reward (a click on an item: exposure 0, reward r).

    Attributes:
        users: the U distinct user ids of the batch; user_index: int64[m] into users.
        item_ids, request_ids, scenarios: tuples of m strings.
        positions: int64[m] position of the item in its slate (0 = top; -1 unknown).
        exposures: float64[m] in {0, 1}.
        rewards: float64[m] >= 0.
        features: float64[m, D] the item's feature vector in its request's context.
        times_s: float64[m] event times, seconds since the epoch (UTC).
    """

    users: tuple[str, ...]
    user_index: IntArray
    item_ids: tuple[str, ...]
    request_ids: tuple[str, ...]
    scenarios: tuple[str, ...]
    positions: IntArray
    exposures: FloatArray
    rewards: FloatArray
    features: FloatArray
    times_s: FloatArray

    def __len__(self) -> int:
        return len(self.item_ids)

    def __post_init__(self) -> None:
        m = len(self.item_ids)
        for name in ("request_ids", "scenarios"):
            if len(getattr(self, name)) != m:
                raise ValueError(f"{name}: expected {m} entries, got {len(getattr(self, name))}")
        for name in ("user_index", "positions", "exposures", "rewards", "times_s"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"{name}: expected shape ({m},), got {getattr(self, name).shape}")
        if self.features.ndim != 2 or self.features.shape[0] != m:
            raise ValueError(f"features: expected shape ({m}, D), got {self.features.shape}")
        if m and (self.user_index.min() < 0 or self.user_index.max() >= len(self.users)):
            raise ValueError("user_index: out of range of users")

    @property
    def user_ids(self) -> tuple[str, ...]:
        """The user id of each row (m strings)."""
        users = self.users
        return tuple(users[index] for index in self.user_index.tolist())

    @staticmethod
    def from_rows(
        user_ids: Sequence[str], item_ids: Sequence[str], request_ids: Sequence[str],
        scenarios: Sequence[str], positions: IntArray, exposures: FloatArray,
        rewards: FloatArray, features: FloatArray, times_s: FloatArray,
    ) -> FeedbackBatch:
        """Build a batch from per-row user ids (factorised into users + user_index)."""
        codes: dict[str, int] = {}
        index = np.fromiter(
            (codes.setdefault(user, len(codes)) for user in user_ids), dtype=np.int64,
            count=len(user_ids),
        )
        return FeedbackBatch(
            tuple(codes), index, tuple(item_ids), tuple(request_ids), tuple(scenarios),
            positions, exposures, rewards, features, times_s,
        )

    def select(self, rows: IntArray) -> FeedbackBatch:
        """The sub-batch of the given rows, in the given order."""
        picked = rows.tolist()
        return FeedbackBatch(
            self.users, self.user_index[rows], tuple(self.item_ids[r] for r in picked),
            tuple(self.request_ids[r] for r in picked), tuple(self.scenarios[r] for r in picked),
            self.positions[rows], self.exposures[rows], self.rewards[rows], self.features[rows],
            self.times_s[rows],
        )


def hyperparameter_hash(params: object) -> str:
    """Short stable hash of a hyperparameter dataclass (part of the policy version)."""
    payload = asdict(params) if is_dataclass(params) and not isinstance(params, type) else {}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


class Policy(ABC, Generic[G, U]):
    """Base class of every ranking policy. Subclasses set `name` and `params`.

    `version` = name, code revision and hyperparameter hash: it goes into every slate so
    that replays know which policy produced which propensities.
    """

    name: ClassVar[str]
    revision: ClassVar[int] = 1
    uses_user_state: ClassVar[bool] = False
    score_dtype: ClassVar[type[np.floating]] = np.float64  # RankContext.features' precision
    stores_global_in_parts: ClassVar[bool] = False
    """True when encode_global_parts / decode_global_parts store the global state in parts."""
    params: Any

    @property
    def version(self) -> str:
        cached: tuple[object, str] | None = self.__dict__.get("_version")
        if cached is None or cached[0] is not self.params:  # params are immutable; hashing costs ~0.2 ms
            cached = (self.params, f"{self.name}-r{self.revision}-{hyperparameter_hash(self.params)}")
            self.__dict__["_version"] = cached
        return cached[1]

    @abstractmethod
    def init_global(self, feature_dim: int) -> G:
        """Fresh global state for D-dimensional features."""

    def init_user(self, feature_dim: int) -> U | None:
        """Fresh state of an unseen user (None for policies without user state)."""
        return None

    def unlearn(self, global_state: G, user_state: U | None) -> G:
        """The global state without what `user_state` contributed to it (right to be
        forgotten). Default: unchanged, for policies whose global state does not decompose
        by user."""
        return global_state

    @abstractmethod
    def sample_scores(
        self,
        global_state: G,
        user_state: U | None,
        context: RankContext,
        rng: np.random.Generator,
        n_draws: int,
    ) -> ScoreDraws:
        """m = n_draws independent score draws over the context's candidates."""

    @abstractmethod
    def learn(
        self, global_state: G, user_states: Mapping[str, U | None], batch: FeedbackBatch
    ) -> tuple[G, dict[str, U | None]]:
        """Fold a batch in; returns the new global state and the new states of the users
        named in the batch (user_states must hold every user of the batch; a missing user
        or None means unseen). Inputs are not mutated."""

    def user_vector(self, global_state: G, user_state: U | None, scenario: str | None = None) -> FloatArray | None:
        """float64[D] the user's mean preference vector for candidate retrieval in `scenario`
        (as the policy scores that scenario; None: the part every scenario shares), or None."""
        return None

    def user_evidence(self, user_state: U | None) -> float:
        """How much this user's own history says, in exposures (0: nothing, a cold user; what
        a request's text is weighed against, see online/request_text.py)."""
        return 0.0

    @abstractmethod
    def encode_global(self, state: G) -> bytes: ...

    @abstractmethod
    def decode_global(self, blob: bytes) -> G: ...

    def encode_global_parts(
        self, state: G, stored: G | None
    ) -> tuple[bytes, list[tuple[str, bytes | None]]] | None:
        """For a global state that grows with the catalog, stored as a head and one part per
        piece (an arm, say): (head blob, [(part name, blob or None to delete it)]) with the
        parts that differ from `stored` (the version the store holds; None: unknown, every
        part), so that a store is written only what changed. None (the default): the state
        is one blob (encode_global)."""
        return None

    def decode_global_parts(self, head: bytes | None, parts: Iterable[tuple[str, bytes]]) -> G:
        """The global state from what encode_global_parts stored (or a whole encode_global
        blob as the head; parts are then ignored; an empty part is a deleted one); a new one
        when head is None."""
        raise TypeError(f"{self.name} stores its global state as one blob")

    def encode_user(self, state: U) -> bytes:
        raise TypeError(f"{self.name} keeps no user state")

    def decode_user(self, blob: bytes) -> U:
        raise TypeError(f"{self.name} keeps no user state")

    def encode_users(self, states: Sequence[U]) -> list[bytes]:
        """encode_user of each state (a policy may do it for all at once)."""
        return [self.encode_user(state) for state in states]

    def decode_users(self, blobs: Sequence[bytes]) -> list[U]:
        """decode_user of each blob (a policy may do it for all at once)."""
        return [self.decode_user(blob) for blob in blobs]

    @abstractmethod
    def check_invariants(self, global_state: G, user_state: U | None) -> None:
        """Raise ValueError when a state breaks the policy's invariants."""
