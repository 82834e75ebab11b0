"""Live off-policy scores of shadow policies over a sliding window of served rounds.

    window = LiveWindow(["explore", "popular"], LeaderboardConfig(), clock=time.monotonic)
    window.open(request, slate, catalog.index, {"explore": score_shadow(engine, request, slate), ...})
    window.observe(impression); window.observe(click)             # feedback, any order
    window.close_due()                                            # rounds whose clicks are in
    board = standings(window.rounds(), window.labels, versions, n_bootstrap=200, seed=0)

A served slate opens a round: each shadow's answer to the request over the candidates the served
policy ranked is scored at once (`score_shadow`, the driver's `scoring.score_request`), before the
shadow learns the round's feedback, and read at every slate position through the driver's own
round functions (`round_terms.logged_side`, `policy_round`; the shared reward model predicts now,
before the round's reward exists). The impression says which positions were shown (every item at
its slate position, else the round is dropped as inconsistent); clicks add rewards, deduplicated
by event id, in any order. `close_after_s` seconds (of `clock`) after its impression a round
closes: its shown positions enter the window and the reward model learns them. The window keeps
the last `window_rounds` rounds within `window_s` seconds of event time of the newest.

`standings` turns a window into estimates with intervals and the diagnostics and verdicts of the
offline report (`summary.policy_estimates`: IPS, SNIPS, DR, replay, IIPS/RIPS/SIPS, effective
sample size, weights, support share, DR - DM, the estimate to read), DM excepted (it needs each
policy's position mass over the whole window, which is not kept), and the served policies'
on-policy CTR over the same rounds. Pure: nothing here does I/O; the worker wires it
(streams/worker/shadows.py).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from online.config import LeaderboardConfig
from online.engine import Engine
from online.evaluation.assessment import Assessment, ReliabilityRule
from online.evaluation.bootstrap import Estimate, bootstrap_ratio
from online.evaluation.config import DriverConfig
from online.evaluation.logged import UNKNOWN_ROW, RoundSupport
from online.evaluation.reward_model import PositionCTRModel
from online.evaluation.round_terms import LoggedSide, PolicyRound, logged_side, policy_round
from online.evaluation.rounds import LoggedRound
from online.evaluation.scoring import RequestScores, score_request
from online.evaluation.summary import log_facts, policy_estimates
from online.evaluation.traces import PolicyTrace, RoundLog
from online.evaluation.versus import MIN_DIFFERENCE, Comparison, judge, paired_difference
from online.events import Click, Impression, RankRequest, ShownItem, Slate
from online.wire import FeedbackEvent, WireClick, WireImpression

FloatArray = npt.NDArray[np.float64]
RECENTLY_CLOSED = 10_000
"""Request ids of closed rounds remembered, to tell a late click from one for no round."""


def score_shadow(engine: Engine, request: RankRequest, slate: Slate) -> RequestScores:
    """A shadow's answer to a served request over the candidates the served policy ranked (the
    slate's record of them, else the request's), scored as the offline driver scores an evaluated
    policy; RankError when none of them can be ranked."""
    if request.candidates is None and slate.candidates is not None:
        request = request.model_copy(update={"candidates": slate.candidates})
    return score_request(engine, request, exact=engine.ranks_uniformly(request))


@dataclass(frozen=True)
class ClosedRound:
    """A round in the window: its request's event time (unix s), the logged side of its shown
    positions (slate and support compacted) and each shadow's terms (None: it could not rank)."""

    time: float
    side: LoggedSide
    terms: dict[str, PolicyRound | None]


@dataclass
class _Pending:
    """A served round waiting for its impression, its clicks and then its close."""

    time: float
    side: LoggedSide
    terms: dict[str, PolicyRound | None]
    slate_ids: tuple[str, ...]
    impression: Impression | WireImpression | None = None
    received_at: float = math.inf
    rewards: dict[str, float] = field(default_factory=dict)
    clicks: set[str] = field(default_factory=set)


@dataclass
class LiveCounts:
    """Rounds opened (slates scored), closed into the window, evicted from it, dropped while
    pending (more than max_pending), dropped as inconsistent (an impression showing an item away
    from its slate position); feedback for no pending round (unmatched) and clicks after their
    round closed (late)."""

    opened: int = 0
    closed: int = 0
    evicted: int = 0
    dropped_pending: int = 0
    inconsistent: int = 0
    unmatched_feedback: int = 0
    late_clicks: int = 0


