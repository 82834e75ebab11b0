"""What a logged round says about the logging policy: its served slate, the propensities in
each form, the candidates it ranked, and whether it gave every candidate support.

A round's `Slate` (when the log holds the slates topic, e.g. from `slatestream replay`)
records per position the marginal and prefix propensities and the ranked candidates
(online/propensities.py); the `Impression` says what was shown. `logged_slate` joins them: the
slate is the logged action when every shown item sits at its slate position, and the shown
items' marginal propensities come from the impression, or from the slate when the impression
has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from online.evaluation.rounds import LoggedRound
from online.events import ShownItem

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

UNKNOWN_ROW = 1 << 40
"""Row code of a logged item missing from the catalog (never matches a slate)."""


@dataclass(frozen=True)
class LoggedSlate:
    """The served slate of a round, consistent with its impression.

    rows: int64[L] catalog rows of the slate's items in position order (UNKNOWN_ROW for an
    item not in the catalog); marginal, prefix: float64[L] the logging policy's marginal and
    prefix propensities (prefix NaN when the slate records none); candidates: the ids it
    ranked, or None when unknown; support: the support mix's epsilon, None when unknown;
    n_draws: the Monte Carlo draws behind the propensities, None when unknown; n_candidates: how
    many candidates it ranked when `candidates` is not kept (`compact`).
    """

    rows: IntArray
    marginal: FloatArray
    prefix: FloatArray
    candidates: tuple[str, ...] | None
    support: float | None
    policy: str
    n_draws: int | None = None
    n_candidates: int | None = None

    @property
    def has_prefix(self) -> bool:
        return bool(np.isfinite(self.prefix).all())

    @property
    def candidate_count(self) -> int | None:
        """How many candidates the logger ranked (None: unknown)."""
        return len(self.candidates) if self.candidates is not None else self.n_candidates

    def compact(self) -> LoggedSlate:
        """This slate with its candidate ids dropped and their count kept (what a window of
        many rounds keeps: the ids are only needed while the round is scored)."""
        return replace(self, candidates=None, n_candidates=self.candidate_count)


def logged_slate(round_: LoggedRound, index: Mapping[str, int]) -> LoggedSlate | None:
    """The round's served slate when the log holds it and every shown item sits at its
    slate position; None otherwise. index: catalog item id -> row."""
    slate, impression = round_.slate, round_.impression
    if slate is None or impression is None or not slate.items:
        return None
    at = {item.position: item.item_id for item in slate.items}
    if sorted(at) != list(range(len(at))):
        return None
    if any(at.get(shown.position) != shown.item_id for shown in impression.shown):
        return None
    items = sorted(slate.items, key=lambda item: item.position)
    prefix = np.array([np.nan if i.prefix_propensity is None else i.prefix_propensity for i in items])
    candidates = slate.candidates if slate.candidates is not None else round_.request.candidates
    return LoggedSlate(
        rows=np.array([index.get(i.item_id, UNKNOWN_ROW) for i in items], dtype=np.int64),
        marginal=np.array([i.propensity for i in items]), prefix=prefix, candidates=candidates,
        support=slate.support_epsilon, policy=slate.policy, n_draws=slate.n_draws,
    )


def shown_pscores(shown: list[ShownItem], slate: LoggedSlate | None) -> FloatArray:
    """float64[len(shown)] the logging propensity of each shown item: the impression's, else
    the slate's at that position, else NaN."""
    out = np.array([np.nan if s.propensity is None else s.propensity for s in shown])
    if slate is not None:
        for j, item in enumerate(shown):
            if np.isnan(out[j]):
                out[j] = slate.marginal[item.position]
    return out


@dataclass(frozen=True)
class RoundSupport:
    """What a round tells about the logging policy's support.

    candidates: the ids it ranked (the slate's record, else the request's), None when unknown
    (then, for a log declared uniform over the catalog, the catalog); floor: every candidate
    had positive probability at every position (a support mix > 0, or uniform logging);
    uniform: the round's slate was drawn uniformly at random (None: unknown).
    """

    candidates: frozenset[str] | None
    floor: bool
    uniform: bool | None

    def supports(self, ranked_ids: Sequence[str]) -> bool | None:
        """Whether the logging policy could have served every slate a policy ranking
        `ranked_ids` can: False when one is not a logged candidate, None when unknown."""
        if self.candidates is None:
            return True if self.uniform and self.floor else None
        if not self.candidates.issuperset(ranked_ids):
            return False
        return True if self.floor else None


def round_support(round_: LoggedRound, slate: LoggedSlate | None, uniform_log: bool | None) -> RoundSupport:
    """The round's `RoundSupport`; uniform_log: the log is declared uniformly random over the
    catalog (True), declared not to be (False), or unknown (None: read from the slates)."""
    candidates = slate.candidates if slate is not None else round_.request.candidates
    uniform = uniform_log
    if uniform is None and slate is not None:
        uniform = slate.policy == "uniform_random" or slate.support == 1.0
    floor = bool(uniform) or (slate is not None and slate.support is not None and slate.support > 0)
    return RoundSupport(None if candidates is None else frozenset(candidates), floor, uniform)
