"""From the driver's per-observation traces to estimates, metrics and the sanity check.

An observation is one logged (round, shown item, position). Position-level estimators
use every observation with a logging propensity (flattened, `clusters` = round, so the
bootstrap resamples whole rounds): the value is the reward per shown item (CTR).
Slate-level estimators (IIPS, RIPS, SIPS; reward per slate) use the rounds that show at
least two items, all with propensities. Ranking metrics take as relevance the round's
shown items labelled with their clicks (MIND: the impression's labels; OBD: the logged
item and its click).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

import online.evaluation.metrics as metrics
from online.catalog import Catalog
from online.evaluation.assessment import (
    Assessment,
    LogFacts,
    WeightDiagnostics,
    assess,
    weight_diagnostics,
)
from online.evaluation.bootstrap import BootArgs, Estimate, bootstrap_ratio
from online.evaluation.config import DriverConfig
from online.evaluation.direct_method import DM_MODEL, direct_method
from online.evaluation.estimators import doubly_robust, ips, replay_positions, snips
from online.evaluation.logged import UNKNOWN_ROW
from online.evaluation.rounds import LogCounts
from online.evaluation.slate_summary import slate_level_estimates
from online.evaluation.traces import PolicyTrace, RoundLog

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PolicyEvaluation:
    """Estimates (name -> Estimate, clipped to the reward range), the assessment of them
    (diagnostics, verdicts, the one to read: `online.evaluation.assessment`), metrics (name ->
    float), counters and, for plots, dr_running: float64[n_obs] the running mean of the DR
    terms in log order. learning: the policy learned along the log (its value is an average
    over its learning); else it was fixed — a snapshot (`snapshot`), or frozen after learning on
    the first `evaluated_from` rounds — and is evaluated from round `evaluated_from` on."""

    policy: str
    version: str
    estimates: dict[str, Estimate]
    metrics: dict[str, float]
    counters: dict[str, int]
    dr_running: FloatArray
    assessment: Assessment
    learning: bool = True
    evaluated_from: int = 0
    snapshot: bool = False

    @property
    def frozen_after_learning(self) -> bool:
        return not self.learning and not self.snapshot

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "version": self.version, "learning": self.learning,
            "snapshot": self.snapshot, "evaluated_from": self.evaluated_from,
            "estimates": {name: _clean(asdict(e)) for name, e in self.estimates.items()},
            "assessment": _clean(asdict(self.assessment)),
            "metrics": _clean(self.metrics), "counters": dict(self.counters),
        }


@dataclass(frozen=True)
class EvaluationResult:
    """Everything the driver measured. on_policy: the logging policy's CTR (mean logged
    reward per shown item) with its interval; logged_rewards, logged_rounds: float64 /
    int64[n_obs] for plots; sanity: the logging policy's estimates vs on_policy."""

    counts: LogCounts
    on_policy: Estimate
    policies: list[PolicyEvaluation]
    sanity: dict[str, Any] | None
    settings: dict[str, Any]
    logged_rewards: FloatArray
    logged_rounds: IntArray
    notes: list[str]

    def policy(self, name: str) -> PolicyEvaluation:
        for evaluation in self.policies:
            if evaluation.policy == name:
                return evaluation
        raise KeyError(f"no evaluated policy {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN -> None)."""
        return {
            "settings": _clean(self.settings), "counts": asdict(self.counts),
            "on_policy": _clean(asdict(self.on_policy)), "sanity": _clean(self.sanity),
            "policies": [p.to_dict() for p in self.policies], "notes": list(self.notes),
        }


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _cat(parts: list[npt.NDArray[Any]], dtype: type) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def _position_level(log: RoundLog, trace: PolicyTrace, config: DriverConfig, boot: BootArgs,
                    counts: list[int], direct: bool = True) -> tuple[dict[str, Estimate], dict[str, WeightDiagnostics],
                                                                     Estimate | None, FloatArray]:
    """IPS, SNIPS, DR, DM (unless not `direct`) with their weight diagnostics, DR's correction
    (DR - DM) and the running DR, over the observations with a logging propensity (none: empty)."""
    clusters = np.repeat(np.asarray(log.rounds, dtype=np.int64), counts)
    rewards, pscores = _cat(log.rewards, np.float64), _cat(log.pscores, np.float64)
    probs, q_logged, q_expected = (_cat(trace.eval_probs, np.float64), _cat(trace.q_logged, np.float64),
                                   _cat(trace.q_expected, np.float64))
    have = np.isfinite(pscores)
    if not have.any():
        return {}, {}, None, np.zeros(0)
    reward, pscore, prob, unit = rewards[have], pscores[have], probs[have], clusters[have]
    out = {"ips": ips(reward, pscore, prob, clusters=unit, **boot),
           "snips": snips(reward, pscore, prob, clusters=unit, **boot),
           "dr": doubly_robust(reward, pscore, prob, q_logged[have], q_expected[have], clusters=unit, **boot)}
    if direct and config.reward_model != "policy":  # DM refits the counts model ("river" too: DR's alone)
        rows, positions = _cat(log.rows, np.int64), _cat(log.positions, np.int64)
        known = rows != UNKNOWN_ROW
        out["dm"] = direct_method(trace.mass.values, (rows[known], positions[known], rewards[known], clusters[known]),
                                  (q_expected[have], unit), DM_MODEL, **boot)
    elif direct:
        out["dm"] = Estimate("dm", *bootstrap_ratio(q_expected[have], np.ones(int(have.sum())), clusters=unit,
                                                     **boot), int(have.sum()))
    weights = prob / pscore
    diagnostics = dict.fromkeys(("ips", "snips", "dr"), weight_diagnostics(weights, unit, boot))  # same weights
    correction = weights * (reward - q_logged[have])
    gap = Estimate("dr_minus_dm", *bootstrap_ratio(correction, np.ones_like(correction), clusters=unit, **boot),
                   int(correction.size))
    terms = q_expected[have] + correction
    return out, diagnostics, gap, np.cumsum(terms) / np.arange(1, terms.size + 1)


def policy_estimates(log: RoundLog, trace: PolicyTrace, config: DriverConfig, rng: np.random.Generator,
                     counts: list[int], facts: LogFacts,
                     direct: bool = True) -> tuple[dict[str, Estimate], Assessment, FloatArray, list[str]]:
    """One policy's estimates (clipped), their assessment, the running DR and notes, over `log`
    and its `trace` (counts: observations per round). direct=False leaves DM out (it needs the
    policy's position mass over the whole log: the live leaderboard keeps none)."""
    boot: BootArgs = {"rng": rng, "n_bootstrap": config.n_bootstrap, "confidence": config.confidence}
    clusters = np.repeat(np.asarray(log.rounds, dtype=np.int64), counts)
    width = max([len(s) for s in trace.slates] + [1])
    padded = np.full((len(trace.slates), width), -1, dtype=np.int64)
    for i, slate in enumerate(trace.slates):
        padded[i, : len(slate)] = slate
    out = {"replay": replay_positions(_cat(log.rewards, np.float64), _cat(log.rows, np.int64),
                                      _cat(log.positions, np.int64), np.repeat(padded, counts, axis=0),
                                      clusters=clusters, **boot)}
    position_level, diagnostics, gap, running = _position_level(log, trace, config, boot, counts, direct)
    out.update(position_level)
    notes: list[str] = []
    if not position_level:
        notes.append("no logging propensities: IPS, SNIPS, DR and slate estimators need them")
    slate_estimates, slate_diagnostics, slate_notes = slate_level_estimates(log, trace, counts, boot)
    out.update(slate_estimates)
    diagnostics.update(slate_diagnostics)
    notes.extend(slate_notes if position_level else [])
    known = [s for s in trace.supported if s is not None]
    support = (float(np.mean(known)) if known else None, len(known) / max(len(trace.supported), 1))
    clipped, assessment = assess(out, diagnostics, support, gap, facts, config.reliability)
    return clipped, assessment, running, notes


def window(log: RoundLog, trace: PolicyTrace) -> tuple[RoundLog, PolicyTrace]:
    """The log and the trace from the trace's `evaluated_from` round on (both unchanged when 0)."""
    start = trace.evaluated_from
    if start == 0:
        return log, trace
    cut_log = RoundLog(**{f.name: getattr(log, f.name)[start:] for f in fields(RoundLog)})
    lists = {f.name: getattr(trace, f.name)[start:] for f in fields(PolicyTrace)
             if isinstance(getattr(trace, f.name), list)}
    return cut_log, replace(trace, **lists)


def log_facts(log: RoundLog, config: DriverConfig) -> LogFacts:
    """Whether the log is uniformly random (from the rounds, or as declared), the top of the
    reward range (the largest logged reward, at least 1) and the longest logged slate."""
    flags = [None if s is None else s.uniform for s in log.support]
    uniform = config.uniform_log
    if uniform is None and flags:
        uniform = False if any(f is False for f in flags) else (True if all(f is True for f in flags) else None)
    rewards = _cat(log.rewards, np.float64)
    longest = max([int(p.max()) + 1 for p in log.positions if p.size] + [1])
    longest = max([longest] + [len(s.rows) for s in log.slates if s is not None])
    return LogFacts(uniform, max(1.0, float(rewards.max()) if rewards.size else 1.0), longest)


def _metrics(log: RoundLog, trace: PolicyTrace, catalog: Catalog, config: DriverConfig,
             rewards: FloatArray) -> dict[str, float]:
    slates = [s.tolist() for s in trace.slates]
    k = config.metric_k
    active = np.flatnonzero(catalog.active).tolist()
    vectors = catalog.vectors
    shown_rows = _cat(log.rows, np.int64)
    shown_rows = shown_rows[shown_rows < len(catalog)]
    total = max(shown_rows.size, 1)
    popularity = {int(r): c / total for r, c in zip(*np.unique(shown_rows, return_counts=True), strict=True)}
    providers = {row: p for row, p in enumerate(catalog.providers) if p is not None}
    nonempty = [s for s in slates if s]
    matched, predicted = _cat(trace.matched, np.bool_), _cat(trace.predicted, np.float64)
    observed = np.minimum(rewards, 1.0)
    known = np.isfinite(predicted)
    out = {
        "ndcg_at_k": metrics.ndcg_at_k(slates, log.relevance, k),
        "hit_rate_at_k": metrics.hit_rate_at_k(slates, log.relevance, k),
        "mrr": metrics.mrr(slates, log.relevance),
        "coverage": metrics.catalogue_coverage(nonempty, active) if active else math.nan,
        "intra_list_diversity": (metrics.intra_list_diversity(nonempty, vectors)
                                 if nonempty and np.all(np.linalg.norm(vectors, axis=1) > 0) else math.nan),
        "novelty": metrics.novelty(nonempty, popularity, default=1.0 / (total + 1)) if nonempty else math.nan,
        "exposure_gini": (metrics.exposure_gini(nonempty, active, position_weighted=True)
                          if nonempty and active else math.nan),
        "provider_exposure_gini": (metrics.provider_exposure_gini(nonempty, providers, position_weighted=True)
                                   if providers and nonempty else math.nan),
        "ece_matched": (metrics.expected_calibration_error(predicted[matched & known], observed[matched & known])
                        if (matched & known).any() else math.nan),
        "ece_logged": (metrics.expected_calibration_error(predicted[known], observed[known])
                       if known.any() else math.nan),
        "match_rate": float(matched.mean()) if matched.size else math.nan,
        "metric_k": float(k),
    }
    return out


def summarise(log: RoundLog, traces: list[PolicyTrace], catalog: Catalog, counts: LogCounts,
              config: DriverConfig) -> EvaluationResult:
    """The `EvaluationResult` of a finished run (see the module doc)."""
    per_round = [len(r) for r in log.rows]
    rewards = _cat(log.rewards, np.float64)
    clusters = np.repeat(np.asarray(log.rounds, dtype=np.int64), per_round)
    notes: list[str] = []
    if rewards.size == 0:
        raise ValueError("events: the log has no round with an impression to evaluate")
    on_policy = Estimate("on_policy", *bootstrap_ratio(
        rewards, np.ones_like(rewards), rng=np.random.default_rng([config.seed, 999]),
        n_bootstrap=config.n_bootstrap, confidence=config.confidence, clusters=clusters), int(rewards.size))
    evaluations = []
    for index, trace in enumerate(traces):
        rng = np.random.default_rng([config.seed, 1000 + index])
        part, part_trace = window(log, trace)
        part_rounds = per_round[trace.evaluated_from:]
        if not part_rounds:
            raise ValueError(f"{trace.policy}: no round left to evaluate after round {trace.evaluated_from}")
        facts = log_facts(part, config)
        estimates, assessment, running, extra = policy_estimates(part, part_trace, config, rng, part_rounds,
                                                                 facts)
        notes.extend(f"{trace.policy}: {note}" for note in extra if f"{trace.policy}: {note}" not in notes)
        counters = {"rounds": len(part_trace.slates), "observations": int(sum(part_rounds)),
                    "matched": int(_cat(part_trace.matched, np.bool_).sum()), "unranked_rounds": trace.unranked_rounds,
                    "learned_events": trace.learned_events, "rejected_events": trace.rejected_events}
        evaluations.append(PolicyEvaluation(trace.policy, trace.version, estimates,
                                            _metrics(part, part_trace, catalog, config, _cat(part.rewards, np.float64)),
                                            counters, running, assessment, not trace.frozen, trace.evaluated_from,
                                            trace.snapshot))
    sanity = None
    if config.logging_policy is not None:
        own = next((e for e in evaluations if e.policy == config.logging_policy), None)
        if own is None:
            raise ValueError(f"logging_policy: {config.logging_policy!r} is not among the evaluated policies")
        sanity = {"policy": own.policy, "on_policy_ctr": on_policy.value,
                  "covers": {name: own.estimates[name].covers(on_policy.value)
                             for name in ("ips", "snips", "dr") if name in own.estimates}}
    return EvaluationResult(counts, on_policy, evaluations, sanity, config.settings(), rewards, clusters, notes)