class LiveWindow:
    """One scenario's sliding window of served rounds, scored for the shadows named `labels`
    (see the module doc). clock: seconds, monotonic (injected in tests)."""

    def __init__(self, labels: Sequence[str], settings: LeaderboardConfig,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.labels = tuple(labels)
        self.settings = settings
        self.clock = clock
        self.model = PositionCTRModel()
        self.counts = LiveCounts()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._closed_ids: OrderedDict[str, None] = OrderedDict()
        self._rounds: deque[ClosedRound] = deque()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def open(self, request: RankRequest, slate: Slate, index: Mapping[str, int],
             scores: Mapping[str, RequestScores | None]) -> None:
        """A served slate (for `request` as its scenario shaped it) and each shadow's answer to it
        (None: the shadow could not rank it); index: catalog item id -> row."""
        items = sorted(slate.items, key=lambda item: item.position)
        if not items:
            return
        shown = tuple(ShownItem.model_construct(item_id=i.item_id, position=i.position, propensity=i.propensity)
                      for i in items)
        everything = Impression.model_construct(event_id="live", request_id=slate.request_id, user_id=slate.user_id,
                                                scenario=slate.scenario, shown=shown, time=slate.time)
        side = logged_side(LoggedRound(0, request, everything, (), slate), index, self.model, None)
        assert side is not None
        terms = {label: None if found is None else policy_round(found, side, self.model, "log_ctr")
                 for label, found in scores.items() if label in self.labels}
        self._pending[slate.request_id] = _Pending(request.time.timestamp(), side, terms,
                                                   tuple(i.item_id for i in items))
        self.counts.opened += 1
        while len(self._pending) > self.settings.max_pending:
            self._pending.popitem(last=False)
            self.counts.dropped_pending += 1

    def observe(self, event: FeedbackEvent) -> None:
        """An impression or click of this scenario (already validated and deduplicated by the
        worker's feedback path)."""
        pending = self._pending.get(event.request_id)
        if pending is None:
            late = isinstance(event, Click | WireClick) and event.request_id in self._closed_ids
            self.counts.late_clicks += late
            self.counts.unmatched_feedback += not late
            return
        if isinstance(event, Click | WireClick):
            if event.event_id not in pending.clicks:
                pending.clicks.add(event.event_id)
                pending.rewards[event.item_id] = pending.rewards.get(event.item_id, 0.0) + event.reward
            return
        if pending.impression is not None:
            return  # a second impression for the round: not evaluated (the driver's stray feedback)
        ids = pending.slate_ids
        if any(s.position >= len(ids) or ids[s.position] != s.item_id for s in event.shown):
            del self._pending[event.request_id]
            self.counts.inconsistent += 1
            return
        pending.impression, pending.received_at = event, self.clock()

    def close_due(self) -> int:
        """Close the rounds whose impression came `close_after_s` or more ago; returns how many."""
        now, wait = self.clock(), self.settings.close_after_s
        due = [rid for rid, p in self._pending.items() if p.impression is not None and now - p.received_at >= wait]
        for request_id in due:
            self._close(request_id, self._pending.pop(request_id))
        return len(due)

    def _close(self, request_id: str, pending: _Pending) -> None:
        impression = pending.impression
        assert impression is not None
        side = pending.side
        keep = np.zeros(len(side.rows), dtype=bool)
        pscores = side.pscores.copy()
        for shown in impression.shown:
            keep[shown.position] = True
            if shown.propensity is not None:
                pscores[shown.position] = shown.propensity
        rewards = np.array([pending.rewards.get(pending.slate_ids[p], 0.0) for p in np.flatnonzero(keep)])
        part = side.subset(keep, rewards, pscores[keep])
        support = RoundSupport(None, side.support.floor, side.support.uniform)
        part = replace(part, slate=None if part.slate is None else part.slate.compact(), support=support)
        terms = {label: None if t is None else t.subset(keep) for label, t in pending.terms.items()}
        self._rounds.append(ClosedRound(pending.time, part, terms))
        known = part.rows != UNKNOWN_ROW
        if known.any():
            self.model.update(part.rows[known], part.positions[known], part.rewards[known], part.request)
        self._closed_ids[request_id] = None
        while len(self._closed_ids) > RECENTLY_CLOSED:
            self._closed_ids.popitem(last=False)
        self.counts.closed += 1
        self._evict()

    def _evict(self) -> None:
        newest = self._rounds[-1].time
        while self._rounds and (len(self._rounds) > self.settings.window_rounds
                                or self._rounds[0].time < newest - self.settings.window_s):
            self._rounds.popleft()
            self.counts.evicted += 1

    def rounds(self) -> list[ClosedRound]:
        """The window's rounds, oldest first (a snapshot: closed rounds never change)."""
        return list(self._rounds)


@dataclass(frozen=True)
class ShadowStanding:
    """A shadow's place: the estimate to read (None: none is reliable) and why, every estimate
    (clipped to the reward range) with its verdict in `assessment`, the rounds it could not
    rank, and `versus`: its difference from the served policy over the same rounds with the
    verdict on it (`online.evaluation.versus`; None without a round with propensities)."""

    name: str
    version: str
    read: str | None
    estimates: dict[str, Estimate]
    assessment: Assessment | None
    unranked_rounds: int
    versus: Comparison | None = None

    @property
    def value(self) -> float | None:
        return None if self.read is None else self.estimates[self.read].value


@dataclass(frozen=True)
class Standings:
    """One scenario's leaderboard over its window: rounds and shown items in it, their event-time
    span (unix s), the served policies' on-policy CTR with its interval, and the shadows: those
    comparable with the served policy first, by their difference from it (largest first), then
    the rest by the value of their estimate to read."""

    rounds: int
    observations: int
    since: float | None
    until: float | None
    on_policy: Estimate | None
    shadows: list[ShadowStanding]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN -> None)."""
        out: dict[str, Any] = _json({"rounds": self.rounds, "observations": self.observations, "since": self.since,
                      "until": self.until, "on_policy": None if self.on_policy is None else asdict(self.on_policy),
                      "shadows": [_standing_dict(s) for s in self.shadows]})
        return out


def _standing_dict(standing: ShadowStanding) -> dict[str, Any]:
    assessment = standing.assessment
    verdicts = {} if assessment is None else assessment.verdicts
    return {"name": standing.name, "version": standing.version, "read": standing.read,
            "why": "no round in the window yet" if assessment is None else assessment.why,
            "estimate": None if standing.read is None else asdict(standing.estimates[standing.read]),
            "estimates": {name: {**asdict(e), "reliable": verdicts[name].reliable if name in verdicts else None,
                                 "reasons": list(verdicts[name].reasons) if name in verdicts else []}
                          for name, e in standing.estimates.items()},
            "support": None if assessment is None else assessment.support,
            "diagnostics": {} if assessment is None else {k: asdict(v) for k, v in assessment.diagnostics.items()},
            "dr_minus_dm": None if assessment is None or assessment.dr_minus_dm is None
            else asdict(assessment.dr_minus_dm),
            "unranked_rounds": standing.unranked_rounds,
            "versus_served": None if standing.versus is None else _versus_dict(standing.versus)}


def _versus_dict(versus: Comparison) -> dict[str, Any]:
    relative = versus.relative
    return {"difference": asdict(versus.difference), "served": versus.served,
            "relative": {"value": relative[0], "ci_low": relative[1], "ci_high": relative[2]},
            "verdict": versus.verdict, "reason": versus.reason, "rounds_needed": versus.rounds_needed}


def _json(value: Any) -> Any:
    if isinstance(value, float):
        return None if not math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _window_log(rounds: Sequence[ClosedRound], labels: Sequence[str],
                versions: Mapping[str, str]) -> tuple[RoundLog, dict[str, PolicyTrace]]:
    """The window as the driver's traces: the logged side and one trace per shadow."""
    log = RoundLog()
    traces = {label: PolicyTrace(label, versions.get(label, "")) for label in labels}
    for index, found in enumerate(rounds):
        side = found.side
        log.add(index, side.rows, side.positions, side.rewards, side.pscores, side.relevance, side.slate,
                side.support)
        prefix_length = None if side.slate is None or not side.slate.has_prefix else len(side.slate.rows)
        for label, trace in traces.items():
            terms = found.terms.get(label)
            if terms is None:
                trace.add_unranked(len(side.rows), prefix_length)
            else:
                trace.add_round(terms)
    return log, traces


