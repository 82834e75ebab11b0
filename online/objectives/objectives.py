"""The slate objectives an Engine applies: filters, novelty, fairness, diversity, reasons.

    objectives = Objectives(ObjectiveSettings(diversity=0.3), FilterSettings(blocklist={"i9"}))
    engine = Engine(policy, store, catalog, rng, objectives=objectives)

Per request (`Engine.rank`): the filters cut the candidates (deterministic); the policy
draws m score vectors; every draw, and the posterior mean as one more row, goes through
the same procedure: utility = relevance * standardised score (or the score minus its mean,
`score_units="score"`) - novelty * popularity
penalty + fairness * exposure deficit, then greedy MMR/ILD/DPP re-ranking (item similarity:
cosine over `Catalog.diversity_vectors`, the bandit vectors unless the catalog carries
separate diversity embeddings), the picks served in greedy order or by utility (`slate_order`). Draw 0's slate is
served; the share of the m draws placing each served item at its position is its
propensity, so it is the propensity of the whole randomised procedure. The mean row's
slate defines `explored`. `Engine.observe` feeds the memory (exposure windows, recent
items per user). Settings may differ per scenario; the memory is shared. The Engine stores
each user's recent items (`user_blob`) with the user's state and reads them back for users
not in memory (`restore_user`); the exposure windows are soft state, snapshotted by the
Engine every `windows_snapshot_s` (online/objectives/window_codec.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from online.catalog import Catalog
from online.events import RankRequest
from online.objectives.explain import explain, nearest_clicked, popular_mask
from online.objectives.filters import FilterResult, catalog_mask, filter_candidates, user_exclusions
from online.objectives.memory import ObjectiveMemory
from online.objectives.rerank import rerank, utilities
from online.objectives.settings import FilterSettings, ObjectiveSettings
from online.objectives.user_codec import decode_user_memory, encode_user_memory
from online.policies.base import FeedbackBatch, ScoreDraws
from online.slates import top_k

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Ranking:
    """ranked: int64[m, k] per draw, the slate as candidate indices (row 0 is served);
    greedy: int64[k] the slate the same procedure builds from the posterior means."""

    ranked: IntArray
    greedy: IntArray


def group_name(catalog: Catalog, row: int, group: str) -> str | None:
    """The fairness group of a catalog row: its provider for "provider", else the attribute."""
    return catalog.providers[row] if group == "provider" else catalog.attributes[row].get(group)


class Objectives:
    """Settings (default and per scenario) plus the memory they need; see module doc."""

    def __init__(
        self,
        settings: ObjectiveSettings | None = None,
        filters: FilterSettings | None = None,
        scenarios: Mapping[str, tuple[ObjectiveSettings, FilterSettings]] | None = None,
    ) -> None:
        self.settings = settings or ObjectiveSettings()
        self.filters = filters or FilterSettings()
        self.scenarios = dict(scenarios or {})
        for scenario, (scenario_settings, _) in self.scenarios.items():
            if scenario_settings.memory_key() != self.settings.memory_key():
                raise ValueError(
                    f"scenarios.{scenario}: fairness_group, windows and memory sizes must equal the default "
                    "settings' (the memory is shared)"
                )
        self.memory = ObjectiveMemory(self.settings)
        self._supply_key: tuple[int, int] | None = None
        self._supply = np.zeros(0)
        self._row_codes = np.zeros(0, dtype=np.int64)
        self._masks: dict[str, tuple[tuple[int, int], npt.NDArray[np.bool_]]] = {}

    def settings_for(self, scenario: str) -> tuple[ObjectiveSettings, FilterSettings]:
        """The (objective, filter) settings of a scenario (the defaults when it has none)."""
        return self.scenarios.get(scenario, (self.settings, self.filters))

    def filter(self, request: RankRequest, rows: IntArray, catalog: Catalog) -> FilterResult:
        """The request's candidate rows int64[n] that pass its scenario's filters."""
        _, filters = self.settings_for(request.scenario)
        user = self.memory.user(request.user_id)
        return filter_candidates(rows, catalog, filters, user, request.time.timestamp())

    def retrieval_pool(self, request: RankRequest, catalog: Catalog) -> IntArray | None:
        """int64[r]: the active catalog rows that pass the request's scenario filters, the rows
        retrieval searches, so that filters never empty a slate the catalog can fill (filtering
        the retrieved items instead empties it once the learner's favourites all fail a
        category filter). None when the scenario has no filter. The catalog-only part (blocklist,
        attributes) is computed once per catalog revision; the user's recent items are taken out
        per request."""
        _, filters = self.settings_for(request.scenario)
        if not filters.active:
            return None
        key = (catalog.revision, len(catalog))
        cached = self._masks.get(request.scenario)
        if cached is None or cached[0] != key:
            cached = (key, catalog_mask(catalog, filters))
            self._masks[request.scenario] = cached
        keep = cached[1] & catalog.active
        for _, rows in user_exclusions(filters, self.memory.user(request.user_id), request.time.timestamp()):
            keep[rows] = False
        return np.flatnonzero(keep).astype(np.int64)

    def rank(self, request: RankRequest, rows: IntArray, scores: ScoreDraws, catalog: Catalog) -> Ranking:
        """Per draw of `scores` (over candidate rows int64[n]), the re-ranked slate."""
        settings, _ = self.settings_for(request.scenario)
        k = min(request.k, len(rows))
        if not settings.reranks:
            return Ranking(top_k(scores.draws, k), top_k(scores.mean[None, :], k)[0])
        adjustment = None
        if settings.novelty > 0 or settings.fairness > 0:
            adjustment = -settings.novelty * self.popularity_penalty(rows) + settings.fairness * self.fairness_boost(
                rows, catalog, settings.fairness_group
            )
        stacked = np.vstack([scores.draws, scores.mean[None, :]])
        utility = utilities(stacked, settings.relevance, adjustment, settings.score_units == "standardised")
        ranked = rerank(utility, catalog.diversity_vectors[rows], k, settings.diversity, settings.diversity_method,
                        shortlist=settings.shortlist_factor * k, position_power=settings.diversity_position_power,
                        from_position=settings.diversity_from_position, order=settings.slate_order)
        return Ranking(ranked[:-1], ranked[-1])

    def popularity_penalty(self, rows: IntArray) -> FloatArray:
        """float64[n] in [0, 1]: log(1 + exposures) / log(1 + max exposures over rows)."""
        counts = self.memory.item_exposure.counts(rows)
        top = counts.max(initial=0.0)
        if top <= 0:
            return np.zeros(len(rows))
        penalty: FloatArray = np.log1p(counts) / np.log1p(top)
        return penalty

    def fairness_boost(self, rows: IntArray, catalog: Catalog, group: str | None) -> FloatArray:
        """float64[n] in [0, 1]: max(0, 1 - exposure share / fair share) of each row's group
        over the window; fair share = the group's share of the active catalog's items. 0
        before any exposure and for items without the group attribute."""
        share, fair = self.exposure_shares(rows, catalog, group)
        with np.errstate(divide="ignore", invalid="ignore"):
            boost = np.where(fair > 0, 1.0 - share / fair, 0.0)
        out: FloatArray = np.clip(boost, 0.0, 1.0) if self._exposure_total(group) > 0 else np.zeros(len(rows))
        return out

    def exposure_shares(self, rows: IntArray, catalog: Catalog, group: str | None) -> tuple[FloatArray, FloatArray]:
        """(exposure share, fair share), float64[n] each, of the groups of catalog rows
        int64[n] (per item when group is None): the measured share of windowed exposures
        and the share of active catalog items in the group (both 0 without a group)."""
        n_active = int(catalog.active.sum())
        total = max(self._exposure_total(group), 1)
        if group is None:
            return self.memory.item_exposure.counts(rows) / total, np.full(len(rows), 1.0 / max(n_active, 1))
        supply, row_codes = self._group_supply(catalog, group)
        codes = row_codes[rows]
        known = codes >= 0
        share, fair = np.zeros(len(rows)), np.zeros(len(rows))
        share[known] = self.memory.group_exposure.counts(codes[known]) / total
        in_supply = known & (codes < len(supply))
        fair[in_supply] = supply[codes[in_supply]] / max(supply.sum(), 1.0)
        return share, fair

    def _exposure_total(self, group: str | None) -> int:
        window = self.memory.item_exposure if group is None else self.memory.group_exposure
        return window.total

    def _code(self, catalog: Catalog, row: int, group: str) -> int:
        name = group_name(catalog, row, group)
        return -1 if name is None else self.memory.group_code(name)

    def _group_supply(self, catalog: Catalog, group: str) -> tuple[FloatArray, IntArray]:
        """(float64[G] active catalog items per group code, int64[R] group code per catalog
        row, -1 = none); recomputed when the catalog's size or active count changes (an
        in-place change of an item's provider or attribute waits for that)."""
        active = catalog.active
        key = (len(catalog), catalog.revision)
        if key != self._supply_key:
            self._row_codes = np.array([self._code(catalog, row, group) for row in range(len(catalog))],
                                       dtype=np.int64)
            live = self._row_codes[active]
            self._supply = np.bincount(live[live >= 0], minlength=len(self.memory.group_codes)).astype(np.float64)
            self._supply_key = key
        return self._supply, self._row_codes

    def reasons(self, request: RankRequest, rows: IntArray, ranking: Ranking, catalog: Catalog) -> list[str]:
        """One short reason per served slate item (see online/objectives/explain.py)."""
        settings, _ = self.settings_for(request.scenario)
        chosen = ranking.ranked[0]
        slate_rows = rows[chosen]
        explored = ~np.isin(chosen, ranking.greedy)
        user = self.memory.user(request.user_id)
        clicked = user.clicked.latest() if user is not None else np.zeros(0, dtype=np.int64)
        nearest = nearest_clicked(slate_rows, clicked, catalog.vectors)
        popular = popular_mask(self.memory.scenario_click_counts(request.scenario, rows), len(chosen))[chosen]
        return explain(
            slate_rows, explored.tolist(), self.memory.item_exposure.counts(slate_rows), popular.tolist(), nearest,
            catalog.ids, request.scenario, settings.new_item_exposures, settings.similar_min_cosine,
        )

    def unremembered(self, user_ids: Iterable[str]) -> list[str]:
        """The distinct user ids (first-seen order) whose recent items are not in memory."""
        return [user_id for user_id in dict.fromkeys(user_ids) if self.memory.user(user_id) is None]

    def restore_user(self, user_id: str, blob: bytes | None, catalog: Catalog, evict: bool = True) -> None:
        """Remember a user's recent items from a blob of `user_blob`, or none when nothing is
        stored (blob None: so the next request need not read the store again). Kept if
        already remembered; `evict`: see ObjectiveMemory.restore."""
        memory = self.memory.new_user() if blob is None else decode_user_memory(blob, catalog, self.memory)
        self.memory.restore(user_id, memory, evict)

    def user_blob(self, user_id: str, catalog: Catalog) -> bytes | None:
        """A user's recent items as a blob to store (None when none are remembered)."""
        user = self.memory.user(user_id)
        return None if user is None else encode_user_memory(user, catalog)

    def observe(self, batch: FeedbackBatch, catalog: Catalog) -> None:
        """Fold an observed feedback batch (its item ids all in the catalog) into the memory."""
        if len(batch) == 0:
            return
        rows = catalog.rows(batch.item_ids)
        group = self.settings.fairness_group
        groups = None if group is None else [group_name(catalog, row, group) for row in rows.tolist()]
        self.memory.observe(batch.user_ids, batch.scenarios, rows, batch.exposures, batch.times_s, groups)
