"""Settings of the slate objectives and business filters (pydantic, unknown keys rejected).

Defaults are plain relevance ranking with no filter: an engine given the default settings
serves the same slates as one given none (only `SlateItem.reason` is filled in).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

AttributeValues = str | list[str]


class ObjectiveSettings(BaseModel):
    """How slate items are scored beyond the policy's sampled relevance.

    Per Monte Carlo draw, item utility = relevance * z(score) - novelty * popularity
    + fairness * deficit, where z standardises the draw's scores over the candidates (or
    only centres them, `score_units="score"`);
    then `diversity_method` re-ranks greedily with weight `diversity` (see
    online/objectives/rerank.py and docs/objectives.md).

    Attributes:
        relevance: weight of the sampled score z (> 0).
        diversity: weight of the diversity term (0 = off; MMR: penalty on the max similarity
            to the picked items, ILD: on the mean similarity, DPP: log-determinant gain), in
            standard deviations of the draw's scores (see score_units); on the simulator MMR
            needs about 2 .. 5 for a clear diversity gain.
        diversity_method: "mmr" (maximal marginal relevance), "ild" (greedy intra-list
            diversity: the penalty is the mean cosine to the picked items, i.e. what the item
            costs the slate's mean pairwise distance) or "dpp" (greedy MAP of a determinantal
            point process).
        diversity_position_power: the diversity weight at greedy step p (slate position, 0 =
            top) is diversity * (1 + p) ** diversity_position_power, so diversity costs less
            relevance where users look less. 0 (default) = the same weight at every position;
            eta = the simulator's examination exponent (examination 1 / (1 + p) ** eta) makes
            each step maximise examination-weighted utility minus the diversity term. In [0, 8].
        diversity_from_position: positions before this one are picked by utility alone (weight
            0); 0 (default) = diversity from the top. Neither field acts when diversity is 0.
        score_units: "standardised" (default): z standardises each draw's scores over the
            candidates, so weights are in standard deviations of that draw; "score": z is the
            draw's scores minus their mean, in the policy's own units (linear TS: expected
            reward per exposure), so one diversity weight buys diversity at the same price in
            expected reward in every request: it takes diversity where relevance is nearly tied
            (the Lagrangian of mean reward against mean diversity). Weights are then in score
            units (on the simulator greedy ILD needs about 0.1 .. 0.3).
        slate_order: "greedy" (default): the diversity re-ranking's picks are served in the order
            picked; "utility": the picked set is served by decreasing utility (the same items,
            so the same ILD). Examination falls with position, so for the same set this order
            has the most examination-weighted utility (rearrangement inequality; with novelty
            and fairness off, the most expected clicks by the policy's own estimates): the
            re-ranking only chooses which items, utility orders them. Acts only when
            diversity > 0.
        novelty: weight of the popularity penalty log(1 + exposures) / log(1 + max
            exposures among the candidates), in [0, 1] per item.
        fairness: weight of the exposure-deficit boost max(0, 1 - share / fair share),
            in [0, 1] per group. Both terms are added to z as they are, so with
            score_units="score" (z differences of ~0.01-0.1 for linear TS on the simulator)
            a novelty or fairness weight of 1 outweighs relevance: scale them down alike.
        fairness_group: None = each item is its own group; "provider" = the item's
            provider; any other name = that item attribute.
        shortlist_factor: each draw re-ranks its top shortlist_factor * k items by utility
            (0 = all candidates).
        exposure_window_s: sliding window (seconds of event time) of the exposure counts
            behind novelty, fairness and explanations.
        window_buckets: the window is kept as this many time buckets (its resolution).
        new_item_exposures: an item shown fewer times than this in the window is "new".
        similar_min_cosine: an item is explained as "similar to" a clicked item only
            when their cosine similarity reaches this.
        recent_shown_per_user, recent_clicked_per_user: per-user memory of the last items
            shown / clicked (for filters and explanations).
        max_users: users whose recent items are remembered (least recently active dropped).
        windows_snapshot_s: event-time seconds between snapshots of the exposure windows to the
            Engine's store (0 = never: the windows restart empty with the process). A restart
            loses at most this long of exposure counts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    relevance: float = Field(default=1.0, gt=0.0)
    diversity: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    diversity_method: Literal["mmr", "ild", "dpp"] = "mmr"
    diversity_position_power: float = Field(default=0.0, ge=0.0, le=8.0, allow_inf_nan=False)
    diversity_from_position: int = Field(default=0, ge=0, le=1000)
    score_units: Literal["standardised", "score"] = "standardised"
    slate_order: Literal["greedy", "utility"] = "greedy"
    novelty: float = Field(default=0.0, ge=0.0)
    fairness: float = Field(default=0.0, ge=0.0)
    fairness_group: str | None = None
    shortlist_factor: int = Field(default=5, ge=0)
    exposure_window_s: float = Field(default=86_400.0, gt=0.0)
    window_buckets: int = Field(default=12, ge=1, le=1000)
    new_item_exposures: int = Field(default=50, ge=0)
    similar_min_cosine: float = Field(default=0.5, ge=-1.0, le=1.0)
    recent_shown_per_user: int = Field(default=50, ge=1, le=10_000)
    recent_clicked_per_user: int = Field(default=20, ge=1, le=10_000)
    max_users: int = Field(default=50_000, ge=1)
    windows_snapshot_s: float = Field(default=60.0, ge=0.0, allow_inf_nan=False)

    @field_validator("fairness_group")
    @classmethod
    def _group_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must be None (per item), 'provider' or an attribute name")
        return value

    @property
    def reranks(self) -> bool:
        """Whether anything beyond plain relevance ranking is on."""
        return self.diversity > 0 or self.novelty > 0 or self.fairness > 0

    def memory_key(self) -> tuple[object, ...]:
        """The fields that shape the shared memory (must agree across scenarios)."""
        return (self.fairness_group, self.exposure_window_s, self.window_buckets, self.recent_shown_per_user,
                self.recent_clicked_per_user, self.max_users, self.windows_snapshot_s)


class FilterSettings(BaseModel):
    """Business filters, applied to the candidates before any draw (deterministic).

    Attributes:
        exclude_shown_within_s: drop items shown to the user in the last this-many seconds
            (None = off).
        exclude_clicked_within_s: drop items the user clicked in the last this-many seconds.
        blocklist: item ids never served.
        required_attributes: attribute name -> allowed value(s); an item must match all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    exclude_shown_within_s: float | None = Field(default=None, gt=0.0)
    exclude_clicked_within_s: float | None = Field(default=None, gt=0.0)
    blocklist: frozenset[str] = frozenset()
    required_attributes: dict[str, AttributeValues] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _values_not_empty(self) -> FilterSettings:
        for name, values in self.required_attributes.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"required_attributes.{name}: needs at least one value")
        return self

    @property
    def active(self) -> bool:
        """Whether any filter is on."""
        return bool(
            self.exclude_shown_within_s or self.exclude_clicked_within_s or self.blocklist or self.required_attributes
        )

    def allowed_values(self) -> dict[str, frozenset[str]]:
        """required_attributes with every value set as a frozenset."""
        return {
            name: frozenset([values] if isinstance(values, str) else values)
            for name, values in self.required_attributes.items()
        }