def _rank(standing: ShadowStanding) -> tuple[bool, float, bool, float]:
    """Comparable with the served policy first, by difference (largest first); then by value."""
    versus = standing.versus
    comparable = versus is not None and versus.verdict != "unreliable"
    return (not comparable, -(versus.difference.value if comparable and versus is not None else 0.0),
            standing.value is None, -(standing.value or 0.0))


def _versus(log: RoundLog, trace: PolicyTrace, assessment: Assessment, config: DriverConfig,
            rng: np.random.Generator, counts: list[int], min_difference: float) -> Comparison | None:
    """The shadow of `trace` against the served policy over the window's items with a logging
    propensity (`online.evaluation.versus`); None when there is none."""
    rewards, pscores = np.concatenate(log.rewards), np.concatenate(log.pscores)
    have = np.isfinite(pscores)
    if not have.any():
        return None
    clusters = np.repeat(np.arange(len(counts)), counts)[have]
    probs, q_logged, q_expected = (np.concatenate(trace.eval_probs)[have], np.concatenate(trace.q_logged)[have],
                                   np.concatenate(trace.q_expected)[have])
    reward = rewards[have]
    reward_max = max(1.0, float(rewards.max()))
    difference = paired_difference(reward, probs / pscores[have], q_logged, q_expected, clusters,
                                   {"rng": rng, "n_bootstrap": config.n_bootstrap, "confidence": config.confidence},
                                   reward_max)
    return judge(difference, float(reward.mean()), assessment.verdicts.get("dr"), config.reliability, min_difference)


