"""Simulated users: latent tastes over attribute values, Zipf-like activity, drift.

A user's weight on an attribute value is the population taste for it (shared by all
users, so population-level learning helps) plus a sparse personal part: a few liked
values per attribute (positive), a few disliked ones (negative), small noise elsewhere.
The relevance of item i for user u is

    sigmoid(bias + sum over attributes a of W[u, value_a(i)] + quality[i])

Drift: every step adds independent N(0, scale^2) noise to every user weight (a seeded
random walk), so tastes move slowly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from online.simulation.catalog import VOCABULARIES, n_values, value_offsets


def user_id(index: int) -> str:
    """User id of user `index`: "u0000", "u0001", ..."""
    return f"u{index:04d}"


@dataclass(frozen=True)
class TasteConfig:
    """How users' tastes are drawn (all in logit units).

    bias: shared logit offset (sets the overall click rate); population_scale: std of the
    shared taste per attribute value; likes / dislikes: liked / disliked values per
    attribute (ATTRIBUTES order: category, colour, material, style, brand); like_strength,
    dislike_strength: mean size of a like / dislike (std 0.3); noise_scale: std of the
    personal weight on every other value; quality_scale: std of item quality (a logit offset
    per item, shared by all users); quality_in_text: whether item descriptions name the item's
    quality quintile (`catalog.QUALITY_PHRASES`; False, the default: quality is carried by no
    text, so only per-item learning finds it); activity_exponent: user u's share of requests is
    proportional to rank**-exponent.
    """

    bias: float = -2.6
    population_scale: float = 0.2
    likes: tuple[int, int, int, int, int] = (2, 2, 1, 1, 2)
    dislikes: tuple[int, int, int, int, int] = (2, 1, 1, 1, 1)
    like_strength: float = 1.0
    dislike_strength: float = 1.2
    noise_scale: float = 0.1
    quality_scale: float = 0.3
    activity_exponent: float = 1.0
    quality_in_text: bool = False

    def __post_init__(self) -> None:
        for name in ("population_scale", "like_strength", "dislike_strength", "noise_scale", "quality_scale",
                     "activity_exponent"):
            if getattr(self, name) < 0:
                raise ValueError(f"TasteConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("likes", "dislikes"):
            counts: tuple[int, ...] = getattr(self, name)
            if len(counts) != len(VOCABULARIES) or min(counts) < 0:
                raise ValueError(f"TasteConfig.{name} must be {len(VOCABULARIES)} counts >= 0, got {counts}")
        for attribute, vocab in enumerate(VOCABULARIES):
            if self.likes[attribute] + self.dislikes[attribute] > len(vocab):
                raise ValueError(
                    f"TasteConfig.likes: likes + dislikes exceed the {len(vocab)} values of attribute {attribute}"
                )


class Population:
    """All users' tastes and activity; mutable only through `drift` and `replace_tastes`.

    weights: float64[n_users, n_values()] weight of each user on each attribute value
    (columns from `catalog.value_columns`); activity: float64[n_users] share of requests.
    """

    def __init__(self, n_users: int, config: TasteConfig, rng: np.random.Generator) -> None:
        if n_users < 1:
            raise ValueError(f"n_users must be >= 1, got {n_users}")
        self.config = config
        shared = rng.normal(0.0, config.population_scale, size=n_values())
        personal = rng.normal(0.0, config.noise_scale, size=(n_users, n_values()))
        for attribute, (offset, vocab) in enumerate(zip(value_offsets(), VOCABULARIES, strict=True)):
            n_like, n_dislike = config.likes[attribute], config.dislikes[attribute]
            chosen = offset + rng.random((n_users, len(vocab))).argsort(axis=1)[:, : n_like + n_dislike]
            users = np.arange(n_users)[:, None]
            personal[users, chosen[:, :n_like]] += rng.normal(config.like_strength, 0.3, size=(n_users, n_like))
            personal[users, chosen[:, n_like:]] -= rng.normal(config.dislike_strength, 0.3, size=(n_users, n_dislike))
        self.weights: npt.NDArray[np.float64] = shared[None, :] + personal
        share = 1.0 / np.arange(1, n_users + 1, dtype=np.float64) ** config.activity_exponent
        self.activity: npt.NDArray[np.float64] = share[rng.permutation(n_users)] / share.sum()
        self._cdf = np.cumsum(self.activity)
        self._cdf[-1] = 1.0

    @property
    def n_users(self) -> int:
        return int(self.weights.shape[0])

    def sample_user(self, rng: np.random.Generator) -> int:
        """One user index drawn by activity."""
        return int(np.searchsorted(self._cdf, rng.random(), side="right"))

    def logits(
        self, user: int, columns: npt.NDArray[np.int64], quality: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Relevance logits float64[n] of items with value columns int64[n, 5] and quality
        float64[n] for user index `user`."""
        logits: npt.NDArray[np.float64] = self.config.bias + self.weights[user, columns].sum(axis=1) + quality
        return logits

    def replace_tastes(self, users: npt.NDArray[np.int64], weights: npt.NDArray[np.float64]) -> None:
        """An abrupt preference shift: users int64[k] take the weights float64[k, n_values()]."""
        updated = self.weights.copy()
        updated[users] = weights
        self.weights = updated

    def drift(self, rng: np.random.Generator, scale: float) -> None:
        """One random-walk step: every weight += N(0, scale^2)."""
        if scale > 0:
            self.weights = self.weights + rng.normal(0.0, scale, size=self.weights.shape)


def sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Logistic function, elementwise, numerically safe for large |x|."""
    out: npt.NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out