def standings(rounds: Sequence[ClosedRound], labels: Sequence[str], versions: Mapping[str, str], *,
              n_bootstrap: int = 200, confidence: float = 0.95, seed: int = 0,
              rule: ReliabilityRule | None = None, min_difference: float = MIN_DIFFERENCE) -> Standings:
    """The leaderboard of `rounds` (a `LiveWindow.rounds()` snapshot) for the shadows `labels`
    (versions: label -> policy version); intervals from `n_bootstrap` resamples of rounds; an
    estimate's verdict follows `rule` (default `ReliabilityRule()`: reliable only within ±10%);
    each shadow's difference from the served policy is judged by `online.evaluation.versus.judge`
    (`rule.precision`: the tie zone; `min_difference`: the margin to call a side)."""
    if not rounds:
        return Standings(0, 0, None, None, None, [ShadowStanding(label, versions.get(label, ""), None, {}, None, 0)
                                                  for label in labels])
    log, traces = _window_log(rounds, labels, versions)
    counts = [len(rows) for rows in log.rows]
    config = DriverConfig(n_bootstrap=n_bootstrap, confidence=confidence, seed=seed,
                          reliability=rule or ReliabilityRule())
    facts = log_facts(log, config)
    rewards = np.concatenate(log.rewards)
    clusters = np.repeat(np.arange(len(counts)), counts)
    on_policy = None
    if rewards.size:
        on_policy = Estimate("on_policy", *bootstrap_ratio(rewards, np.ones_like(rewards), clusters=clusters,
                                                           rng=np.random.default_rng([seed, 999]),
                                                           n_bootstrap=n_bootstrap, confidence=confidence),
                             int(rewards.size))
    board = []
    for index, label in enumerate(labels):
        trace = traces[label]
        estimates, assessment, _, _ = policy_estimates(log, trace, config, np.random.default_rng([seed, 1000 + index]),
                                                       counts, facts, direct=False)
        versus = _versus(log, trace, assessment, config, np.random.default_rng([seed, 2000 + index]), counts,
                         min_difference)
        board.append(ShadowStanding(label, trace.version, assessment.read, estimates, assessment,
                                    trace.unranked_rounds, versus))
    board.sort(key=_rank)
    times = [found.time for found in rounds]
    return Standings(len(rounds), int(rewards.size), min(times), max(times), on_policy, board)
